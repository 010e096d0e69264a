"""A real HTTP server on 127.0.0.1 that serves a folder with ETag / Last-Modified, answers 304, and can misbehave."""

from __future__ import annotations

import hashlib
import threading
import time
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self


class FileServer:
    """Serves `root`'s files; records every request; `faults[path]` lists statuses to answer before the file."""

    def __init__(self, root: Path, *, etag: bool = True, last_modified: bool = True):
        self.root, self.etag, self.last_modified = root, etag, last_modified
        self.requests: list[dict] = []  # {"path", "headers", "status"}
        self.faults: dict[str, list[int]] = {}
        self.delay = 0.0
        self.content_type: str | None = None
        self.auth: str | None = None  # "Basic …" the server demands
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._answer(self)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def statuses(self, path: str) -> list[int]:
        return [r["status"] for r in self.requests if r["path"] == path]

    def _answer(self, h: BaseHTTPRequestHandler) -> int:
        """Answer one GET; its record is complete before the first byte of the answer goes out."""
        if self.delay:
            time.sleep(self.delay)
        if self.auth and h.headers.get("Authorization") != self.auth:
            return self._status(h, 401)
        pending = self.faults.get(h.path)
        if pending:
            return self._status(h, pending.pop(0))
        file = self.root / h.path.lstrip("/")
        if not file.is_file():
            return self._status(h, 404)
        body = file.read_bytes()
        tag = '"' + hashlib.md5(body).hexdigest() + '"'
        mtime = int(file.stat().st_mtime)
        if self.etag and h.headers.get("If-None-Match") == tag:
            return self._status(h, 304, tag, mtime)
        since = h.headers.get("If-Modified-Since")
        if self.last_modified and since and not (self.etag and h.headers.get("If-None-Match")) \
                and mtime <= parsedate_to_datetime(since).timestamp():
            return self._status(h, 304, tag, mtime)
        self._record(h, 200)
        h.send_response(200)
        h.send_header("Content-Type", self.content_type or "application/octet-stream")
        h.send_header("Content-Length", str(len(body)))
        self._validators(h, tag, mtime)
        h.end_headers()
        h.wfile.write(body)
        return 200

    def _record(self, h: BaseHTTPRequestHandler, status: int) -> None:
        self.requests.append({"path": h.path, "headers": dict(h.headers), "status": status})

    def _status(self, h: BaseHTTPRequestHandler, status: int, tag: str | None = None, mtime: int = 0) -> int:
        self._record(h, status)
        h.send_response(status)
        if tag:
            self._validators(h, tag, mtime)
        if status == 429:
            h.send_header("Retry-After", "0")
        h.send_header("Content-Length", "0")
        h.end_headers()
        return status

    def _validators(self, h: BaseHTTPRequestHandler, tag: str, mtime: int) -> None:
        if self.etag:
            h.send_header("ETag", tag)
        if self.last_modified:
            h.send_header("Last-Modified", formatdate(mtime, usegmt=True))
