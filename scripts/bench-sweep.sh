#!/usr/bin/env bash
# make bench-sweep: the scheduled sweep on both storage layouts, side by side: ENDPOINTS
# (default 3,000) endpoints one secret each, and KEYRING_ENDPOINTS (default 100,000) in tenant
# keyrings, through a proxy that enforces Secrets Manager's quotas in front of a moto server,
# in runs of RUN_SECONDS (default 120) as a Lambda deadline would cut them. Prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

work=$(mktemp -d)
unset AWS_PROFILE AWS_SESSION_TOKEN
cargo build -q --locked --profile bench-driver -p integration-tests --bin sweep-bench

moto_port=$(free_port)
start_group "$work/moto.log" moto_server -H 127.0.0.1 -p "$moto_port"
wait_for_http "http://127.0.0.1:$moto_port/moto-api/" 60
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
target/bench-driver/sweep-bench
rm -rf "$work"
