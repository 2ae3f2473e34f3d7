#!/usr/bin/env bash
# Checks a running server against openapi.yaml with schemathesis: no 5xx; no status code, content
# type or header the document does not declare; every body valid; auth enforced; deleted gone.
# Run from the repo root with .venv/bin on PATH; needs BASE_URL and API_KEY (an owner key).
set -euo pipefail

: "${BASE_URL:?set BASE_URL to the running server, e.g. http://127.0.0.1:9000}"
: "${API_KEY:?set API_KEY to an owner or admin API key}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# `cargo lambda watch` answers a JSON-typed body that is not UTF-8, or a header value that is
# not ASCII, with a 500 of its own before any function runs (API Gateway hands the first to
# the function base64-encoded): such requests test the emulator, not this API, so are not
# sent. It also, rarely, answers a request the function served with that same 500 (its
# instance scheduler loses the answer): such a failure counts only if the same request, sent
# again three times over three seconds, gets it every time (as a panic would).
cat >"$work/hooks.py" <<'PY'
import sys
import time
import requests
import schemathesis

@schemathesis.hook
def filter_case(ctx, case):
    if not all(str(value).isascii() for value in (case.headers or {}).values()):
        return False
    if isinstance(case.body, (bytes, bytearray)):
        try:
            bytes(case.body).decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True

def from_emulator(response):
    return (response.status_code == 500 and "x-request-id" not in response.headers
            and b'"type":"https://httpstatuses.com/500"' in response.content)

last = (None, True)

@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    global last
    if not from_emulator(response):
        return True
    if last[0] is not response:
        repeated = True
        for _ in range(3):
            time.sleep(1)
            again = requests.Session().send(response.request, timeout=30)
            if not from_emulator(again):
                repeated = False
                break
        last = (response, repeated)
        if not last[1]:
            req = response.request
            print(f"openapi-check: emulator 500 on {req.method} {req.url} not repeated on retry",
                  file=sys.stderr)
    return last[1]
PY
# Replay files for `st replay` go under target/, which git and the watcher ignore.
cat >"$work/schemathesis.toml" <<TOML
hooks = "$work/hooks.py"
[cache]
directory = "$PWD/target/schemathesis"
TOML

checks=not_a_server_error,status_code_conformance,content_type_conformance
checks+=,response_headers_conformance,response_schema_conformance
checks+=,ignored_auth,use_after_free,ensure_resource_availability

status=0
schemathesis --config-file "$work/schemathesis.toml" run openapi.yaml \
  --url "$BASE_URL" \
  --header "Authorization: Bearer $API_KEY" \
  --checks "$checks" \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "${OPENAPI_MAX_EXAMPLES:-100}" \
  --seed "${OPENAPI_SEED:-20251124}" \
  --request-timeout 30 \
  --generation-database none \
  --no-color \
  --report junit --report-junit-path "$work/junit.xml" || status=$?

# schemathesis's exit code is the verdict; this line only counts what it ran.
if [[ -f $work/junit.xml ]]; then
  python3 - "$work/junit.xml" "$status" <<'PY'
import sys
import xml.etree.ElementTree as ET

passed = failed = 0
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None:
        failed += 1
    elif case.find("skipped") is None:
        passed += 1
if sys.argv[2] != "0":
    failed = max(failed, 1)
print(f"openapi: {passed} passed, {failed} failed")
PY
fi
exit "$status"
