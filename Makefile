# Warden: `make run` starts the demo, `make test` runs everything CI checks.
# Builds go to a cache outside the clone so that repeated runs are incremental.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/warden/target
BIN := $(CARGO_TARGET_DIR)/debug

.PHONY: run test build setup lint unit e2e policies bench load fmt

build:
	cargo build --locked -p warden -p mock-llm

setup:
	scripts/setup-system.sh
	scripts/setup-python.sh

run: build
	scripts/run.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

unit:
	cargo test --locked --workspace

policies: build
	$(BIN)/warden validate policies
	$(BIN)/warden test policies

e2e: setup build
	WARDEN_BIN=$(BIN)/warden MOCK_LLM_BIN=$(BIN)/mock-llm .venv/bin/python -m pytest tests/e2e -q

test: lint unit policies e2e

fmt:
	cargo fmt --all

bench:
	cargo bench -p warden-benches --bench phrases --bench policy

load:
	bash benches/load.sh
