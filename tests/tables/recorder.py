"""A stand-in object store for the credentials tests: answers every request 404 and writes each one (method,
path, headers named in lower case) as a JSON line to a file. Run in a process of its own (``python -m tests.tables.recorder PORT
FILE``): delta-rs holds the GIL while it waits for its requests, so a server thread beside it never answers."""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def serve(port: int, requests: Path) -> None:
    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            line = {
                "method": self.command,
                "path": self.path,
                "headers": {name.lower(): value for name, value in self.headers.items()},
            }
            with requests.open("a") as out:
                out.write(json.dumps(line) + "\n")
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *args) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Recorder).serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]))
