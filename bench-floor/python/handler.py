"""get-endpoint's job in Python, the comparison `make bench` prints: the boto3 client is built
once at import, then each event is one GetSecretValue of the endpoint's secret
(`{VAULT_PREFIX}/{BENCH_TENANT}/{id}`, as the Rust functions name it), answered as an API Gateway
HTTP response with the secret values masked. Run as Lambda's Python runtime runs a handler:
`python -m awslambdaric handler.fn` (scripts/bench.sh). Unlike the Rust function it does not
authenticate the caller (one Secrets Manager call per event instead of the Rust one's two on a
cold start), so the ratio it gives is conservative.
"""

import json
import os

import boto3

client = boto3.client("secretsmanager")
PREFIX = os.environ.get("VAULT_PREFIX", "webhook-secrets")
TENANT = os.environ["BENCH_TENANT"]


def mask(value):
    if isinstance(value, dict):
        return {k: (v[:6] + "…" + v[-4:] if k == "value" and isinstance(v, str) else mask(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def fn(event, context):
    endpoint_id = event["pathParameters"]["id"]
    secret = client.get_secret_value(SecretId=f"{PREFIX}/{TENANT}/{endpoint_id}")
    record = json.loads(secret["SecretString"])
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json", "x-request-id": context.aws_request_id},
        "body": json.dumps(mask(record)),
    }
