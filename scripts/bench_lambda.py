#!/usr/bin/env python3
"""Cold start and warm latency of a function binary, measured the way Lambda runs it.

A minimal Lambda Runtime API (the three routes a custom runtime uses) serves API Gateway HTTP
API events to the real binary. Cold start = process spawn until the first response is posted
(init + first request); cold CPU = the CPU time the process (all its threads) used by then,
which is what stretches on Lambda's smaller memory sizes. Warm = one event's round trip,
measured from the moment the runtime asks for the next event until its response arrives.
Peak RSS = the process's maximum resident set over its whole life (cold start and warm
events), the kernel's VmHWM.

usage: bench_lambda.py COMMAND RUNS WARM_EVENTS EVENT_JSON  (prints one JSON object)
COMMAND is a binary, or a command line (e.g. "python -m awslambdaric handler.fn").
"""

import http.server
import json
import os
import itertools
import queue
import shlex
import statistics
import subprocess
import sys
import threading
import time
import uuid


class Runtime(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A runtime killed between two events resets its connection: expected, not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def __init__(self, next_event):
        super().__init__(("127.0.0.1", 0), Handler)
        self.next_event = next_event
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
        body = json.dumps(self.server.next_event()).encode()
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


def peak_rss_kb(pid):
    """The process's high-water resident set (VmHWM), read before it is stopped. Not the
    rusage of the child: Linux carries the forking parent's (this script's) peak into it."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


def cpu_ms(pid):
    """CPU time the process has used so far, all its threads (schedstat, nanoseconds)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e6


def one_process(command, warm_events, next_event):
    runtime = Runtime(next_event)
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
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rss_kb = None
    try:
        request_id, at, ok, payload = runtime.responses.get(timeout=30)
        cold = at - started
        cold_cpu = cpu_ms(process.pid)
        status = json.loads(payload).get("statusCode") if ok else None
        if not ok or request_id != first_id or not status or status >= 500:
            raise RuntimeError(f"first invocation failed: {payload[:300]!r}")
        warm, statuses = [], {status}
        for _ in range(warm_events):
            request_id = str(uuid.uuid4())
            runtime.pending.put(request_id)
            _, at, ok, payload = runtime.responses.get(timeout=30)
            if not ok:
                raise RuntimeError(f"warm invocation failed: {payload[:300]!r}")
            warm.append(at - runtime.handed_out[request_id])
            statuses.add(json.loads(payload).get("statusCode"))
    finally:
        runtime.pending.put(None)
        rss_kb = peak_rss_kb(process.pid)
        process.kill()
        process.wait()
        runtime.shutdown()
    return cold, cold_cpu, warm, statuses, rss_kb


def main():
    command, runs, warm_events, event_path = shlex.split(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    # The event file holds one event, or a list of them handed out in turn across every run
    # (so that a row of rotations can spread over several endpoints).
    with open(event_path) as f:
        loaded = json.load(f)
    events = itertools.cycle(loaded if isinstance(loaded, list) else [loaded])
    colds, cpus, warms, statuses, rss = [], [], [], set(), []
    for _ in range(runs):
        cold, cold_cpu, warm, seen, rss_kb = one_process(command, warm_events, lambda: next(events))
        colds.append(cold)
        cpus.append(cold_cpu)
        warms.extend(warm)
        statuses |= seen
        rss.append(rss_kb)
    print(json.dumps({
        "binary_bytes": os.path.getsize(command[0]) if len(command) == 1 else None,
        "cold_ms_median": statistics.median(colds) * 1000,
        "cold_ms_min": min(colds) * 1000,
        "cold_ms_max": max(colds) * 1000,
        "cold_cpu_ms_median": statistics.median(cpus),
        "peak_rss_mb_median": statistics.median(rss) / 1024,
        "peak_rss_mb_max": max(rss) / 1024,
        "warm_ms_median": statistics.median(warms) * 1000 if warms else None,
        "runs": runs,
        "warm_events": len(warms),
        "statuses": sorted(statuses),
    }))


if __name__ == "__main__":
    main()
