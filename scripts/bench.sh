#!/usr/bin/env bash
# make bench: cold start, warm latency and peak RSS of real optimised binaries driven by a local
# Lambda Runtime API (scripts/bench_lambda.py), on the embedded store and on Secrets Manager
# (moto) reached over plain HTTP and over HTTPS (a TLS proxy in front of moto, with a CA made
# here), as in AWS. Each function is compared, in the same run, with the floor (bench-floor:
# `bare-hello`, a bare lambda_http function, and `bare-sdk`, a bare one that does one
# GetSecretValue) and with get-endpoint's job in Python 3 and boto3 under Lambda's runtime
# interface client (bench-floor/python/handler.py). Prints a table of medians.
#
# RUNS cold starts and WARM warm events per row. PROFILES: the cargo profiles to measure
# (the first is the one the ratios use: `deploy`, the profile `sam build` deploys; add `release`
# (fat LTO) or `release-small` to compare them). JITTER=1 also builds
# get-endpoint, rotate-secret and bare-sdk with aws-lc's CPU-jitter entropy source back in
# (into target/jitter) and measures them as `<first profile>+jitter`. BUILD=0 measures the binaries
# already in target/ without building them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

RUNS=${RUNS:-11}
WARM=${WARM:-50}
PROFILES=${PROFILES:-deploy}
JITTER=${JITTER:-0}
BUILD=${BUILD:-1}
functions=(get-endpoint rotate-secret)
work=$(mktemp -d)
results="$work/results.jsonl"
unset AWS_PROFILE AWS_SESSION_TOKEN SSL_CERT_DIR REQUESTS_CA_BUNDLE CURL_CA_BUNDLE
base_profile=${PROFILES%% *}

build() { if [[ $BUILD == 1 ]]; then "$@"; fi; }

build cargo build -q --locked -p admin

# variants: "LABEL DIR" of each build measured; the first is the baseline of every ratio.
variants=()
for profile in $PROFILES; do
  step "building the $profile profile"
  build cargo build -q --locked --profile "$profile" -p create-endpoint -p get-endpoint -p rotate-secret -p bench-floor
  # The embedded rows need the SQLite store; the Secrets Manager rows run the functions as
  # they are deployed, built without default features (no SQLite linked).
  build mkdir -p "target/$profile/embedded-store"
  for fn in "${functions[@]}"; do build cp "target/$profile/$fn" "target/$profile/embedded-store/$fn"; done
  build cargo build -q --locked --profile "$profile" --no-default-features $(printf -- '-p %s ' "${functions[@]}")
  variants+=("$profile target/$profile")
done
if [[ $JITTER == 1 ]]; then
  step "building $base_profile with aws-lc's CPU-jitter entropy (target/jitter)"
  build env AWS_LC_SYS_NO_JITTER_ENTROPY=0 CARGO_TARGET_DIR=target/jitter \
    cargo build -q --locked --profile "$base_profile" -p get-endpoint -p rotate-secret -p bench-floor
  variants+=("$base_profile+jitter target/jitter/$base_profile")
fi
base_dir="target/$base_profile"

# prepare: mints a key on the current backend and writes the events that carry it. Each
# rotation has no grace period, so none is refused for keeping too many older secrets valid.
# Secrets Manager keeps about 100 versions of a secret a day (the vault answers 429 past that,
# as the strict proxy and the embedded store enforce), so the rotations of this backend's rows
# go round enough endpoints that none is written more than 80 times.
prepare() {
  local key rotations endpoints
  key=$(target/debug/admin keys create --tenant acme --role owner --json | jq -r .api_key)
  for f in create-endpoint "${functions[@]}"; do
    sed "s/REPLACE_WITH_API_KEY/$key/" "events/$f.json" >"$work/$f.json"
  done
  rotations=$(((RUNS * (WARM + 1)) * 2 * ${#variants[@]}))
  endpoints=$(((rotations + 79) / 80))
  jq --argjson n "$endpoints" '[range($n) as $i | .body |= (fromjson | .id = "rotated-\($i)" | tojson)]' \
    "$work/create-endpoint.json" >"$work/create-rotated.json"
  jq --argjson n "$endpoints" '[range($n) as $i | .body = "{\"grace_period_seconds\": 0}"
      | .rawPath = "/v1/endpoints/rotated-\($i)/secret/rotate" | .requestContext.http.path = .rawPath
      | .pathParameters.id = "rotated-\($i)"]' "$work/rotate-secret.json" >"$work/rotate.tmp"
  mv "$work/rotate.tmp" "$work/rotate-secret.json"
  python3 scripts/bench_lambda.py "$base_dir/create-endpoint" 1 0 "$work/create-endpoint.json" >/dev/null
  python3 scripts/bench_lambda.py "$base_dir/create-endpoint" 1 $((endpoints - 1)) "$work/create-rotated.json" |
    jq -e '.statuses == [201]' >/dev/null || { echo "prepare: creating $endpoints endpoints to rotate failed" >&2; exit 1; }
}

# run VARIANT FUNCTION BACKEND COMMAND EVENT: one row of the table.
run() {
  local variant=$1 fn=$2 backend=$3 command=$4 event=$5
  python3 scripts/bench_lambda.py "$command" "$RUNS" "$WARM" "$event" |
    jq -c --arg v "$variant" --arg b "$backend" --arg f "$fn" '. + {variant: $v, backend: $b, function: $f}' >>"$results"
}

# measure BACKEND: every function and floor of every variant on the current backend.
measure() {
  local backend=$1 variant label dir fn
  if [[ $backend == embedded ]]; then
    run "$base_profile" bare-hello none "$base_dir/bare-hello" "$work/get-endpoint.json"
  else
    for variant in "${variants[@]}"; do
      read -r label dir <<<"$variant"
      [[ $label == "$base_profile" || $label == *+jitter ]] && [[ -x $dir/bare-sdk ]] || continue
      run "$label" bare-sdk "$backend" "$dir/bare-sdk" "$work/get-endpoint.json"
    done
    run python boto3-get-endpoint "$backend" "python3 -m awslambdaric handler.fn" "$work/get-endpoint.json"
  fi
  for variant in "${variants[@]}"; do
    read -r label dir <<<"$variant"
    [[ $backend == embedded && -d $dir/embedded-store ]] && dir=$dir/embedded-store
    for fn in "${functions[@]}"; do
      [[ -x $dir/$fn ]] || continue # BUILD=0 with a partial target/jitter
      run "$label" "$fn" "$backend" "$dir/$fn" "$work/$fn.json"
    done
  done
}

step "embedded store"
export VAULT_BACKEND=embedded VAULT_PATH="$work/vault.sqlite3"
prepare
measure embedded

step "Secrets Manager: moto on 127.0.0.1, over HTTP and over HTTPS (a TLS proxy, a CA made here)"
# A CA and a certificate for localhost signed by it, RSA 2048 as Secrets Manager's own are.
# The functions trust it the way they trust AWS's: SSL_CERT_FILE (rustls-native-certs, for the
# Rust SDK) and AWS_CA_BUNDLE (boto3) name the system's bundle with this CA added, so loading
# the trust store costs what it costs in Lambda.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=make bench CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
  "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$work/tls.ext"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
  -extfile "$work/tls.ext" -out "$work/tls.pem" 2>/dev/null
system_bundle=/etc/ssl/certs/ca-certificates.crt
[[ -f $system_bundle ]] || system_bundle=/etc/pki/tls/certs/ca-bundle.crt
cat "$system_bundle" "$work/ca.pem" >"$work/trust.pem"
export SSL_CERT_FILE="$work/trust.pem" AWS_CA_BUNDLE="$work/trust.pem"

# Both transports go through the same keep-alive proxy (scripts/tls_proxy.py: moto closes every
# connection, AWS does not), so that they differ only by TLS.
moto_port=$(free_port)
http_port=$(free_port)
tls_port=$(free_port)
start_group "$work/moto.log" moto_server -H 127.0.0.1 -p "$moto_port"
start_group "$work/http-proxy.log" python3 scripts/tls_proxy.py "$http_port" "$moto_port"
start_group "$work/tls-proxy.log" python3 scripts/tls_proxy.py "$tls_port" "$moto_port" "$work/tls.pem" "$work/tls.key"
wait_for_http "http://127.0.0.1:$moto_port/moto-api/" 60
wait_for_http "http://127.0.0.1:$http_port/moto-api/" 30
for _ in $(seq 60); do
  curl -s --cacert "$work/ca.pem" -o /dev/null "https://localhost:$tls_port/moto-api/" && break
  sleep 0.5
done
curl -sS --fail --cacert "$work/ca.pem" -o /dev/null "https://localhost:$tls_port/moto-api/"

export VAULT_BACKEND=secretsmanager AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export BENCH_TENANT=acme BENCH_SECRET_ID=webhook-secrets/acme/orders PYTHONPATH="$PWD/bench-floor/python"
# As the template configures every function: secret events go to the account's default bus
# (on moto, through the same proxy), so the cold starts include what that costs.
export EVENT_BUS_NAME=default
export AWS_ENDPOINT_URL="http://127.0.0.1:$http_port"
prepare
measure "Secrets Manager, HTTP"
export AWS_ENDPOINT_URL="https://localhost:$tls_port"
measure "Secrets Manager, HTTPS"

step "results (medians; cold = process start to first response; warm = one event's round trip)"
python3 - "$results" "$base_profile" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
base = sys.argv[2]
cold = {(r["variant"], r["function"], r["backend"]): r["cold_ms_median"] for r in rows}
floor_of = lambda r: cold.get((base, "bare-hello", "none")) if r["backend"] in ("embedded", "none") \
    else cold.get((base, "bare-sdk", r["backend"]))
python_of = lambda r: cold.get(("python", "boto3-get-endpoint", r["backend"]))
head = (f"{'function':<19} {'build':<15} {'backend / transport':<23} {'binary':>8} {'cold ms':>8} {'x floor':>8} "
        f"{'x faster than py':>17} {'cold CPU':>9} {'warm ms':>8} {'peak RSS':>9}")
print(head); print("-" * len(head))
for r in rows:
    floor, py = floor_of(r), python_of(r)
    x_floor = f"{r['cold_ms_median'] / floor:.2f}x" if floor and r["function"] not in ("bare-hello", "bare-sdk") else "-"
    x_py = f"{py / r['cold_ms_median']:.1f}x" if py and r["variant"] != "python" else "-"
    binary = f"{r['binary_bytes'] / 1e6:.1f}MB" if r["binary_bytes"] else "-"
    print(f"{r['function']:<19} {r['variant']:<15} {r['backend']:<23} {binary:>8} {r['cold_ms_median']:>8.1f} {x_floor:>8} "
          f"{x_py:>17} {r['cold_cpu_ms_median']:>7.1f}ms {r['warm_ms_median']:>8.2f} {r['peak_rss_mb_max']:>7.1f}MB")
print(f"\n{rows[0]['runs']} cold starts and {rows[0]['warm_events']} warm events per row; x floor = cold start / "
      f"bare-sdk's on the same transport (bare-hello's on the embedded store); x faster than py = Python's cold "
      f"start / this one's on the same transport; cold CPU = CPU time used by the first response; peak RSS = the largest of the row's processes. Every response "
      f"was {sorted({s for r in rows for s in r['statuses']})}.")
PY
rm -rf "$work"
