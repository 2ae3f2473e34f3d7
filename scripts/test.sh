#!/usr/bin/env bash
# Every test: format and lint, the Rust suites on both backends (Secrets Manager through the
# real SDK against a local moto server), the SAM template lint, and, against `make dev`, the
# README walkthrough and the OpenAPI conformance check. Everything it starts listens on
# 127.0.0.1 and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

step "format and lint"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "moto server (the Secrets Manager emulator)"
moto_port=$(free_port)
start_group target/moto.log moto_server -H 127.0.0.1 -p "$moto_port"
wait_for_http "http://127.0.0.1:$moto_port/moto-api/" 60
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
unset AWS_PROFILE AWS_SESSION_TOKEN

step "Rust tests, embedded and Secrets Manager backends"
cargo test --workspace --locked

step "SAM template"
AWS_DEFAULT_REGION=us-east-1 sam validate --lint

step "README walkthrough and OpenAPI conformance against make dev"
scripts/dev-server-checks.sh

step "all tests passed"
