"""A small fake of the Kaggle API that the real kaggle client talks to, on 127.0.0.1 in a thread.

It answers what kaggle 2.2.5 / kagglesdk really send (`POST /v1/{service}/{method}` with a JSON body; the
client's PROD endpoint is the server root): `security.OAuthService/IntrospectToken` (token sign-in),
`datasets.DatasetApiService/GetDataset` (`currentVersionNumber`), `ListDatasetFiles`, and `DownloadDataset`,
which answers 302 to `GET /blobs/{owner}/{slug}/{version}/{file}[.zip]` on the same server. Errors are JSON
`{"code": …, "message": …}` with that HTTP status, as Kaggle sends them. Every request is recorded.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

API = "/v1/"
BLOBS = "/blobs/"


@dataclass
class Request:
    """One request the fake received."""

    method: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)
    auth: str = ""  # "basic USER", "bearer", or ""

    @property
    def call(self) -> str:
        """The API method (`GetDataset`, …) or `blob`."""
        return self.path.rsplit("/", 1)[-1] if self.path.startswith(API) else "blob"


class FakeKaggle:
    """The fake's state, configurable per test: datasets, credentials, injected failures, recorded requests."""

    def __init__(self, datasets: dict[str, dict[int, dict[str, bytes]]], *, users: dict[str, str] | None = None,
                 tokens: dict[str, str] | None = None):
        self.datasets = datasets  # "owner/slug" → version → file name → bytes
        self.current: dict[str, int] = {}  # "owner/slug" → current version (default: the highest)
        self.users = users or {}  # username → key (HTTP basic)
        self.tokens = tokens or {}  # bearer token → username
        self.zipped = False  # serve every file as {file}.zip holding the file
        self.archives: dict[str, dict[str, bytes]] = {}  # file name → the entries of the zip served for it
        self.unavailable = 0  # answer the next N requests with 503
        self.slow = 0  # make the next N requests wait `delay` seconds before answering
        self.delay = 0.0
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._server.handle_error = lambda request, address: None  # a client that timed out is not an error
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-kaggle", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- what tests look at -------------------------------------------------------------------------------
    def calls(self, name: str) -> list[Request]:
        """The recorded requests of one API method (`GetDataset`, `DownloadDataset`, …) or `blob`."""
        return [r for r in self.requests if r.call == name]

    @property
    def downloads(self) -> list[tuple[str, int | None]]:
        """(file name, version) of every DownloadDataset request."""
        return [(r.body.get("fileName", ""), r.body.get("datasetVersionNumber")) for r in self.calls("DownloadDataset")]

    # --- answers ------------------------------------------------------------------------------------------
    def record(self, request: Request) -> tuple[int, float]:
        """Record a request; return (503 if a failure is injected else 0, seconds to wait first)."""
        with self._lock:
            self.requests.append(request)
            wait = self.delay if self.slow > 0 else 0.0
            self.slow = max(0, self.slow - 1)
            if self.unavailable > 0:
                self.unavailable -= 1
                return 503, wait
            return 0, wait

    def user(self, header: str) -> str | None:
        """The user an Authorization header signs in, or None."""
        kind, _, value = header.partition(" ")
        if kind == "Bearer":
            return self.tokens.get(value)
        if kind == "Basic":
            username, _, key = base64.b64decode(value).decode().partition(":")
            return username if username in self.users and self.users[username] == key else None
        return None

    def version_files(self, body: dict[str, Any]) -> tuple[str, int, dict[str, bytes]] | None:
        """The dataset, version and files a request names, or None when there is no such dataset or version."""
        ref = f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"
        versions = self.datasets.get(ref)
        if not versions:
            return None
        version = body.get("datasetVersionNumber") or self.current.get(ref, max(versions))
        return (ref, version, versions[version]) if version in versions else None

    def blob(self, path: str) -> bytes | None:
        """The bytes served at /blobs/{owner}/{slug}/{version}/{file}[.zip]."""
        owner, slug, version, name = path[len(BLOBS):].split("/", 3)
        zipped = name.endswith(".zip")
        name = name.removesuffix(".zip")
        data = self.datasets.get(f"{owner}/{slug}", {}).get(int(version), {}).get(name)
        if data is None or not zipped:
            return data
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for entry, content in self.archives.get(name, {name: data}).items():
                archive.writestr(entry, content)
        return out.getvalue()


class _Handler(BaseHTTPRequestHandler):
    """Answers one request from the FakeKaggle state."""

    protocol_version = "HTTP/1.1"

    @property
    def fake(self) -> FakeKaggle:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._handle({})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._handle(json.loads(raw) if raw else {})

    def _handle(self, body: dict[str, Any]) -> None:
        header = self.headers.get("Authorization", "")
        user = self.fake.user(header)
        auth = f"basic {user}" if header.startswith("Basic") else header.split(" ")[0].lower()
        failure, wait = self.fake.record(Request(self.command, self.path, body, auth))
        time.sleep(wait)
        if failure:
            return self._json(failure, {"code": failure, "message": "Service Unavailable"})
        if self.command == "GET" and self.path.startswith(BLOBS):
            data = self.fake.blob(self.path)
            return self._bytes(data) if data is not None else self._json(404, {"code": 404, "message": "Not found"})
        call = self.path.rsplit("/", 1)[-1]
        if self.command != "POST" or not self.path.startswith(API):
            return self._json(404, {"code": 404, "message": f"No route {self.command} {self.path}"})
        if call == "IntrospectToken":
            username = self.fake.tokens.get(body.get("token", ""))
            return self._json(200, {"active": True, "username": username} if username else {})
        if user is None:
            return self._json(401, {"code": 401, "message": "Unauthenticated"})
        found = self.fake.version_files(body)
        if found is None:
            return self._json(404, {"code": 404, "message": "Not found"})
        ref, version, files = found
        if call == "GetDataset":
            return self._json(200, {"ref": ref, "currentVersionNumber": version, "title": ref})
        if call == "ListDatasetFiles":
            return self._json(200, {"datasetFiles": [{"name": n, "totalBytes": len(b)} for n, b in files.items()]})
        if call == "DownloadDataset":
            name = body.get("fileName", "")
            if name not in files:
                return self._json(404, {"code": 404, "message": "Not found"})
            zipped = self.fake.zipped or name in self.fake.archives
            location = f"{self.fake.url}{BLOBS}{ref}/{version}/{name}{'.zip' if zipped else ''}"
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self._json(404, {"code": 404, "message": f"No method {call}"})

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self._bytes(data, status=None)

    def _bytes(self, data: bytes, status: int | None = 200) -> None:
        if status is not None:
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def route_client(server: FakeKaggle, monkeypatch: Any, home: Path) -> None:
    """Point the real kaggle client at `server`, with no real credential file of this machine in reach."""

    from kagglesdk.kaggle_env import KaggleEnv, _env_to_endpoint

    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))  # no real ~/.kaggle/kaggle.json, access_token or credentials.json
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(home / ".kaggle"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_API_ENVIRONMENT", "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(name, raising=False)
    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi
    # KaggleApi reads KAGGLE_CONFIG_DIR once, when kaggle is first imported: point it at the test's folder
    monkeypatch.setattr(KaggleApi, "config_dir", str(home / ".kaggle"))
    monkeypatch.setattr(KaggleApi, "config", str(home / ".kaggle" / "kaggle.json"))
    monkeypatch.setitem(_env_to_endpoint, KaggleEnv.PROD, server.url)
