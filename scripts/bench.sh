#!/usr/bin/env bash
# make bench: binary size, cold start and warm latency of real release binaries driven by a
# local Lambda Runtime API (scripts/bench_lambda.py), for each release profile and backend.
# Prints a table of medians. RUNS cold starts and WARM warm events per cell.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

RUNS=${RUNS:-15}
WARM=${WARM:-100}
PROFILES=${PROFILES:-"release release-small"}
functions=(get-endpoint rotate-secret)
work=$(mktemp -d)
results="$work/results.jsonl"
unset AWS_PROFILE AWS_SESSION_TOKEN

cargo build -q --locked -p admin

# prepare BACKEND: mints a key on that backend and writes the events that carry it.
prepare() {
  local key
  key=$(target/debug/admin keys create --tenant acme --role owner --json | jq -r .api_key)
  for f in create-endpoint "${functions[@]}"; do
    sed "s/REPLACE_WITH_API_KEY/$key/" "events/$f.json" >"$work/$f.json"
  done
}

# measure PROFILE BACKEND: creates the endpoint, then times each function.
measure() {
  local profile=$1 backend=$2 dir="target/$1" fn
  python3 scripts/bench_lambda.py "$dir/create-endpoint" 1 0 "$work/create-endpoint.json" >/dev/null
  for fn in "${functions[@]}"; do
    python3 scripts/bench_lambda.py "$dir/$fn" "$RUNS" "$WARM" "$work/$fn.json" |
      jq -c --arg p "$profile" --arg b "$backend" --arg f "$fn" --argjson s "${build_seconds[$profile]}" \
        '. + {profile: $p, backend: $b, function: $f, build_seconds: $s}' >>"$results"
  done
}

declare -A build_seconds
for profile in $PROFILES; do
  step "building the $profile profile"
  start=$SECONDS
  cargo build -q --locked --profile "$profile" -p create-endpoint -p get-endpoint -p rotate-secret
  build_seconds[$profile]=$((SECONDS - start))
done

step "embedded store"
export VAULT_BACKEND=embedded VAULT_PATH="$work/vault.sqlite3"
prepare
for profile in $PROFILES; do measure "$profile" embedded; done

step "Secrets Manager (moto on 127.0.0.1)"
moto_port=$(free_port)
start_group "$work/moto.log" moto_server -H 127.0.0.1 -p "$moto_port"
wait_for_http "http://127.0.0.1:$moto_port/moto-api/" 60
export VAULT_BACKEND=secretsmanager AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
prepare
for profile in $PROFILES; do measure "$profile" secretsmanager; done

step "results (medians; cold = process start to first response; warm = one event's round trip)"
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
base = {(r["backend"], r["function"]): r for r in rows if r["profile"] == "release"}
head = f"{'profile':<14} {'backend':<15} {'function':<14} {'binary':>9} {'build':>7} {'cold ms':>8} {'warm ms':>8} {'cold vs release':>16}"
print(head); print("-" * len(head))
for r in rows:
    b = base.get((r["backend"], r["function"]))
    ratio = f"{r['cold_ms_median'] / b['cold_ms_median']:.2f}x" if b else "-"
    print(f"{r['profile']:<14} {r['backend']:<15} {r['function']:<14} {r['binary_bytes'] / 1e6:>7.2f}MB {r['build_seconds']:>6}s "
          f"{r['cold_ms_median']:>8.1f} {r['warm_ms_median']:>8.2f} {ratio:>16}")
print(f"\n{rows[0]['runs']} cold starts and {rows[0]['warm_events']} warm events per row; every response was {sorted({s for r in rows for s in r['statuses']})}.")
PY
rm -rf "$work"
