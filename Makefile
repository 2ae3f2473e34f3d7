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

sam-build: $(TOOLS)
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} sam build --beta-features

clean:
	rm -rf .aws-sam .data
