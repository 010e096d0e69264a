"""A Kaggle dataset, through the real kaggle client: only the configured tables' files, of one pinned version.

A fetch signs in, asks for the dataset's current version number (or uses the one pinned by `owner/slug/N`),
stops there when it equals the last version fetched, and otherwise downloads `{table}.csv` of each table from
exactly that version (never the dataset's other files, such as the large `database.db`). Zipped downloads
are extracted safely. Timeouts, connection errors, HTTP 429 and 5xx are retried with exponential backoff.

The `kaggle` package is imported lazily: importing it signs in and prints help text, and its calls print
"Dataset URL: …"; all of that output is captured (and logged at debug level), never printed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from ..config import TableConfig
from ..errors import SourceError
from ..extras import missing
from ..logs import add_secret, redact
from .base import Fetch
from .kaggle_client import credentials_in_use, describe, quiet, timed_api_class, transient

log = logging.getLogger("cdc_core")
T = TypeVar("T")
MAX_WAIT = 60.0  # seconds: the cap of one backoff wait
NO_CREDENTIALS = ("No Kaggle credentials found — set KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY, in the "
                  "environment or in .env next to config.json, or put kaggle.json in ~/.kaggle/")


class _NotFound(Exception):
    "Kaggle answered 404."


class _TableError(Exception):
    "One table's file cannot be delivered (the others go on)."


class KaggleSource:
    """Downloads `{table}.csv` of each configured table from one version of a Kaggle dataset."""

    def __init__(self, dataset: str, *, attempts: int = 5, backoff: float = 1.0, timeout: float = 60.0):
        parts = dataset.split("/")
        if len(parts) not in (2, 3) or not all(parts) or (len(parts) == 3 and not parts[2].isdigit()):
            raise SourceError(f'Kaggle dataset {dataset!r} is not "owner/slug" — fix "source.dataset" in '
                              'config.json (or "owner/slug/N" to pin version N)')
        self.dataset = dataset
        self.ref = f"{parts[0]}/{parts[1]}"
        self.pinned = int(parts[2]) if len(parts) == 3 else None
        self.attempts, self.backoff, self.timeout = max(1, attempts), backoff, timeout
        self.description = f"kaggle {dataset}"

    def fetch(self, tables: Sequence[TableConfig], dest: Path, *, last_version: str | None) -> Fetch:
        api = self._sign_in()
        version = self._version(api)
        if last_version == str(version):
            return Fetch(version=str(version), unchanged=True)
        result = Fetch(version=str(version))
        listing: list[str] | None = None
        for table in tables:
            file_name = f"{table.name}.csv"
            try:
                result.files[table.name] = self._download(api, file_name, version, Path(dest))
            except _NotFound:
                listing = self._list_files(api, version) if listing is None else listing
                files = f" (its files: {', '.join(listing[:12])})" if listing else ""
                result.errors[table.name] = SourceError(
                    f'Table "{table.name}": the dataset {self.ref} (version {version}) has no file {file_name} — '
                    f'fix the table\'s "name" in config.json or remove the table{files}')
            except _TableError as exc:
                result.errors[table.name] = SourceError(f'Table "{table.name}": {exc}')
            except (OSError, ValueError, RuntimeError) as exc:  # the client's own download checks (size, disk)
                result.errors[table.name] = SourceError(
                    f'Table "{table.name}": downloading {file_name} from Kaggle failed '
                    f"({type(exc).__name__}: {redact(str(exc))}) — check the disk space; the next cycle tries again")
        return result

    # --- the steps ------------------------------------------------------------------------------------------
    def _sign_in(self) -> Any:
        """A signed-in KaggleApi (credentials from the environment, .env or kaggle.json)."""
        try:
            with quiet():
                api_class = timed_api_class(self.timeout)
        except ImportError:
            raise missing("the kaggle source", "kaggle") from None
        except SystemExit:  # older kaggle versions exit at import when no credentials are found
            raise SourceError(NO_CREDENTIALS) from None
        except OSError as exc:
            raise SourceError(f"The kaggle client could not start ({redact(str(exc))}) — check that ~/.kaggle "
                              "(or KAGGLE_CONFIG_DIR) is readable and writable") from None
        api = api_class()

        def authenticate() -> None:
            try:
                api.authenticate()
            except SystemExit:
                if os.environ.get("KAGGLE_API_TOKEN"):
                    raise SourceError("Kaggle rejected the API token in KAGGLE_API_TOKEN — create a new token at "
                                      "https://www.kaggle.com/settings and set it in the environment or in .env "
                                      "next to config.json") from None
                raise SourceError(NO_CREDENTIALS) from None

        self._call("signing in", authenticate)
        for name in ("key", "token"):  # read from kaggle.json or ~/.kaggle/access_token, not only the environment
            add_secret(str((getattr(api, "config_values", None) or {}).get(name) or ""))
        return api

    def _version(self, api: Any) -> int:
        """The version to fetch: the pinned one, or the dataset's current version number."""
        try:
            status = self._call("reading the dataset's version", api.dataset_status, self.ref,
                                format="json(current_version_number)")
        except _NotFound:
            raise SourceError(f'Kaggle has no dataset {self.ref} — check "source.dataset" (or "dataset_name") in '
                              "config.json: it is the owner/slug of the dataset's URL, and the dataset must be "
                              "public or yours") from None
        current = json.loads(status).get("current_version_number")
        if not current:
            raise SourceError(f"Kaggle reports no version of the dataset {self.ref} yet (it may still be "
                              "processing) — try again later")
        if self.pinned is None:
            return int(current)
        if not 1 <= self.pinned <= int(current):
            raise SourceError(f"The dataset {self.ref} has no version {self.pinned} (its latest is {current}) — "
                              'fix the version in "source.dataset" in config.json')
        return self.pinned

    def _download(self, api: Any, file_name: str, version: int, dest: Path) -> Path:
        """Download one file of `version` into `dest` (through a private folder), unzipping it if served zipped."""
        work = Path(tempfile.mkdtemp(prefix=".kaggle-", dir=dest))
        try:
            self._call(f"downloading {file_name}", api.dataset_download_file, f"{self.ref}/{version}", file_name,
                       path=str(work), force=True, quiet=True, unzip=False)
            got = [p for p in work.iterdir() if p.is_file() and not p.name.endswith(".kaggle-partial")]
            if len(got) != 1:
                raise _TableError(f"Kaggle delivered {', '.join(p.name for p in got) or 'nothing'} for {file_name} "
                                  "— try again; if it persists, the dataset may have changed its layout")
            target = dest / file_name
            if got[0].name.endswith(".zip"):  # large files are served zipped: clientes.csv → clientes.csv.zip
                _extract(got[0], file_name, target)
                return target
            return got[0].replace(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _list_files(self, api: Any, version: int) -> list[str]:
        """The names of the version's files, best effort (only to make an error message helpful)."""
        try:
            response = self._call("listing files", api.dataset_list_files, f"{self.ref}/{version}", page_size=200)
            return sorted(f.name for f in response.files or [] if f.name)
        except Exception:  # noqa: BLE001 - the listing only decorates another error
            return []

    # --- calls: quiet, retried, errors in one line ----------------------------------------------------------
    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one client call with its output captured, retrying transient failures with exponential backoff."""
        import requests
        from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

        retrying = Retrying(stop=stop_after_attempt(self.attempts), retry=retry_if_exception(transient),
                            wait=wait_exponential(multiplier=self.backoff, max=max(MAX_WAIT, self.backoff)),
                            before_sleep=lambda state: log.info(
                                "Kaggle %s failed (%s), attempt %d of %d — retrying", what,
                                describe(state.outcome.exception()), state.attempt_number, self.attempts))
        try:
            for attempt in retrying:
                with attempt, quiet():
                    return fn(*args, **kwargs)
        except RetryError as exc:
            raise SourceError(
                f"Kaggle did not answer while {what} for {self.ref} after {self.attempts} attempts (last: "
                f"{describe(exc.last_attempt.exception())}) — Kaggle may be down or rate-limiting; try again "
                "later (the next cycle will)") from None
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (401, 403):
                raise SourceError(
                    f"Kaggle rejected the credentials ({credentials_in_use()}) while {what} for {self.ref} "
                    f"(HTTP {status}) — check that they are current (create a new token at "
                    "https://www.kaggle.com/settings) and, for a private dataset, that this account can see it"
                ) from None
            if status == 404:
                raise _NotFound() from None
            raise SourceError(f"Kaggle refused {what} for {self.ref} ({describe(exc)}) — check "
                              '"source.dataset" in config.json and try again') from None
        except requests.RequestException as exc:  # not retried: a bad URL, too many redirects, …
            raise SourceError(f"Kaggle could not be reached while {what} for {self.ref} ({describe(exc)}) — "
                              "check the network and any proxy settings (HTTPS_PROXY)") from None
        raise AssertionError("unreachable: tenacity either returns or raises")


MAX_UNZIPPED = 50 * 2**30  # bytes one table's file may unpack to
MAX_RATIO = 500  # how many times larger than its compressed size (CSV compresses 5-20×; a zip bomb, millions)


def _extract(archive: Path, file_name: str, target: Path) -> None:
    """Write the archive's entry for `file_name` to `target`; refuse the archive if any entry leaves its folder."""
    root = target.parent.resolve()
    try:
        with zipfile.ZipFile(archive) as z:
            entries = z.infolist()
            for entry in entries:
                name = entry.filename.replace("\\", "/")
                if (name.startswith("/") or ".." in PurePosixPath(name).parts
                        or not (root / name).resolve().is_relative_to(root)):
                    raise _TableError(f"the zip archive Kaggle served for {file_name} holds an entry {entry.filename!r} "
                                      "that points outside the download folder — refused, nothing was extracted; "
                                      "report it to the dataset's owner")
            files = [e for e in entries if not e.is_dir()]
            match = [e for e in files if PurePosixPath(e.filename).name == file_name] or files
            if len(match) != 1:
                raise _TableError(f"the zip archive Kaggle served for {file_name} does not hold that file (entries: "
                                  f"{', '.join(e.filename for e in entries[:10]) or 'none'}) — try again later")
            entry = match[0]
            if entry.file_size > MAX_UNZIPPED or entry.file_size > MAX_RATIO * max(entry.compress_size, 1):
                raise _TableError(f"the zip archive Kaggle served for {file_name} would unpack to "
                                  f"{entry.file_size:,} bytes from {entry.compress_size:,} — refused as a zip bomb; "
                                  "report it to the dataset's owner")
            with z.open(entry) as src, open(target, "wb") as out:
                written = 0
                while block := src.read(1 << 20):  # the declared size can lie: count what really comes out
                    written += len(block)
                    if written > MAX_UNZIPPED or written > MAX_RATIO * max(entry.compress_size, 1):
                        raise _TableError(f"the zip archive Kaggle served for {file_name} unpacks to more than "
                                          "it declares — refused as a zip bomb; report it to the dataset's owner")
                    out.write(block)
    except zipfile.BadZipFile:
        raise _TableError(f"the zip archive Kaggle served for {file_name} is damaged — try again") from None
