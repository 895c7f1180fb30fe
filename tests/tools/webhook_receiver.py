"""A webhook receiver for the tests: records every request it gets and answers as its path
says. It verifies nothing itself; tests/tools/verify_webhook.py does, with the reference
implementation of the Standard Webhooks specification.

Usage: webhook_receiver.py LOG: listens on a free 127.0.0.1 port, prints `listening PORT`, then
appends one JSON line per request to LOG: {"path", "headers", "body"}.

Paths: /ok answers 204; /flaky/N answers 500 to the first N requests of each webhook-id, then
200; /gone answers 410; /hang never answers in time; /huge answers 200 with an endless body;
/redirect answers 302 to /ok?redirected (which a delivery must not follow); anything else 404.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = sys.argv[1]
lock = threading.Lock()
seen = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length).decode("utf-8", "replace")
        record = {"path": self.path, "headers": dict(self.headers.items()), "body": body}
        with lock:
            with open(LOG, "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
            key = (self.path, self.headers.get("webhook-id"))
            seen[key] = seen.get(key, 0) + 1
            count = seen[key]
        parts = self.path.strip("/").split("/")
        if parts[0] == "ok":
            self.answer(204)
        elif parts[0] == "flaky":
            self.answer(500 if count <= int(parts[1]) else 200)
        elif parts[0] == "gone":
            self.answer(410)
        elif parts[0] == "hang":
            time.sleep(30)
            self.answer(200)
        elif parts[0] == "huge":
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("content-length", str(1 << 30))
            self.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range((1 << 30) // len(chunk)):
                    self.wfile.write(chunk)
            except OSError:
                pass
        elif parts[0] == "redirect":
            self.send_response(302)
            self.send_header("location", "/ok?redirected")
            self.send_header("content-length", "0")
            self.end_headers()
        else:
            self.answer(404)

    def answer(self, status):
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
