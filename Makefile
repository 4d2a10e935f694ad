# Warden: `make run` starts the demo, `make test` runs everything CI checks.
# Builds go to a cache outside the clone so that repeated runs are incremental.
# WARDEN_CACHE also holds ONNX Runtime and the compiled plugins.
export WARDEN_CACHE ?= $(HOME)/.cache/warden
export CARGO_TARGET_DIR ?= $(WARDEN_CACHE)/target
BIN := $(CARGO_TARGET_DIR)/debug
# ONNX Runtime, fetched from PyPI by scripts/setup-ort.sh (the classifier loads it at run time).
export ORT_DYLIB_PATH ?= $(WARDEN_CACHE)/onnxruntime-1.31.1/libonnxruntime.so.1.31.1

.PHONY: run test build setup plugins lint unit e2e policies eval bench load fmt fuzz

build:
	cargo build --locked -p warden -p mock-llm

setup:
	scripts/setup-system.sh
	scripts/setup-python.sh
	scripts/setup-ort.sh >/dev/null
	scripts/build-plugins.sh

# The example plugins (C -> WebAssembly components) in plugins/build/.
plugins:
	scripts/build-plugins.sh

run: setup build
	scripts/run.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

unit: setup
	cargo test --locked --workspace

policies: setup build
	$(BIN)/warden validate policies
	$(BIN)/warden test policies

# Detection figures on the dev split of the labelled data, against the gates in tests/eval/gates/.
eval: setup build
	scripts/eval.sh

e2e: setup build
	WARDEN_BIN=$(BIN)/warden MOCK_LLM_BIN=$(BIN)/mock-llm .venv/bin/python -m pytest tests/e2e -q

test: lint unit policies eval e2e

fmt:
	cargo fmt --all

bench: setup
	cargo bench -p warden-benches --bench phrases --bench policy --bench detectors

load: setup
	bash benches/load.sh

# Coverage-guided fuzzing (cargo fuzz with libFuzzer, on stable Rust): each target of fuzz/ runs
# FUZZ_SECONDS, from its committed corpus (fuzz/corpus/<target>); new inputs go to
# $(WARDEN_CACHE)/fuzz-corpus, crashes to fuzz/artifacts/<target>. FUZZ_SANITIZER=address adds
# ASan (via RUSTC_BOOTSTRAP). `make unit` replays the committed corpora (tests/fuzz_corpora.rs).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= sse body request completion stream jsontext normalize
FUZZ_SANITIZER ?= none
FUZZ_ENV = CARGO_TARGET_DIR=$(WARDEN_CACHE)/fuzz-target $(if $(filter none,$(FUZZ_SANITIZER)),,RUSTC_BOOTSTRAP=1)
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	$(FUZZ_ENV) cargo fuzz build -s $(FUZZ_SANITIZER)
	@for t in $(FUZZ_TARGETS); do \
		echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
		mkdir -p $(WARDEN_CACHE)/fuzz-corpus/$$t || exit 1; \
		$(FUZZ_ENV) cargo fuzz run -s $(FUZZ_SANITIZER) $$t $(WARDEN_CACHE)/fuzz-corpus/$$t $(CURDIR)/fuzz/corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=10 -dict=$(CURDIR)/fuzz/warden.dict -print_final_stats=1 || exit 1; \
	done
