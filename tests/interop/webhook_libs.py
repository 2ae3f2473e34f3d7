"""Signs and verifies with third-party Standard Webhooks libraries, for tests/it/interop.rs.

    webhook_libs.py verify LIB SECRET   < request.json   exit 0 if it verifies, 1 if it does not
    webhook_libs.py sign   LIB SECRET   < request.json   prints the webhook-signature header

LIB is "standardwebhooks" (the official package) or "svix". SECRET is a whsec_ secret, or a
uuid secret, whose HMAC key is its text's UTF-8 bytes (passed to the libraries as raw bytes).
request.json: {"id": ..., "timestamp": ..., "payload": ..., "signature": ...}.
"""

import json
import sys
from datetime import datetime, timezone


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
