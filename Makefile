# Warden: `make run` starts the demo, `make test` runs everything CI checks.
# Builds go to a cache outside the clone so that repeated runs are incremental.
# WARDEN_CACHE also holds ONNX Runtime and the compiled plugins.
export WARDEN_CACHE ?= $(HOME)/.cache/warden
export CARGO_TARGET_DIR ?= $(WARDEN_CACHE)/target
BIN := $(CARGO_TARGET_DIR)/debug
# ONNX Runtime, fetched from PyPI by scripts/setup-ort.sh (the classifier loads it at run time).
export ORT_DYLIB_PATH ?= $(WARDEN_CACHE)/onnxruntime-1.31.1/libonnxruntime.so.1.31.1

.PHONY: run test build setup plugins lint unit e2e policies bench load fmt

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

e2e: setup build
	WARDEN_BIN=$(BIN)/warden MOCK_LLM_BIN=$(BIN)/mock-llm .venv/bin/python -m pytest tests/e2e -q

test: lint unit policies e2e

fmt:
	cargo fmt --all

bench: setup
	cargo bench -p warden-benches --bench phrases --bench policy --bench detectors

load: setup
	bash benches/load.sh
