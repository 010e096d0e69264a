"""The kaggle client, tamed: its HTTP calls time out, what it prints is captured, its failures are described in one
secret-free line and sorted into worth-retrying or not. `KaggleSource` calls it through these."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator
from typing import Any

from ..logs import redact

log = logging.getLogger("cdc_core")


def timed_api_class(timeout: float) -> type:
    """KaggleApi whose HTTP sessions time out (the client sets no timeout, so a stalled server would hang)."""
    import requests.adapters
    from kaggle.api.kaggle_api_extended import KaggleApi  # imports `kaggle`, which signs in and may print

    class TimeoutAdapter(requests.adapters.HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            return super().send(request, *args, **kwargs)

    class QuietKaggleApi(KaggleApi):
        def build_kaggle_client(self) -> Any:
            client = super().build_kaggle_client()
            http = client.http_client()
            http._init_session()
            session = getattr(http, "_session", None)
            if session is not None:
                session.mount("https://", TimeoutAdapter())
                session.mount("http://", TimeoutAdapter())
            return client

    return QuietKaggleApi


def transient(exc: BaseException) -> bool:
    """Worth retrying: a timeout, a broken connection, HTTP 429 or a 5xx."""
    import requests

    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return status == 429 or status >= 500
    return isinstance(exc, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError)


def describe(exc: BaseException | None) -> str:
    """A short, secret-free description of a failed call: `HTTP 503 Service Unavailable`, `timeout`, …"""
    import requests

    response = getattr(exc, "response", None)
    if response is not None:
        return f"HTTP {response.status_code} {response.reason or ''}".strip()
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "could not connect"
    return redact(f"{type(exc).__name__}: {exc}")


def credentials_in_use() -> str:
    """Which credentials the client signs in with, by name (never the value)."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME and KAGGLE_KEY"
    return "kaggle.json or the token in ~/.kaggle"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Capture what the kaggle client prints (help text, "Dataset URL: …") and log it at debug level."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            yield
    finally:
        if out.getvalue().strip():
            log.debug("kaggle client: %s", redact(out.getvalue().strip()))
