"""The http source against a real local web server: conditional GETs, skips, retries, and one-line failures."""

from __future__ import annotations

import base64
import gzip
import re
import shutil
import time
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from cdc_core import run_once
from cdc_core.config import TableConfig, parse_config
from cdc_core.logs import redact
from cdc_core.sources.http import HttpSource

from .clientes_db import KEY, V1, V2
from .conftest import run_cli, write_config
from .http_server import FileServer

DATA = Path(__file__).resolve().parent / "data"
TABLES = [{"name": "clientes", "pk": KEY, "sep": ";"}, {"name": "produtos", "pk": "IdProduto", "sep": ";"}]


@pytest.fixture
def www(tmp_path: Path) -> Path:
    folder = tmp_path / "www"
    folder.mkdir()
    shutil.copyfile(V1, folder / "clientes.csv")
    shutil.copyfile(DATA / "produtos_41.csv", folder / "produtos.csv")
    return folder


def config(folder: Path, url: str, tables: list[dict] = TABLES):
    return parse_config({"source": {"type": "http", "url": url}, "lake": "lake", "data_dir": "data",
                         "tables": tables}, base_dir=folder)


def fetch(source: HttpSource, dest: Path, names=("clientes",), last_version: str | None = None):
    dest.mkdir(exist_ok=True)
    return source.fetch([TableConfig(n, ("id",)) for n in names], dest, last_version=last_version)


def test_an_unchanged_file_is_not_downloaded_again_and_the_cycle_is_skipped(www: Path, tmp_path: Path):
    with FileServer(www) as server:
        path = write_config(tmp_path, source={"type": "http", "url": server.url + "/{table}.csv"}, tables=TABLES)
        first = run_cli("--once", "--config", str(path))
        assert first.code == 0, first.err
        second = run_cli("--once", "--config", str(path))
        assert second.code == 0, second.err
        assert "nothing to capture" in second.err + second.out and "skipped" in second.out
        assert server.statuses("/clientes.csv") == [200, 304] and server.statuses("/produtos.csv") == [200, 304]
        sent = [r["headers"] for r in server.requests if r["status"] == 304]
        assert all(h.get("If-None-Match", "").startswith('"') and h.get("If-Modified-Since") for h in sent)


def test_a_changed_file_is_captured_and_the_unchanged_one_is_fetched_again(www: Path, tmp_path: Path):
    with FileServer(www) as server:
        cfg = config(tmp_path, server.url + "/{table}.csv")
        assert run_once(cfg).ok
        shutil.copyfile(V2, www / "clientes.csv")
        report = run_once(cfg)
        assert [(t.status, t.counts) for t in report.tables] == [
            ("changes", {"I": 27, "U": 138, "D": 0}), ("unchanged", {"I": 0, "U": 0, "D": 0})]
        assert server.statuses("/produtos.csv") == [200, 304, 200]  # needed again for the capture
        third = run_once(cfg)
        assert [t.status for t in third.tables] == ["skipped", "skipped"]  # the new validators were recorded


@pytest.mark.parametrize(("etag", "last_modified", "statuses"), [
    (False, True, [200, 304]),  # Last-Modified alone: If-Modified-Since
    (False, False, [200, 200]),  # no validators: downloaded, and recognised unchanged by its bytes
])
def test_weaker_servers_are_still_skipped_when_unchanged(www: Path, tmp_path: Path, etag: bool,
                                                         last_modified: bool, statuses: list[int]):
    with FileServer(www, etag=etag, last_modified=last_modified) as server:
        cfg = config(tmp_path, server.url + "/{table}.csv", TABLES[:1])
        assert run_once(cfg).ok
        assert run_once(cfg).tables[0].status == "skipped"
        assert server.statuses("/clientes.csv") == statuses


@pytest.mark.parametrize(("faults", "message"), [
    ([404], r'Table "clientes": http://127\.0\.0\.1:\d+/clientes\.csv does not exist \(HTTP 404\) — fix'),
    ([401], r"was refused \(HTTP 401\) — the server wants credentials"),
    ([403], r"was refused \(HTTP 403\)"),
    ([500, 502, 503], r"did not answer after 3 attempts \(last: HTTP 503 Service Unavailable\) — the server"),
    ([418], r"answered HTTP 418"),
])
def test_faults_fail_the_table_in_one_line(www: Path, tmp_path: Path, faults: list[int], message: str):
    with FileServer(www) as server:
        server.faults["/clientes.csv"] = list(faults)
        got = fetch(HttpSource(server.url + "/{table}.csv", attempts=3, backoff=0.001), tmp_path / "in")
        assert list(got.errors) == ["clientes"] and not got.files
        assert len(str(got.errors["clientes"]).splitlines()) == 1
        assert re.search(message, str(got.errors["clientes"]))
        assert not list((tmp_path / "in").iterdir())  # no partial file left behind


@pytest.mark.parametrize("faults", [[503, 503], [429], [500]])
def test_transient_answers_are_retried(www: Path, tmp_path: Path, faults: list[int]):
    with FileServer(www) as server:
        server.faults["/clientes.csv"] = list(faults)
        got = fetch(HttpSource(server.url + "/{table}.csv", attempts=3, backoff=0.001), tmp_path / "in")
        assert not got.errors and got.files["clientes"].read_bytes() == V1.read_bytes()
        assert server.statuses("/clientes.csv") == [*faults, 200]


def test_a_server_that_does_not_answer_in_time_is_retried_then_reported(www: Path, tmp_path: Path):
    with FileServer(www) as server:
        server.delay = 1.0
        got = fetch(HttpSource(server.url + "/{table}.csv", attempts=2, backoff=0.001, read_timeout=0.2),
                    tmp_path / "in")
    assert "did not answer after 2 attempts (last: timed out)" in str(got.errors["clientes"])


def test_gzip_and_parquet_files_are_told_apart_by_their_bytes(www: Path, tmp_path: Path):
    (www / "gz").mkdir()
    (www / "gz" / "clientes").write_bytes(gzip.compress(V1.read_bytes()))  # no suffix, octet-stream
    table = pacsv.read_csv(V1, parse_options=pacsv.ParseOptions(delimiter=";"))
    pq.write_table(table, www / "gz" / "produtos")
    with FileServer(www) as server:
        got = fetch(HttpSource(server.url + "/gz/{table}"), tmp_path / "in", ("clientes", "produtos"))
        assert sorted(p.name for p in got.files.values()) == ["clientes.csv.gz", "produtos.parquet"]
        report = run_once(config(tmp_path, server.url + "/gz/{table}",
                                 [TABLES[0], {"name": "produtos", "pk": KEY}]))
        assert [t.rows for t in report.tables] == [3837, 3837]


def test_an_html_page_is_refused(www: Path, tmp_path: Path):
    with FileServer(www) as server:
        server.content_type = "text/html; charset=utf-8"
        got = fetch(HttpSource(server.url + "/{table}.csv"), tmp_path / "in")
    assert "answered with an HTML page, not a CSV or Parquet file" in str(got.errors["clientes"])


def test_credentials_in_the_url_are_sent_and_never_shown(www: Path, tmp_path: Path):
    with FileServer(www) as server:
        server.auth = "Basic " + base64.b64encode(b"partner:S3cret-Pass").decode()
        url = server.url.replace("http://", "http://partner:S3cret-Pass@") + "/{table}.csv"
        path = write_config(tmp_path, source={"type": "http", "url": url}, tables=TABLES[:1])
        good = run_cli("--once", "--config", str(path))
        assert good.code == 0, good.err
        wrong = write_config(tmp_path, source={"type": "http", "url": url.replace("S3cret", "Wr0ng")},
                             tables=TABLES[:1], data_dir="data2", lake="lake2")
        bad = run_cli("--once", "--config", str(wrong))
    assert bad.code == 1 and (bad.out + bad.err).count("was refused (HTTP 401)") == 1  # in the summary, once
    everything = good.out + good.err + bad.out + bad.err + (tmp_path / "data" / "logs" / "cdc.log").read_text()
    assert "S3cret-Pass" not in everything and "Wr0ng-Pass" not in everything
    assert "http http://partner:***@127.0.0.1" in good.out


@pytest.mark.parametrize("gone", [["clientes", "produtos"], ["produtos"]])
def test_a_failed_table_is_never_reported_as_an_unchanged_source(www: Path, tmp_path: Path, gone: list[str]):
    with FileServer(www) as server:
        path = write_config(tmp_path, source={"type": "http", "url": server.url + "/{table}.csv"}, tables=TABLES)
        assert run_cli("--once", "--config", str(path)).code == 0
        for name in gone:
            (www / f"{name}.csv").unlink()
        second = run_cli("--once", "--config", str(path))
    assert second.code == 1
    assert "nothing to capture" not in second.out + second.err
    lines = {line.split()[0]: line for line in second.out.splitlines() if line.startswith("  ")}
    assert all("FAILED" in lines[name] and "does not exist (HTTP 404)" in lines[name] for name in gone)
    if "clientes" in gone:
        assert " version " not in second.out.splitlines()[0]  # no table's version is known this cycle
    else:
        assert "no changes" in lines["clientes"]  # checked again, nothing lost


def test_a_server_that_is_down_after_a_capture_is_a_failure_not_an_unchanged_source(www: Path, tmp_path: Path):
    with FileServer(www) as server:
        source = HttpSource(server.url + "/{table}.csv", attempts=1)
        first = fetch(source, tmp_path / "first", ("clientes", "produtos"))
    second = fetch(source, tmp_path / "second", ("clientes", "produtos"), last_version=first.version)
    assert not second.unchanged and second.version is None and not second.files
    assert all("did not answer after 1 attempt (last: could not connect)" in str(e) for e in second.errors.values())


PRESIGNED = ("https://bucket.s3.amazonaws.com/{table}.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AKIAEXAMPLE%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250101T000000Z"
             "&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=0123456789abcdef")


@pytest.mark.parametrize(("url", "shown"), [
    ("https://h/{table}.csv?token=S3cr3t-tok", "https://h/{table}.csv?token=***"),
    ("https://h/x/{table}?format=csv&access_token=S3cr3t-tok&sig=S1gn4ture",
     "https://h/x/{table}?format=csv&access_token=***&sig=***"),
    ("https://h/{table}.csv?signature=S1gn4ture&api_key=K3y-value", "https://h/{table}.csv?signature=***&api_key=***"),
    (PRESIGNED, PRESIGNED.replace("AKIAEXAMPLE%2F20250101%2Fus-east-1%2Fs3%2Faws4_request", "***")
     .replace("0123456789abcdef", "***")),  # the algorithm, date, expiry and signed headers stay readable
    ("https://partner:S3cret-Pass@h/{table}.csv?key=K3y-value", "https://partner:***@h/{table}.csv?key=***"),
    ("http://user:p@ss-S3cret-Pass@h/{table}.csv", "http://user:***@h/{table}.csv"),  # an unencoded "@"
    ("https://h/{table}.csv?jwt=eyJS3cr3t.x.y&apikey=K3y-value", "https://h/{table}.csv?jwt=***&apikey=***"),
], ids=["token", "access_token+sig", "signature+api_key", "aws-presigned", "password+key", "password-with-@",
        "jwt+apikey"])
def test_secrets_in_the_url_query_are_shown_as_stars(url: str, shown: str):
    source = HttpSource(url)
    assert source.description == f"http {shown}"
    logged = redact(f"GET {url} and {url.replace('{table}', 'clientes')} failed")  # as a library would log it
    assert "***" in logged and not re.search(r"S3cr3t|S1gn4|K3y-|AKIAEXAMPLE|0123456789abcdef|S3cret-Pass|ss-",
                                             logged)


def test_a_token_in_the_url_is_never_shown_in_errors_or_logs(www: Path, tmp_path: Path):
    with FileServer(www) as server:  # the query makes the path unknown to the server: a 404 that shows the URL
        url = server.url + "/{table}.csv?format=csv&token=T0ken-Value-42&X-Amz-Signature=f00dfeedbeef"
        path = write_config(tmp_path, source={"type": "http", "url": url}, tables=TABLES[:1])
        result = run_cli("--once", "--config", str(path))
    assert result.code == 1 and "does not exist (HTTP 404)" in result.out
    everything = result.out + result.err + (tmp_path / "data" / "logs" / "cdc.log").read_text()
    assert "T0ken-Value-42" not in everything and "f00dfeedbeef" not in everything
    assert "/clientes.csv?format=csv&token=***&X-Amz-Signature=*** does not exist" in result.out


class _Drip:
    """A real server that sends a file's headers at once, then 5 bytes every `every` seconds (never finishing in
    time) — or, with `body`, the whole body at once."""

    def __init__(self, every: float = 0.5, body: bytes | None = None):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.stop, drip = threading.Event(), self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = body if body is not None else b"idCliente;x\n" + b"a;1\n" * 100_000
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body is not None:
                    self.wfile.write(data)
                    return
                for start in range(0, len(data), 5):
                    if drip.stop.wait(every):
                        return
                    self.wfile.write(data[start:start + 5])
                    self.wfile.flush()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{{table}}.csv"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_dripping_server_fails_the_table_in_one_line_after_the_timeout(tmp_path: Path):
    with _Drip(every=0.5) as server:  # each packet comes well within any read timeout: only a deadline helps
        path = write_config(tmp_path, source={"type": "http", "url": server.url, "timeout": 2},
                            tables=TABLES[:1])
        started = time.monotonic()
        result = run_cli("--once", "--config", str(path), timeout=60)  # far above the configured 2 s
        took = time.monotonic() - started
    assert result.code == 1 and took < 30
    assert f'Table "clientes": {server.url.format(table="clientes")} was not fetched within 2 s ("source.timeout")' \
        in result.out
    assert "Traceback" not in result.err and not list((tmp_path / "data").rglob("*.download"))


@pytest.mark.parametrize(("body", "what"), [
    (b"idCliente;x\n" + b"a;1\n" * 300_000, ""),
    (gzip.compress(b"idCliente;x\n" + b"\0" * 200_000_000, 9), " once decompressed"),  # 200 kB of gzip: a bomb
], ids=["plain", "gzip-bomb"])
def test_a_file_larger_than_max_bytes_fails_the_table_in_one_line(tmp_path: Path, body: bytes, what: str):
    with _Drip(body=body) as server:
        got = fetch(HttpSource(server.url, max_bytes=1_000_000), tmp_path / "in")
    assert str(got.errors["clientes"]) == (
        f'Table "clientes": {server.url.format(table="clientes")} is larger than 1,000,000 bytes{what} '
        '("source.max_bytes") — raise "source.max_bytes" if the file really is that large, or fix the export')
    assert not list((tmp_path / "in").iterdir())


def test_timeout_and_max_bytes_are_checked_in_the_config(tmp_path: Path):
    for key, value, message in (("timeout", float("nan"), "use a number of seconds above 0"),
                                ("max_bytes", 0, "use a whole number of at least 1")):
        path = write_config(tmp_path, source={"type": "http", "url": "https://h/{table}.csv", key: value},
                            tables=TABLES[:1])
        result = run_cli("--once", "--config", str(path))
        assert result.code == 2 and f'Config key "source.{key}" is' in result.err and message in result.err


def test_a_password_with_an_at_sign_and_a_jwt_are_never_shown_anywhere(www: Path, tmp_path: Path):
    with FileServer(www) as server:
        url = server.url.replace("http://", "http://partner:p@ss-S3cr3t-Pw@") + "/{table}.csv"
        path = write_config(tmp_path, source={"type": "http", "url": url}, tables=TABLES[:1])
        fetched = run_cli("--once", "--config", str(path))  # captured: fetch.json, outcome.json, the .prom file
        path = write_config(tmp_path, source={"type": "http", "url": url + "?jwt=eyJ.J1J1J1-tok"}, tables=TABLES[:1])
        result = run_cli("--once", "--config", str(path))  # the query makes the path unknown: 404, the URL shown
    assert fetched.code == 0 and "http http://partner:***@127.0.0.1" in fetched.out, fetched.out + fetched.err
    assert result.code == 1 and "http://partner:***@127.0.0.1" in result.out and "jwt=***" in result.out
    files = [tmp_path / "data" / "logs" / "cdc.log", tmp_path / "data" / "outcome.json",
             tmp_path / "data" / "metrics" / "cdc_core.prom", *(tmp_path / "data").rglob("fetch.json")]
    assert all(f.is_file() for f in files) and len(files) > 3
    everything = fetched.out + fetched.err + result.out + result.err + "".join(f.read_text() for f in files)
    assert 'source="http http://partner:***@127.0.0.1' in everything  # the cdc_info label
    for secret in ("ss-S3cr3t-Pw", "S3cr3t", "J1J1J1"):
        assert secret not in everything
