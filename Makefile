# The README's two commands: `make dev` serves every function locally on the embedded store;
# `make test` installs its tools, starts what it needs on 127.0.0.1, runs every test, stops it.

SHELL := /bin/bash
PORT ?= 9000
# Extra `cargo lambda watch` flags; the test run passes --ignore-changes so that no reload
# restarts functions under it.
WATCH_FLAGS ?=
VENV := .venv
TOOLS := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0

.PHONY: dev test tools bench bench-sweep sam-build clean

$(TOOLS): requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

tools: $(TOOLS)

dev: $(TOOLS)
	cargo lambda watch $(WATCH_FLAGS) --invoke-address 127.0.0.1 --invoke-port $(PORT)

test: $(TOOLS)
	scripts/test.sh

bench: $(TOOLS)
	scripts/bench.sh

bench-sweep: $(TOOLS)
	scripts/bench-sweep.sh

# `sam build` runs `make build-<LogicalId>` for every function (BuildMethod: makefile) in this
# folder (--build-in-source: otherwise it first copies the tree, target/ included, per function).
# Each such target runs one `cargo lambda build` of every function: the first does the work,
# the rest find it done in under 2 s each (cargo's lock on target/ makes concurrent ones wait).
# The dependencies and shared/ are compiled once; each function's `main` only names its route,
# so its own crate is a link of about a second (README, Deploy: build times). A deployed
# function is built without default features: it links no SQLite.
sam-build: $(TOOLS)
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} sam build --build-in-source

FUNCTIONS := $(notdir $(patsubst %/Cargo.toml,%,$(wildcard functions/*/Cargo.toml)))
DEPLOY_PROFILE := deploy

.PHONY: lambda-binaries
lambda-binaries:
	cargo lambda build --profile $(DEPLOY_PROFILE) --arm64 --no-default-features \
		$(addprefix -p ,$(FUNCTIONS))

# The binary of resource $* is the `Binary:` under its `BuildProperties:` in template.yaml.
build-%: lambda-binaries
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set (sam build sets it)"; exit 1; }
	binary=$$(awk -v id="$*:" '/^  [A-Za-z0-9]+:$$/ { in_resource = ($$1 == id) } \
		in_resource && $$1 == "Binary:" { print $$2; exit }' template.yaml); \
	test -n "$$binary" || { echo "template.yaml: no BuildProperties Binary for $*"; exit 1; }; \
	cp target/lambda/$$binary/bootstrap "$(ARTIFACTS_DIR)/bootstrap"

clean:
	rm -rf .aws-sam .data
