#!/usr/bin/env python3
"""Process start to first response, through a minimal Lambda runtime API emulator.

For each binary: start a one-shot runtime API on loopback, spawn the binary pointed at it
(AWS_LAMBDA_RUNTIME_API), hand it one event, and time spawn -> response POST, and the first
request alone (event handed over -> response POST: what a caller waits for once init is done,
with its connections warmed at init or not). Repeats and prints median and p90 per binary.
Bounded: one event per process, a timeout per run.

usage: start_to_ready.py EVENT_FILE RUNS NAME=BINARY [NAME=BINARY ...]
The binaries inherit this process's environment (table, secret, endpoints).
"""
import http.server, json, os, socketserver, statistics, subprocess, sys, threading, time

NEXT = "/2018-06-01/runtime/invocation/next"


def run_once(binary, event):
    done = threading.Event()
    result = {}

    class Api(http.server.BaseHTTPRequestHandler):
        served = False

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != NEXT or Api.served:
                done.wait(5)  # second poll: hold it until we are finished
                self.send_response(500)
                self.end_headers()
                return
            Api.served = True
            body = event
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            result["handed"] = time.perf_counter()

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length)
            result["at"] = time.perf_counter()
            result["path"] = self.path
            result["body"] = payload
            self.send_response(202)
            self.end_headers()
            done.set()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Api)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
    })
    started = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished = done.wait(30)
    process.kill()
    process.wait()
    server.shutdown()
    if not finished:
        raise SystemExit(f"{binary}: no response within 30 s")
    if not result["path"].endswith("/response"):
        raise SystemExit(f"{binary}: answered {result['path']}: {result['body'][:300]!r}")
    return (result["at"] - started) * 1000, (result["at"] - result["handed"]) * 1000, result["body"]


def main():
    event_file, runs, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    event = open(event_file, "rb").read()
    for target in targets:
        name, binary = target.split("=", 1)
        times, firsts, body = [], [], b""
        for _ in range(runs):
            elapsed, first, body = run_once(binary, event)
            times.append(elapsed)
            firsts.append(first)
        times.sort()
        firsts.sort()
        p90 = lambda values: round(values[min(len(values) - 1, int(len(values) * 0.9))], 1)
        print(json.dumps({"name": name, "runs": runs, "median_ms": round(statistics.median(times), 1),
                          "p90_ms": p90(times), "min_ms": round(times[0], 1),
                          "first_request_median_ms": round(statistics.median(firsts), 2),
                          "first_request_p90_ms": p90(firsts), "response": body[:120].decode(errors="replace")}))


if __name__ == "__main__":
    main()
