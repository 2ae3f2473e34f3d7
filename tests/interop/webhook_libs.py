"""Signs and verifies with third-party Standard Webhooks libraries, for tests/it/interop.rs.

    webhook_libs.py verify LIB SECRET   < request.json   exit 0 if it verifies, 1 if it does not
    webhook_libs.py sign   LIB SECRET   < request.json   prints the webhook-signature header

    webhook_libs.py public-key ed25519 WHSK                 prints the whpk_ key of a whsk_ key

LIB is "standardwebhooks" (the official package) or "svix". SECRET is a whsec_ secret, or a
uuid secret, whose HMAC key is its text's UTF-8 bytes (passed to the libraries as raw bytes).
LIB "ed25519" is the `cryptography` package's Ed25519, an implementation independent of the
product's (aws-lc): it verifies `v1a` entries with a whpk_ public key and signs with a whsk_
secret key (Svix's format: the 32-byte seed, then the 32-byte public key). No reference
Standard Webhooks library verifies `v1a` yet.
request.json: {"id": ..., "timestamp": ..., "payload": ..., "signature": ...}.
"""

import base64
import json
import sys
from datetime import datetime, timezone


def ed25519_private(whsk):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    raw = base64.b64decode(whsk.removeprefix("whsk_"), validate=True)
    if not whsk.startswith("whsk_") or len(raw) != 64:
        raise SystemExit("not a whsk_ key of 64 bytes")
    key = Ed25519PrivateKey.from_private_bytes(raw[:32])
    if public_bytes(key.public_key()) != raw[32:]:
        raise SystemExit("the whsk_ key's public half is not its seed's")
    return key


def public_bytes(public):
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def ed25519(action, key, request):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if action == "public-key":
        print("whpk_" + base64.b64encode(public_bytes(ed25519_private(key).public_key())).decode())
        return 0
    content = f'{request["id"]}.{request["timestamp"]}.{request["payload"]}'.encode()
    if action == "sign":
        print("v1a," + base64.b64encode(ed25519_private(key).sign(content)).decode())
        return 0
    if not key.startswith("whpk_"):
        raise SystemExit("a receiver verifies with a whpk_ public key")
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key[5:], validate=True))
    for entry in request["signature"].split(" "):
        version, _, encoded = entry.partition(",")
        if version != "v1a":
            continue
        try:
            public.verify(base64.b64decode(encoded), content)
            return 0
        except (InvalidSignature, ValueError):
            continue
    print("rejected: no v1a signature verifies", file=sys.stderr)
    return 1


def webhook(lib, secret):
    key = secret if secret.startswith("whsec_") else secret.encode()
    if lib == "standardwebhooks":
        from standardwebhooks.webhooks import Webhook
    elif lib == "svix":
        from svix.webhooks import Webhook
    else:
        raise SystemExit(f"unknown library {lib}")
    return Webhook(key)


def main():
    action, lib, secret = sys.argv[1:4]
    if lib == "ed25519":
        return ed25519(action, secret, {} if action == "public-key" else json.load(sys.stdin))
    request = json.load(sys.stdin)
    hook = webhook(lib, secret)
    if action == "sign":
        when = datetime.fromtimestamp(int(request["timestamp"]), tz=timezone.utc)
        print(hook.sign(request["id"], when, request["payload"]))
        return 0
    headers = {
        "webhook-id": request["id"],
        "webhook-timestamp": str(request["timestamp"]),
        "webhook-signature": request["signature"],
    }
    try:
        if lib == "standardwebhooks":
            hook.verify(request["payload"], headers, json_parse=False)
        else:
            hook.verify(request["payload"], headers)
    except Exception as error:  # the libraries raise WebhookVerificationError
        print(f"rejected: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
