#!/usr/bin/env python3
"""Cold start and warm latency of a function binary, measured the way Lambda runs it.

A minimal Lambda Runtime API (the three routes a custom runtime uses) serves API Gateway HTTP
API events to the real binary. Cold start = process spawn until the first response is posted
(init + first request). Warm = one event's round trip, measured from the moment the runtime
asks for the next event until its response arrives.

usage: bench_lambda.py BINARY RUNS WARM_EVENTS EVENT_JSON  (prints one JSON object)
"""

import http.server
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
import uuid


class Runtime(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, event):
        super().__init__(("127.0.0.1", 0), Handler)
        self.event = event
        self.pending = queue.Queue()
        self.responses = queue.Queue()
        self.handed_out = {}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            return self.reply(404, b"{}")
        request_id = self.server.pending.get()
        if request_id is None:
            return self.reply(500, b"{}")
        self.server.handed_out[request_id] = time.perf_counter()
        body = json.dumps(self.server.event).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:bench")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        payload = self.rfile.read(length)
        parts = self.path.split("/")
        request_id = parts[-2] if len(parts) >= 2 else ""
        self.server.responses.put((request_id, time.perf_counter(), self.path.endswith("/response"), payload))
        self.reply(202, b"{}")

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def one_process(binary, warm_events, event):
    runtime = Runtime(event)
    threading.Thread(target=runtime.serve_forever, daemon=True).start()
    env = dict(os.environ)
    env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{runtime.server_address[1]}"
    env.update({
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "RUST_LOG": "warn",
    })
    first_id = str(uuid.uuid4())
    runtime.pending.put(first_id)
    started = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        request_id, at, ok, payload = runtime.responses.get(timeout=30)
        cold = at - started
        status = json.loads(payload).get("statusCode") if ok else None
        if not ok or request_id != first_id or not status or status >= 500:
            raise RuntimeError(f"first invocation failed: {payload[:300]!r}")
        warm = []
        for _ in range(warm_events):
            request_id = str(uuid.uuid4())
            runtime.pending.put(request_id)
            _, at, ok, payload = runtime.responses.get(timeout=30)
            if not ok:
                raise RuntimeError(f"warm invocation failed: {payload[:300]!r}")
            warm.append(at - runtime.handed_out[request_id])
        return cold, warm, status
    finally:
        runtime.pending.put(None)
        process.kill()
        process.wait()
        runtime.shutdown()


def main():
    binary, runs, warm_events, event_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    with open(event_path) as f:
        event = json.load(f)
    colds, warms, statuses = [], [], set()
    for _ in range(runs):
        cold, warm, status = one_process(binary, warm_events, event)
        colds.append(cold)
        warms.extend(warm)
        statuses.add(status)
    print(json.dumps({
        "binary_bytes": os.path.getsize(binary),
        "cold_ms_median": statistics.median(colds) * 1000,
        "warm_ms_median": statistics.median(warms) * 1000 if warms else None,
        "runs": runs,
        "warm_events": len(warms),
        "statuses": sorted(statuses),
    }))


if __name__ == "__main__":
    main()
