"""Composio's own Python client (`composio-client` on PyPI) against a running server.

Run by run.mjs beside it, which counts the `ok - ...` / `FAIL - ...` lines this prints; exits
non-zero if any check failed. Needs BASE_URL, API_KEY (an owner key) and MEMBER_API_KEY (a
member key) in the environment. The client is configured with nothing but its base URL and its
API key: `ProjectAuth` sends `x-api-key`, `UserAuth` sends `x-user-api-key`, the contract's
two auth headers. Its `webhook_subscriptions.rotate_secret(id)` posts to
`/api/v3.1/webhook_subscriptions/{id}/rotate_secret` with no body.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import traceback
import urllib.error
import urllib.parse
import urllib.request

from composio_client import (
    AuthenticationError,
    Composio,
    NotFoundError,
    ProjectAuth,
    UserAuth,
    __version__,
)

BASE_URL = os.environ["BASE_URL"].rstrip("/")
API_KEY = os.environ["API_KEY"]
MEMBER_API_KEY = os.environ["MEMBER_API_KEY"]
NAME = f"composio PyPI composio-client {__version__}"

failures = 0


def check(name, body):
    global failures
    try:
        body()
        print(f"ok - {NAME}: {name}", flush=True)
    except Exception:  # noqa: BLE001 - any failure is reported and counted
        failures += 1
        detail = traceback.format_exc().strip().replace("\n", "\n    ")
        print(f"FAIL - {NAME}: {name}: {detail}", flush=True)


def native(method, path, body=None):
    """The native API, with the standard library: what the client is checked against."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{BASE_URL}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {API_KEY}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            text = res.read().decode()
    except urllib.error.HTTPError as err:
        raise AssertionError(f"{method} {path}: {err.code} {err.read().decode()}") from None
    return json.loads(text) if text else None


def new_endpoint(prefix):
    endpoint_id = f"{prefix}_{secrets.token_hex(6)}"
    created = native("POST", "/v1/endpoints", {"id": endpoint_id, "url": "https://example.com/hooks"})
    return endpoint_id, created["secret"]["value"]


def expect_revealed(endpoint_id, secret, first):
    assert isinstance(secret, str) and secret.startswith("whsec_"), f"not a whsec_ secret: {secret!r}"
    assert secret != first, "the client returned the secret the endpoint was created with"
    revealed = native("GET", f"/v1/endpoints/{urllib.parse.quote(endpoint_id, safe='')}/secret")
    assert revealed["secret"]["value"] == secret, (
        f"reveal shows {revealed['secret']['masked']}, not the secret the client returned"
    )
    assert revealed["previous_secrets"] == [], (
        f"{len(revealed['previous_secrets'])} older secret(s) still valid; the contract ends them at once"
    )


def expect_error(call, error_class, status, slug):
    try:
        call()
    except error_class as err:
        assert err.status_code == status, f"expected status {status}, got {err.status_code}"
        body = err.body if isinstance(err.body, dict) else {}
        got = (body.get("error") or {}).get("slug")
        assert got == slug, f"expected slug {slug}, got body {err.body!r}"
        return
    raise AssertionError(f"expected {error_class.__name__}, the call succeeded")


def rotate_matches_reveal(auth):
    def run():
        client = Composio(auth=auth, base_url=BASE_URL)
        endpoint_id, first = new_endpoint("sub_py")
        rotated = client.webhook_subscriptions.rotate_secret(endpoint_id)
        assert rotated.id == endpoint_id, f"answered id {rotated.id}, not {endpoint_id}"
        expect_revealed(endpoint_id, rotated.secret, first)

    return run


def unknown_is_not_found():
    client = Composio(auth=ProjectAuth(API_KEY), base_url=BASE_URL)
    expect_error(
        lambda: client.webhook_subscriptions.rotate_secret("sub_never_created"),
        NotFoundError,
        404,
        "webhook_subscription_not_found",
    )


def member_is_refused():
    client = Composio(auth=ProjectAuth(MEMBER_API_KEY), base_url=BASE_URL)
    endpoint_id, _ = new_endpoint("sub_py")
    expect_error(
        lambda: client.webhook_subscriptions.rotate_secret(endpoint_id),
        AuthenticationError,
        401,
        "insufficient_permissions",
    )


check("webhook_subscriptions.rotate_secret (x-api-key) = native reveal", rotate_matches_reveal(ProjectAuth(API_KEY)))
check("webhook_subscriptions.rotate_secret (x-user-api-key) = native reveal", rotate_matches_reveal(UserAuth(API_KEY)))
check("unknown subscription -> NotFoundError 404", unknown_is_not_found)
check("member key -> AuthenticationError 401", member_is_refused)
sys.exit(1 if failures else 0)
