#!/usr/bin/env python3
"""A webhook endpoint for the tests, in plain Python.

serve ANSWERS LOG [PORT]: listens on 127.0.0.1 (on PORT, or any port; printed as
"listening <port>"), answers the n-th
request with line n of the file ANSWERS (the last line repeats; the file is read again at every
request, so a test can change it), e.g. "200", "500", "410" or "503:7" (503 with Retry-After: 7),
appends each request to LOG as a JSON line and then prints "request <count>", before
answering.

verify SECRET LOG: checks every logged request's signature with the Standard Webhooks reference
library (PyPI `standardwebhooks`) and prints them as a JSON array; exits 1 if one fails.
"""
import http.server
import json
import sys
import threading


def serve(answers_path, log_path, port=0):
    lock = threading.Lock()
    count = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with lock:
                n = count[0]
                count[0] += 1
                with open(answers_path) as f:
                    lines = [l.strip() for l in f if l.strip()]
                answer = lines[min(n, len(lines) - 1)] if lines else "200"
                code, _, retry_after = answer.partition(":")
                record = {
                    "n": n,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8"),
                    "answer": int(code),
                }
                with open(log_path, "a") as log:
                    log.write(json.dumps(record) + "\n")
                # Tell the test, which waits on this line rather than polling the log.
                print(f"request {n + 1}", flush=True)
            self.send_response(int(code))
            if retry_after:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


def verify(secret, log_path):
    from standardwebhooks.webhooks import Webhook

    hook = Webhook(secret)
    out = []
    with open(log_path) as log:
        for line in log:
            record = json.loads(line)
            payload = hook.verify(record["body"], record["headers"])
            out.append({
                "n": record["n"],
                "answer": record["answer"],
                "id": record["headers"]["webhook-id"],
                "type": payload["type"],
                "payload": payload,
            })
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    elif sys.argv[1] == "verify":
        try:
            verify(sys.argv[2], sys.argv[3])
        except Exception as e:  # the library raises WebhookVerificationError
            print(f"verification failed: {e!r}", file=sys.stderr)
            sys.exit(1)
