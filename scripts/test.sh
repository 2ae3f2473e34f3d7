#!/usr/bin/env bash
# Every test: format and lint, the Rust suites on both backends (Secrets Manager through the
# real SDK against a local moto server, behind a proxy that is as strict as AWS where moto is
# lenient), the SAM template lint, and, against `make dev`, the README walkthrough and the
# OpenAPI conformance check. Everything it starts listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

step "format and lint"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "moto server (the Secrets Manager emulator) behind the strict proxy"
# moto overwrites a version whose ClientRequestToken is reused with another value, stores
# values of any size and keeps any number of versions; AWS refuses all three. Every Secrets
# Manager client of the run goes through sm-strict-proxy, which refuses them as AWS does
# (tests/src/throttle.rs, "Strict mode"), so that no test passes on moto's leniency alone.
cargo build -p integration-tests --bin sm-strict-proxy --locked
moto_port=$(free_port)
start_group target/moto.log moto_server -H 127.0.0.1 -p "$moto_port"
wait_for_http "http://127.0.0.1:$moto_port/moto-api/" 60
proxy_port=$(free_port)
start_group target/sm-strict-proxy.log target/debug/sm-strict-proxy \
  "http://127.0.0.1:$moto_port" --port "$proxy_port"
wait_for_http "http://127.0.0.1:$proxy_port/moto-api/" 30
export AWS_ENDPOINT_URL="http://127.0.0.1:$proxy_port"
# Tests that simulate a day put a strict proxy of their own, whose clock they move, in front
# of moto itself.
export MOTO_ENDPOINT_URL="http://127.0.0.1:$moto_port"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
unset AWS_PROFILE AWS_SESSION_TOKEN

step "Rust tests, embedded and Secrets Manager backends"
if ! cargo test --workspace --locked; then
  echo "--- what the strict proxy refused (target/sm-strict-proxy.log, tail)" >&2
  tail -5 target/sm-strict-proxy.log >&2
  exit 1
fi

step "SAM template, and its metric filters against the functions' real log lines"
AWS_DEFAULT_REGION=us-east-1 sam validate --lint
cfn-lint template.yaml
python tests/metric_filters.py --route-server target/debug/route-server

step "README walkthrough and OpenAPI conformance against make dev"
scripts/dev-server-checks.sh

step "all tests passed"
