#!/usr/bin/env python3
"""Holds template.yaml's CloudWatch metric filters to the log lines the code writes.

    python3 tests/metric_filters.py [--route-server target/debug/route-server]

Three checks, each failing the run on a mismatch:

1. Code anchors: the strings and fields the filters rely on are still in the source
   (the "request finished" / "request failed" / "request refused" lines in shared/src/api/http.rs,
   the JSON layout in shared/src/lambda/logging.rs, AuditRecord in shared/src/audit.rs, SweepSummary in
   shared/src/vault/sweep.rs, the triggers of the sweep and of the rotation protocol), and every
   function that serves a route has its own server-error filter.
2. Fixtures: every filter pattern is evaluated against lines of exactly the shape the code
   writes (below, each naming the code that writes it), and the metric each filter publishes
   is compared with what it must publish.
3. Live (with --route-server): runs the prebuilt route-server binary (the functions' routes in
   one process, logging as the functions do), provokes refusals on the embedded store and
   server errors against an unreachable Secrets Manager endpoint, and evaluates the filters on
   the lines it really wrote. It builds nothing.

The pattern evaluator covers the subset of CloudWatch's JSON filter syntax the template uses
(=, !=, numeric comparisons, IS TRUE/FALSE/NULL, NOT EXISTS, &&, ||, parentheses). It is
stricter than CloudWatch: mixing && and || without parentheses is refused, and a != whose
field is missing is refused when the result depends on it, so a pattern never rests on a
precedence or missing-field rule.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- template


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !Sub, ...) as {"Fn": value}."""


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {suffix: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_filters(path):
    with open(path) as f:
        template = yaml.load(f, Loader=_CfnLoader)
    filters = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Logs::MetricFilter":
            continue
        props = resource["Properties"]
        (transformation,) = props["MetricTransformations"]
        filters[name] = {
            "pattern": props["FilterPattern"],
            "metric": transformation["MetricName"],
            "value": str(transformation["MetricValue"]),
            "default": transformation.get("DefaultValue"),
            "dimensions": transformation.get("Dimensions"),
        }
    return template, filters


# ---------------------------------------------------------------- pattern evaluator

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?)|(?P<sel>\$(?:\.[A-Za-z_][A-Za-z0-9_]*)+)'
    r"|(?P<op>&&|\|\||!=|>=|<=|=|>|<|\(|\)|\{|\})|(?P<kw>IS|NOT|TRUE|FALSE|NULL|EXISTS))"
)


class PatternError(Exception):
    pass


def _tokens(pattern):
    out, pos = [], 0
    pattern = pattern.strip()
    while pos < len(pattern):
        m = _TOKEN.match(pattern, pos)
        if not m or m.end() == pos:
            raise PatternError(f"cannot read {pattern[pos:]!r}")
        kind = m.lastgroup
        text = m.group(kind)
        out.append((kind, json.loads(text) if kind == "str" else text))
        pos = m.end()
    return out


_MISSING = object()


def _select(line, selector):
    value = line
    for part in selector.split(".")[1:]:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


class _Parser:
    def __init__(self, pattern):
        self.toks = _tokens(pattern)
        self.i = 0
        if self._take() != ("op", "{") or self.toks[-1] != ("op", "}"):
            raise PatternError("a JSON pattern is { ... }")
        self.toks = self.toks[:-1]
        self.tree = self._expr()
        if self.i != len(self.toks):
            raise PatternError(f"unexpected {self.toks[self.i]}")

    def _peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def _take(self):
        tok = self._peek()
        self.i += 1
        return tok

    def _expr(self):
        terms, ops = [self._term()], set()
        while self._peek() in (("op", "&&"), ("op", "||")):
            ops.add(self._take()[1])
            terms.append(self._term())
        if len(ops) > 1:
            raise PatternError("&& and || mixed without parentheses")
        if not ops:
            return terms[0]
        return ("and" if ops == {"&&"} else "or", terms)

    def _term(self):
        if self._peek() == ("op", "("):
            self._take()
            inner = self._expr()
            if self._take() != ("op", ")"):
                raise PatternError("missing )")
            return inner
        kind, selector = self._take()
        if kind != "sel":
            raise PatternError(f"expected a $.field, got {selector!r}")
        kind, op = self._take()
        if (kind, op) == ("kw", "IS"):
            _, what = self._take()
            if what not in ("TRUE", "FALSE", "NULL"):
                raise PatternError(f"IS {what}")
            return ("is", selector, what)
        if (kind, op) == ("kw", "NOT"):
            if self._take() != ("kw", "EXISTS"):
                raise PatternError("NOT EXISTS")
            return ("not_exists", selector)
        if kind != "op" or op not in ("=", "!=", ">", "<", ">=", "<="):
            raise PatternError(f"expected a comparison after {selector}")
        vkind, value = self._take()
        if vkind == "num":
            value = float(value)
        elif vkind != "str":
            raise PatternError(f"expected a value after {selector} {op}")
        return ("cmp", selector, op, value)


def matches(pattern, line):
    return _eval(_Parser(pattern).tree, line)


def _eval(node, line):
    kind = node[0]
    if kind == "and":
        return all(_eval(n, line) for n in node[1])
    if kind == "or":
        return any(_eval(n, line) for n in node[1])
    if kind == "is":
        value = _select(line, node[1])
        return {"TRUE": value is True, "FALSE": value is False, "NULL": value is None}[node[2]]
    if kind == "not_exists":
        return _select(line, node[1]) is _MISSING
    _, selector, op, expected = node
    value = _select(line, selector)
    if value is _MISSING:
        if op == "!=":
            raise PatternError(f"the result rests on {selector} != with {selector} missing")
        return False
    if isinstance(expected, str):
        if not isinstance(value, str) or op not in ("=", "!="):
            return False
        return (value == expected) == (op == "=")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return {
        "=": value == expected,
        "!=": value != expected,
        ">": value > expected,
        "<": value < expected,
        ">=": value >= expected,
        "<=": value <= expected,
    }[op]


def published(flt, lines):
    """The sum a filter publishes over `lines`, and how many datapoints it emitted."""
    total, points = 0.0, 0
    for line in lines:
        if matches(flt["pattern"], line):
            if flt["value"].startswith("$."):
                value = _select(line, flt["value"])
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise PatternError(f"{flt['metric']}: {flt['value']} is not a number in {line}")
            else:
                value = float(flt["value"])
            total, points = total + value, points + 1
        elif flt["default"] is not None:
            total, points = total + float(flt["default"]), points + 1
    return total, points


# ---------------------------------------------------------------- code anchors

ANCHORS = {
    # The per-request lines and their fields (Call::finish, Call::log_error).
    "shared/src/api/http.rs": [
        '"request finished"',
        '"request failed"',
        '"request refused"',
        "route = self.route",
        "status = status.as_u16()",
        "code = err.code.as_str()",
        "if err.status().is_server_error()",
        # request_id(): the API Gateway request context's id, which the access log's
        # $context.requestId repeats.
        "RequestContext::ApiGatewayV2(ctx)) => ctx.request_id",
    ],
    # The error codes the filters name.
    "shared/src/domain/error_code.rs": [
        '"internal"',
        '"unavailable"',
        '"throttled"',
    ],
    # JSON lines, event fields nested under "fields" (flatten_event is not called).
    "shared/src/lambda/logging.rs": [".json()"],
    "shared/src/audit.rs": [
        'pub const AUDIT_MARKER: &str = "webhook-secrets";',
        "pub action: &'static str,",
        "pub outcome: String,",
        "pub status: Option<u16>,",
        "pub trigger: Option<&'static str>,",
    ],
    "shared/src/vault/sweep.rs": [
        'action: "sweep.summary"',
        "pub failed: usize,",
        "pub rotated: usize,",
        "pub deferred: usize,",
        "pub throttled: usize,",
        "pub complete: bool,",
        "pub events_unpublished: usize,",
        'trigger: Some("schedule")',
        '"secret.rotate"',
    ],
    "shared/src/lambda/mod.rs": ["crate::audit::write_line(&summary, false)"],
    "shared/src/vault/events.rs": ['"event lost: not published and not kept in the outbox"'],
    "shared/src/vault/protocol.rs": [
        'trigger: Some("secretsmanager-rotation")',
        '"failed".to_owned()',
        '"conflict".to_owned()',
    ],
}

FORBIDDEN = {"shared/src/lambda/logging.rs": ["flatten_event(true)"]}


def check_anchors(filters, failures):
    for rel, needles in ANCHORS.items():
        with open(os.path.join(ROOT, rel)) as f:
            text = f.read()
        for needle in needles:
            if needle not in text:
                failures.append(f"{rel} no longer contains {needle!r}: re-check the filters that rely on it")
        for needle in FORBIDDEN.get(rel, []):
            if needle in text:
                failures.append(f"{rel} now contains {needle!r}: the $.fields.* paths are wrong")
    routes = set()
    for folder, _, files in os.walk(os.path.join(ROOT, "shared/src")):
        for name in files:
            if name.endswith(".rs"):
                with open(os.path.join(folder, name)) as f:
                    routes |= set(re.findall(r'(?:Route::native\(|Route::contract\(|name: )"([a-z0-9-]+)"', f.read()))
    filtered = set()
    for flt in filters.values():
        m = re.fullmatch(
            r'\{ \$\.fields\.message = "request failed" && \$\.fields\.route = "([a-z0-9-]+)" \}', flt["pattern"]
        )
        if m:
            filtered.add(m.group(1))
            if flt["metric"] != f"ServerErrors-{m.group(1)}":
                failures.append(f"the server-error filter of {m.group(1)} publishes {flt['metric']}")
    if routes != filtered:
        failures.append(f"routes without a server-error filter: {sorted(routes - filtered)}; "
                        f"filters for no route: {sorted(filtered - routes)}")
    functions = set(os.listdir(os.path.join(ROOT, "functions"))) - {"scheduled-rotation", "secretsmanager-rotation"}
    if functions != routes:
        failures.append(f"functions {sorted(functions ^ routes)} do not match the routes the code logs")
    return routes


# ---------------------------------------------------------------- fixtures


def _request(message, level, **fields):
    """A tracing line as shared/src/lambda/logging.rs writes it (tracing_subscriber's JSON format)."""
    return {"timestamp": "2026-01-01T00:00:00.000000Z", "level": level,
            "fields": {"message": message, **fields}}


def _audit(action, outcome, status=None, trigger=None, **extra):
    """An AuditRecord (shared/src/audit.rs) as serde writes it."""
    line = {"audit": "webhook-secrets", "time": "2026-01-01T00:00:00Z", "request_id": "r",
            "tenant": "acme", "actor_key_id": None, "action": action, "endpoint_id": "orders",
            "secret_version_ids": [], "outcome": outcome}
    if status is not None:
        line["status"] = status
    if trigger is not None:
        line["trigger"] = trigger
    line.update(extra)
    return line


def _summary(**counts):
    """A SweepSummary (shared/src/vault/sweep.rs) as serde writes it."""
    line = {"audit": "webhook-secrets", "action": "sweep.summary", "run_id": "run",
            "started_at": "2026-01-01T00:00:00Z", "scheduled": 10, "due": 4, "rotated": 0,
            "pruned": 0, "pending_cleared": 0, "skipped": 0, "throttled": 0, "failed": 0,
            "deferred": 0, "events_republished": 0, "events_unpublished": 0, "duration_ms": 1200,
            "complete": True}
    line.update(counts)
    return line


# (line, {metric: value it must add}); every other filter must add 0 for the line.
FIXTURES = [
    # Call::finish_shaped: one per request, whatever the outcome.
    (_request("request finished", "INFO", request_id="r", route="rotate-secret", status=200,
              tenant="acme", key_id="ak_1", duration_ms=12), {}),
    (_request("request finished", "INFO", request_id="r", route="openformat-webhook-secret", status=500,
              duration_ms=1), {}),
    # Call::log_error, native 5xx: the function's server-error metric.
    (_request("request failed", "ERROR", request_id="r", route="rotate-secret", code="unavailable",
              cause="dispatch failure"), {"ServerErrors-rotate-secret": 1}),
    (_request("request failed", "ERROR", request_id="r", route="sign-message", code="internal",
              cause="AccessDenied"), {"ServerErrors-sign-message": 1}),
    (_request("request failed", "ERROR", request_id="r", route="fyatu-auth-token", code="internal",
              cause="x"), {"ServerErrors-fyatu-auth-token": 1}),
    # Call::log_error, 4xx: refused, not a server error; 429 throttled on an unaudited route.
    (_request("request refused", "INFO", request_id="r", route="get-endpoint", code="unauthorized",
              reason="no API key"), {}),
    (_request("request refused", "INFO", request_id="r", route="sign-message", code="throttled",
              reason="throttling"), {"ThrottledRequests": 1}),
    # An audited route's refusal line: counted by its audit record instead.
    (_request("request refused", "INFO", request_id="r", route="rotate-secret", code="throttled",
              reason="throttling"), {}),
    # Audit records of interactive rotations.
    (_audit("secret.rotate", "success", status=200), {}),
    (_audit("secret.rotate", "conflict", status=409), {}),
    (_audit("secret.rotate", "too_many_valid_secrets", status=409), {}),
    (_audit("secret.rotate", "unauthorized", status=500), {}),  # seed 000's 500 for a bad key
    (_audit("secret.rotate", "unavailable", status=503), {"RotationFailures": 1}),
    (_audit("secret.rotate", "unavailable", status=500), {"RotationFailures": 1}),  # seed 000
    (_audit("secret.rotate", "internal", status=500), {"RotationFailures": 1}),
    (_audit("secret.rotate", "throttled", status=429), {"ThrottledRequests": 1}),
    (_audit("endpoint.create", "throttled", status=429), {"ThrottledRequests": 1}),
    (_audit("secret.reveal", "internal", status=500), {}),
    (_audit("secret.rotate", "success", status=200, replayed=True), {}),
    # The sweep's records (trigger schedule, no status).
    (_audit("secret.rotate", "success", trigger="schedule", actor_key_id=None), {}),
    (_audit("secret.rotate", "access_denied", trigger="schedule"), {"RotationFailures": 1}),
    (_audit("secret.rotate", "version_quota_exceeded", trigger="schedule"), {"RotationFailures": 1}),
    (_audit("secret.prune", "success", trigger="schedule"), {}),
    # The rotation protocol's records.
    (_audit("secret.rotate", "success", trigger="secretsmanager-rotation"), {}),
    (_audit("secret.rotate", "failed", trigger="secretsmanager-rotation"), {"RotationFailures": 1}),
    (_audit("secret.rotate", "conflict", trigger="secretsmanager-rotation"), {"RotationFailures": 1}),
    # API-key changes (the admin command writes these to stderr, never here, but the shape holds).
    (_audit("api_key.create", "success", key_id="ak_1"), {}),
    # Sweep summaries.
    (_summary(rotated=4), {"SweepRuns": 1, "SweepCompleteRuns": 1, "SweepRotatedEndpoints": 4}),
    (_summary(rotated=2, failed=1, deferred=1, throttled=3, complete=False),
     {"SweepRuns": 1, "SweepFailedEndpoints": 1, "SweepRotatedEndpoints": 2,
      "SweepDeferredEndpoints": 1, "SweepThrottles": 3}),
    (_summary(complete=False), {"SweepRuns": 1}),  # the listing itself ran out of time
    (_summary(rotated=1, events_republished=3, events_unpublished=2),
     {"SweepRuns": 1, "SweepCompleteRuns": 1, "SweepRotatedEndpoints": 1, "SweepEventsUnpublished": 2}),
    # The vault's announcer (shared/src/vault/events.rs).
    (_request("event not published; kept in the outbox for the next sweep", "WARN", event_id="v.rotated",
              error="the event bus could not be reached: x"), {}),
    (_request("event lost: not published and not kept in the outbox", "ERROR", event_id="v.rotated",
              error="x", outbox_error="y", detail="{}"), {"EventsLost": 1}),
    (_request("secret event", "INFO", source="webhook-secrets", detail_type="Webhook Secret Rotated",
              detail="{}"), {}),
    # Other lines in the group.
    (_request("sweep starting", "INFO", run_id="run", deadline_ms=1, remaining_ms=899000), {}),
    (_request("scheduled rotation failed", "ERROR", run_id="run", endpoint="orders", tenant="acme",
              error="access denied"), {}),
    (_request("cannot start", "ERROR", error="configuration error: VAULT_PREFIX"), {}),
    ({"time": "2026-01-01T00:00:00.000Z", "type": "platform.report",
      "record": {"requestId": "x", "metrics": {"durationMs": 1.0}, "status": "success"}}, {}),
]


def check_fixtures(filters, failures):
    for line, wanted in FIXTURES:
        for name, flt in filters.items():
            try:
                got = published(flt, [line])[0]
            except PatternError as err:
                failures.append(f"{name}: {err} (line {json.dumps(line)})")
                continue
            want = float(wanted.get(flt["metric"], 0))
            if got != want:
                failures.append(f"{name} ({flt['metric']}) adds {got:g}, not {want:g}, for {json.dumps(line)}")
    # Every metric a fixture names exists.
    metrics = {flt["metric"] for flt in filters.values()}
    for _, wanted in FIXTURES:
        for metric in wanted:
            if metric not in metrics:
                failures.append(f"no filter publishes {metric}")
    # The sweep-incomplete alarm computes runs - complete at each summary: both must have a
    # datapoint there.
    by_metric = {flt["metric"]: flt for flt in filters.values()}
    for summary in (_summary(), _summary(complete=False)):
        for metric in ("SweepRuns", "SweepCompleteRuns"):
            if published(by_metric[metric], [summary])[1] != 1:
                failures.append(f"{metric} emits no datapoint for a summary")
        incomplete = (published(by_metric["SweepRuns"], [summary])[0]
                      - published(by_metric["SweepCompleteRuns"], [summary])[0])
        if incomplete != (0 if summary["complete"] else 1):
            failures.append(f"runs - complete is {incomplete:g} for {json.dumps(summary)}")


# ---------------------------------------------------------------- live lines


def _serve(binary, env, workdir, tag):
    addr_file = os.path.join(workdir, f"addr-{tag}")
    out = open(os.path.join(workdir, f"out-{tag}.log"), "w")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VAULT_"))}
    full_env.update(env, RUST_LOG="info")
    proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--addr-file", addr_file,
                             "--exit-on-stdin-eof"], stdin=subprocess.PIPE, stdout=out,
                            stderr=subprocess.DEVNULL, env=full_env, cwd=workdir)
    for _ in range(200):
        if os.path.exists(addr_file):
            break
        if proc.poll() is not None:
            raise RuntimeError(f"route-server exited with {proc.returncode}")
        time.sleep(0.05)
    with open(addr_file) as f:
        return proc, out, f.read().strip()


def _call(addr, method, path, headers):
    req = urllib.request.Request(f"http://{addr}{path}", method=method, headers=headers,
                                 data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def check_live(binary, filters, failures):
    key = "ak_00000000000000000000." + "x" * 43
    scenarios = [
        # Embedded store, no API key stored: refusals, and seed 000's 500 for a bad key.
        ("refused", {"VAULT_BACKEND": "embedded", "VAULT_PATH": "vault.sqlite3"}, [
            ("POST", "/v1/endpoints/ep1/secret/rotate", {}, 401),
            ("POST", "/v1/webhook/secret", {}, 500),
            ("GET", "/v1/endpoints/ep1", {"Authorization": f"Bearer {key}"}, 401),
        ], {}),
        # Secrets Manager unreachable: native 503 unavailable on every route.
        ("unavailable", {"VAULT_BACKEND": "secretsmanager", "AWS_REGION": "us-east-1",
                         "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                         "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "VAULT_SM_MAX_ATTEMPTS": "1"}, [
            ("POST", "/v1/endpoints/ep1/secret/rotate", {"Authorization": f"Bearer {key}"}, 503),
            ("POST", "/v1/webhook/secret", {"X-API-KEY": key}, 500),
            ("GET", "/v1/endpoints/ep1", {"Authorization": f"Bearer {key}"}, 503),
        ], {"RotationFailures": 2, "ServerErrors-rotate-secret": 1,
            "ServerErrors-openformat-webhook-secret": 1, "ServerErrors-get-endpoint": 1}),
    ]
    workdir = tempfile.mkdtemp(prefix="metric-filters-")
    try:
        for tag, env, calls, wanted in scenarios:
            proc, out, addr = _serve(binary, env, workdir, tag)
            try:
                for method, path, headers, status in calls:
                    got = _call(addr, method, path, headers)
                    if got != status:
                        failures.append(f"live {tag}: {method} {path} answered {got}, not {status}")
            finally:
                proc.stdin.close()
                proc.wait(timeout=10)
                out.close()
            with open(os.path.join(workdir, f"out-{tag}.log")) as f:
                raw = [l for l in f.read().splitlines() if l.strip()]
            lines = []
            for l in raw:
                try:
                    lines.append(json.loads(l))
                except ValueError:
                    failures.append(f"live {tag}: a log line is not JSON: {l[:200]}")
            if not lines:
                failures.append(f"live {tag}: the route-server wrote no log line")
            for name, flt in filters.items():
                try:
                    got = published(flt, lines)[0]
                except PatternError as err:
                    failures.append(f"live {tag}: {name}: {err}")
                    continue
                want = float(wanted.get(flt["metric"], 0))
                if got != want:
                    failures.append(f"live {tag}: {name} ({flt['metric']}) publishes {got:g}, not {want:g}")
            print(f"live {tag}: {len(lines)} lines checked against {len(filters)} filters")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", default=os.path.join(ROOT, "template.yaml"))
    parser.add_argument("--route-server", help="a built route-server binary (target/debug/route-server)")
    args = parser.parse_args()

    _, filters = load_filters(args.template)
    failures = []
    for name, flt in filters.items():
        try:
            _Parser(flt["pattern"])
        except PatternError as err:
            failures.append(f"{name}: {err}")
        if flt["default"] is not None and flt["dimensions"]:
            failures.append(f"{name}: CloudWatch refuses DefaultValue with Dimensions")
        if len(flt["pattern"]) > 1024:
            failures.append(f"{name}: the pattern is over CloudWatch's 1,024 characters")
    if failures:
        sys.exit("\n".join(failures))
    check_anchors(filters, failures)
    check_fixtures(filters, failures)
    if args.route_server:
        check_live(os.path.abspath(args.route_server), filters, failures)
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"{len(filters)} metric filters match the code's log lines ({len(FIXTURES)} line shapes)")


if __name__ == "__main__":
    main()
