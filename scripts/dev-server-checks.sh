#!/usr/bin/env bash
# Checks that need the real local server: starts `make dev` once, on a free port and a fresh
# embedded store, then (1) runs the README walkthrough as written (the block between the
# `walkthrough:start` and `walkthrough:end` markers, then the contract and scheduling blocks,
# with only the port changed) and
# (2) runs the vendors' own published API clients against it (tests/vendor-clients/run.mjs) and
# (3) checks every route against openapi.yaml with schemathesis.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

port=$(free_port)
work=$(mktemp -d)
export VAULT_PATH="$work/vault.sqlite3"
# Functions under `cargo lambda watch` inherit this environment; the walkthrough must not
# depend on the Secrets Manager settings the rest of the test run uses.
unset AWS_ENDPOINT_URL VAULT_BACKEND

# readme_blocks NAME: every README block between `NAME:start` and `NAME:end`, port changed.
readme_blocks() {
  awk -v start="<!-- $1:start -->" -v end="<!-- $1:end -->" '$0 == start {on=1; next} $0 == end {on=0} on' README.md \
    | sed -e '/^```/d' -e "s/127\.0\.0\.1:9000/127.0.0.1:$port/g" -e "s/--invoke-port 9000/--invoke-port $port/g"
}
readme_blocks walkthrough >"$work/walkthrough.sh"
grep -q 'curl' "$work/walkthrough.sh" || { echo "no walkthrough found in README.md" >&2; exit 1; }
# The contract sections run in the same shell, after the walkthrough (they use its $API_KEY).
readme_blocks contracts >>"$work/walkthrough.sh"
[ "$(grep -c 'curl' "$work/walkthrough.sh")" -gt 12 ] || { echo "no contract curls found in README.md" >&2; exit 1; }
# Then scheduled rotation: a policy, the sweep and Secrets Manager's rotation steps.
readme_blocks scheduling >>"$work/walkthrough.sh"
grep -q 'cargo lambda invoke scheduled-rotation' "$work/walkthrough.sh" || { echo "no scheduling block found in README.md" >&2; exit 1; }

# Build the functions first so the first request does not wait on the compiler.
cargo build --quiet --locked -p create-endpoint -p get-endpoint -p list-endpoints \
  -p delete-endpoint -p rotate-secret -p reveal-secret -p sign-message -p verify-message -p public-keys \
  -p openformat-webhook-secret -p inklink-rotate-secret -p composio-rotate-secret \
  -p fyatu-auth-token -p fyatu-regenerate-secret -p featurebase-refresh-secret \
  -p update-endpoint -p scheduled-rotation -p secretsmanager-rotation -p admin

# No reloads under the checks: a reload restarts every function, and a request that lands
# mid-restart hangs.
start_group target/make-dev.log make dev PORT="$port" WATCH_FLAGS=--ignore-changes
wait_for_http "http://127.0.0.1:$port/" 300

echo "running the README walkthrough on port $port"
if ! bash -euo pipefail "$work/walkthrough.sh" >"$work/transcript.txt" 2>&1; then
  cat "$work/transcript.txt"
  echo "--- make dev log (tail)"
  tail -40 target/make-dev.log
  exit 1
fi
cat "$work/transcript.txt"

# What the walkthrough claims: three different secrets were shown (orders' create and rotate,
# then nightly's create in the scheduling block), the delivery signed with both of orders'
# verified, and orders is gone.
secrets=$(grep -o '"value":"[^"]*"' "$work/transcript.txt" | sort -u | wc -l)
[ "$secrets" -eq 3 ] || { echo "expected 3 distinct secrets (create, rotate, scheduled create), saw $secrets" >&2; exit 1; }
grep -q '"webhook-signature":"v1,[^ "]* v1,' "$work/transcript.txt" || { echo "expected a signature per valid secret" >&2; exit 1; }
grep -q '"valid":true' "$work/transcript.txt" || { echo "expected the signed delivery to verify" >&2; exit 1; }
# And each seed contract answered its documented success body.
for expected in '"status":"success","webhook_secret":"' '^{"secret":"whsec_' '"id":"sub_billing","secret":"whsec_' \
  '"webhookSecret":"whsec_' '"object":"webhook"'; do
  grep -q "$expected" "$work/transcript.txt" || { echo "no contract answer matching $expected" >&2; exit 1; }
done
api_key=$(cargo run -q --locked -p admin -- keys create --tenant acme --role member --json | jq -r .api_key)
status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/endpoints/orders" \
  -H "Authorization: Bearer $api_key")
[ "$status" = 404 ] || { echo "expected 404 after delete, got $status" >&2; exit 1; }
# And scheduled rotation: the sweep saw the scheduled endpoint, and the protocol finished once.
grep -q '"action":"sweep.summary".*"scheduled":[1-9]' "$work/transcript.txt" || { echo "expected a sweep summary counting the scheduled endpoint" >&2; exit 1; }
grep -q '"period_days":7' "$work/transcript.txt" || { echo "expected the patched rotation policy" >&2; exit 1; }
for outcome in created checked finished already_done; do
  grep -q "\"outcome\":\"$outcome\"" "$work/transcript.txt" || { echo "expected a rotation step answering $outcome" >&2; exit 1; }
done
# And a make dev user sees every create, rotation and delete as a "secret event" log line.
for detail_type in "Webhook Endpoint Created" "Webhook Secret Rotated" "Webhook Endpoint Deleted"; do
  grep -q "secret event.*$detail_type\|$detail_type.*secret event" target/make-dev.log \
    || { echo "make dev logged no \"$detail_type\" secret event" >&2; exit 1; }
done
echo "walkthrough, seed contracts and scheduling: 1 passed, 0 failed"

step "The vendors' own API clients against make dev (tests/vendor-clients)"
# Pinned by package-lock.json (npm) and requirements-dev.txt (PyPI, already in .venv). Each
# client gets only its base URL and an API key; its rotate call must hand back the secret the
# native reveal route shows.
npm ci --prefix tests/vendor-clients --no-audit --no-fund --loglevel=error
vendor_owner=$(cargo run -q --locked -p admin -- keys create --tenant vendor-clients --role owner --json | jq -r .api_key)
vendor_member=$(cargo run -q --locked -p admin -- keys create --tenant vendor-clients --role member --json | jq -r .api_key)
BASE_URL="http://127.0.0.1:$port" API_KEY="$vendor_owner" MEMBER_API_KEY="$vendor_member" \
  PYTHON="$PWD/.venv/bin/python" node tests/vendor-clients/run.mjs

step "OpenAPI conformance (schemathesis against make dev)"
# A tenant of its own, so generated endpoints stay out of the walkthrough's way.
if ! API_KEY=$(cargo run -q --locked -p admin -- keys create --tenant openapi --role owner --json | jq -r .api_key) \
  BASE_URL="http://127.0.0.1:$port" scripts/openapi-check.sh; then
  # A 5xx without the API's own body comes from the emulator or a panic: its cause is only
  # in the functions' output.
  echo "--- make dev log: panics, errors and function restarts (target/make-dev.log)" >&2
  grep -n 'panicked\|ERROR\|WARN\|spawning function instance\|terminating' target/make-dev.log \
    | grep -v 'default function route is disabled' | tail -40 >&2
  exit 1
fi
rm -rf "$work"
