"""Files on any web server: `{table}` in a URL template, conditional GETs, one version per table.

Each table's URL is the template with `{table}` replaced. A fetch asks for each file with the validators of the
version last captured (`If-None-Match` with its ETag, `If-Modified-Since` with its Last-Modified); a 304 answer
means the file is unchanged and is not downloaded. When every table is unchanged, the cycle is skipped like an
unchanged Kaggle version. When some table changed, the unchanged ones are downloaded again (a capture needs every
table's file). The version of a table is its ETag, Last-Modified and the SHA-256 of its bytes (a server without
validators is recognised unchanged by its bytes); all tables' versions travel as one string (see `versions`).

A file is CSV, gzipped CSV or Parquet, told apart by its first bytes (so a URL suffix, a Content-Type, or a
server that gzips on the fly cannot mislead); an HTML page is refused. Timeouts, broken connections, HTTP 429 and
5xx are retried with exponential backoff (honouring Retry-After); 404, 401 and 403 fail that table with one line.
Two limits keep an unattended run from hanging or filling the disk: `timeout` caps the whole fetch of one table
(every attempt and wait included; a server that drips a few bytes at a time is cut off), `max_bytes` caps a file's
size — for a gzipped file, its decompressed size (a small gzip bomb cannot expand into the staging folder or the
loader). Past either, that table fails in one line; the others go on.
A user and password in the URL (or ~/.netrc) are sent, and never shown; neither are the values of query parameters
whose names look secret (`token=`, `sig=`, `key=`, `access_token=`, a presigned URL's `X-Amz-Signature=` …): see
`logs.mask`.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import TableConfig
from ..errors import SourceError
from ..extras import missing
from ..logs import add_secret, mask, redact, url_secrets
from . import versions
from .base import Fetch

log = logging.getLogger("cdc_core")
MAX_WAIT = 60.0  # seconds: the cap of one backoff wait
READ_TIMEOUT = 60.0  # seconds a connection may stay silent (capped by the whole fetch's `timeout`)
TIMEOUT = 1800.0  # seconds for the whole fetch of one table (the default of "source.timeout")
MAX_BYTES = 5_000_000_000  # bytes of one table's file, decompressed (the default of "source.max_bytes")
CHUNK = 1 << 20


class _Retry(Exception):
    "A transient answer (429 or 5xx) worth retrying."

    def __init__(self, response: Any):
        super().__init__(f"HTTP {response.status_code} {response.reason or ''}".strip())
        self.response = response


class HttpSource:
    """Downloads `{table}` of a URL template for each table, skipping files the server says are unchanged."""

    def __init__(self, url: str, *, attempts: int = 5, backoff: float = 1.0, timeout: float = TIMEOUT,
                 max_bytes: int = MAX_BYTES, read_timeout: float = READ_TIMEOUT):
        self.template = url
        self.attempts, self.backoff, self.timeout = max(1, attempts), backoff, timeout
        self.max_bytes, self.read_timeout = max_bytes, min(read_timeout, timeout)
        for secret in url_secrets(url):
            add_secret(secret)  # also masked where a library's message repeats the URL
        self.description = f"http {mask(url)}"

    def fetch(self, tables: Sequence[TableConfig], dest: Path, *, last_version: str | None = None) -> Fetch:
        session = _session()
        known = versions.decode(last_version)
        result, found, unchanged = Fetch(version=None), {}, []
        for table in tables:
            try:
                got = self._get(session, table, Path(dest), known.get(table.name))
            except SourceError as exc:
                result.errors[table.name] = exc
                continue
            if got is None and table.name not in known:
                result.errors[table.name] = self._bare_304(table)
            elif got is None or got[1] == known.get(table.name):
                unchanged.append(table.name)
                found[table.name] = known[table.name]
                if got is not None:
                    result.files[table.name] = got[0]
            else:
                result.files[table.name], found[table.name] = got
        if unchanged and len(unchanged) == len(found) and not result.errors and last_version is not None:
            for path in result.files.values():
                path.unlink(missing_ok=True)
            return Fetch(version=last_version, unchanged=True)
        for name in unchanged:  # another table changed: this one's file is needed again
            if name in result.files:
                continue
            table = next(t for t in tables if t.name == name)
            got = None
            try:
                got = self._get(session, table, Path(dest), None)
            except SourceError as exc:
                result.errors[name] = exc
            if got is None:
                found.pop(name)
                result.errors.setdefault(name, self._bare_304(table))
            else:
                result.files[name], found[name] = got
        result.version = versions.encode(found) if found else None
        return result

    def _url(self, table: TableConfig) -> str:
        return self.template.replace("{table}", table.name)

    def _bare_304(self, table: TableConfig) -> SourceError:
        return SourceError(f'Table "{table.name}": {mask(self._url(table))} answered 304 Not Modified to a plain '
                           'GET — the server is misconfigured; check "source.url"')

    def _get(self, session: Any, table: TableConfig, dest: Path, known: dict | None) -> tuple[Path, dict] | None:
        """Download one table's file (None when the server answers 304) and its version."""
        import requests
        from tenacity import RetryError

        url = self._url(table)
        headers = {}
        if known and known.get("etag"):
            headers["If-None-Match"] = known["etag"]
        if known and known.get("last_modified"):
            headers["If-Modified-Since"] = known["last_modified"]
        at = f'Table "{table.name}": {mask(url)}'
        deadline = time.monotonic() + self.timeout
        try:
            return self._retrying(lambda: self._download(session, url, headers, table, dest, at, deadline),
                                  deadline)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            if time.monotonic() >= deadline:
                raise self._too_slow(at) from None
            tries = f"{self.attempts} attempt{'s' if self.attempts > 1 else ''}"
            raise SourceError(f"{at} did not answer after {tries} (last: {_describe(last)}) — "
                              "the server may be down or rate-limiting; the next cycle tries again") from None
        except requests.RequestException as exc:
            raise SourceError(f"{at} could not be fetched ({_describe(exc)}) — check the URL in \"source.url\" "
                              "and any proxy settings (HTTPS_PROXY)") from None

    def _too_slow(self, at: str) -> SourceError:
        return SourceError(f"{at} was not fetched within {self.timeout:g} s (\"source.timeout\") — the server is "
                           'too slow or stalled; raise "source.timeout" if the file is that large; the next cycle '
                           "tries again")

    def _download(self, session: Any, url: str, headers: dict, table: TableConfig, dest: Path, at: str,
                  deadline: float) -> tuple[Path, dict] | None:
        silence = min(self.read_timeout, max(0.01, deadline - time.monotonic()))
        with session.get(url, headers=headers, stream=True, timeout=(min(10.0, silence), silence)) as r:
            if r.status_code == 304:
                return None
            if r.status_code == 429 or r.status_code >= 500:
                raise _Retry(r)
            if r.status_code == 404:
                raise SourceError(f"{at} does not exist (HTTP 404) — fix \"source.url\" or the table's \"name\" in "
                                  "the config, or remove the table")
            if r.status_code in (401, 403):
                raise SourceError(f"{at} was refused (HTTP {r.status_code}) — the server wants credentials this "
                                  "machine does not send or that it rejects: put user:password in the URL or a "
                                  "machine entry in ~/.netrc")
            if r.status_code != 200:
                raise SourceError(f"{at} answered HTTP {r.status_code} {r.reason or ''} — expected the file "
                                  "(200) or 304; check \"source.url\"")
            if "text/html" in r.headers.get("Content-Type", ""):
                raise SourceError(f"{at} answered with an HTML page, not a CSV or Parquet file — check "
                                  '"source.url" (a login or error page?)')
            partial = dest / f".{table.name}.download"
            digest, size = hashlib.sha256(), _Size(self.max_bytes)
            try:
                with open(partial, "wb") as out:
                    while chunk := r.raw.read1(CHUNK, decode_content=True):  # returns as bytes arrive: a drip
                        if time.monotonic() >= deadline:  # cannot hold it beyond the deadline
                            raise self._too_slow(at)
                        digest.update(chunk)
                        if size.add(chunk):
                            raise SourceError(f"{at} is larger than {self.max_bytes:,} bytes{size.what} "
                                              '("source.max_bytes") — raise "source.max_bytes" if the file '
                                              "really is that large, or fix the export")
                        out.write(chunk)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            version = {"sha256": digest.hexdigest()[:16]}
            for key, header in (("etag", "ETag"), ("last_modified", "Last-Modified")):
                if r.headers.get(header):
                    version[key] = r.headers[header]
        return partial.replace(dest / f"{table.name}{_suffix(partial)}"), version

    def _retrying(self, call: Any, deadline: float) -> Any:
        import requests
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

        exponential = wait_exponential(multiplier=self.backoff, max=max(MAX_WAIT, self.backoff))

        def wait(state: Any) -> float:
            exc = state.outcome.exception()
            after = exc.response.headers.get("Retry-After", "") if isinstance(exc, _Retry) else ""
            wait = min(MAX_WAIT, float(after)) if after.isdigit() else exponential(state)
            return min(wait, max(0.0, deadline - time.monotonic()))

        def stop(state: Any) -> bool:  # after the last attempt, or when the whole fetch's time is up
            return stop_after_attempt(self.attempts)(state) or time.monotonic() >= deadline

        transient = (_Retry, requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

        for attempt in Retrying(stop=stop, retry=retry_if_exception_type(transient),
                                wait=wait, before_sleep=lambda state: log.info(
                                    "%s: %s, attempt %d of %d — retrying", mask(self.template),
                                    _describe(state.outcome.exception()), state.attempt_number, self.attempts)):
            with attempt:
                return call()
        raise AssertionError("unreachable: tenacity either returns or raises")


def _suffix(path: Path) -> str:
    """The file's type by its first bytes: Parquet (`PAR1`), gzip, else CSV text."""
    with open(path, "rb") as f:
        head = f.read(4)
    return ".parquet" if head == b"PAR1" else ".csv.gz" if head[:2] == b"\x1f\x8b" else ".csv"


def _session() -> Any:
    try:
        import requests
    except ImportError:
        raise missing("the http source", "requests") from None
    session = requests.Session()
    session.headers["User-Agent"] = "cdc_core"
    session.headers["Accept-Encoding"] = "identity"  # the bytes as stored: their hash is the version
    return session


class _Size:
    """Counts a file's bytes as they arrive — a gzip stream's decompressed bytes, without keeping them — and says
    when they exceed a limit."""

    def __init__(self, limit: int):
        self.limit, self.bytes, self.what = limit, 0, ""
        self.inflate: Any = None

    def add(self, chunk: bytes) -> bool:
        """True when the file is now larger than the limit."""
        if not self.bytes and not self.inflate and chunk[:2] == b"\x1f\x8b":
            self.inflate, self.what = zlib.decompressobj(zlib.MAX_WBITS | 16), " once decompressed"
        if self.inflate is None:
            self.bytes += len(chunk)
            return self.bytes > self.limit
        data = chunk
        while data and self.bytes <= self.limit:
            try:
                self.bytes += len(self.inflate.decompress(data, CHUNK))
            except zlib.error:  # not gzip after all, or corrupt: the loader says so; count what arrives
                self.inflate, self.what = None, ""
                return self.add(b"")
            data = self.inflate.unconsumed_tail
            if not data and self.inflate.eof and self.inflate.unused_data:  # the next member of a multi-member file
                data, self.inflate = self.inflate.unused_data, zlib.decompressobj(zlib.MAX_WBITS | 16)
        return self.bytes > self.limit


def _describe(exc: BaseException | None) -> str:
    """A short, secret-free description of a failed request."""
    import requests

    if isinstance(exc, _Retry):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "could not connect"
    return redact(f"{type(exc).__name__}: {exc}")[:200]
