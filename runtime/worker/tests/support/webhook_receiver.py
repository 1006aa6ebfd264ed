#!/usr/bin/env python3
"""A webhook receiver for the tests: verifies every delivery's signature
with the `standardwebhooks` package (PyPI, an implementation independent of
Panel1's), records what it got as JSON lines, and answers as its mode file
says: `up` (204), `down` (503), `fail` (500), or `slow:MS` (204 after MS).

Usage: webhook_receiver.py LOG MODE_FILE SECRET [SECRET...]
Prints the port it listens on (127.0.0.1) as its first line.
A delivery verified by no secret is answered 400 and logged with
"verified": false.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

log_path, mode_path, secrets = sys.argv[1], sys.argv[2], sys.argv[3:]
hooks = [Webhook(s) for s in secrets]
lock = threading.Lock()


def mode():
    try:
        with open(mode_path) as f:
            return f.read().strip() or "up"
    except OSError:
        return "up"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        m = mode()
        if m == "down":
            self.answer(503, b"down for maintenance")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified_by = []
        for i, hook in enumerate(hooks):
            try:
                hook.verify(body, headers)
                verified_by.append(i)
            except Exception:
                pass
        entry = {
            "id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "signatures": len(headers.get("webhook-signature", "").split()),
            "verified": bool(verified_by),
            "verified_by": verified_by,
            "mode": m,
            "body": json.loads(body or b"null"),
        }
        if m.startswith("slow:"):
            time.sleep(int(m[5:]) / 1000)
        with lock:
            with open(log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")
        if not verified_by:
            self.answer(400, b"bad signature")
        elif m == "fail":
            self.answer(500, b"receiver error")
        else:
            self.answer(204, b"")

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
