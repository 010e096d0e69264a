"""A year unattended: Ctrl-C says what happened, no message is untrue or repeated, no traceback reaches the console,
the diff/replay/verify/init commands answer in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import DEMO_TABLES, ROOT, run_cli, write_config


def _start(path: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cdc_core", "--config", str(path), *args], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _committed(tmp_path: Path) -> dict[str, str]:
    return {p.stem: json.loads(p.read_text())["run_id"] for p in (tmp_path / "data" / "state").glob("*.json")}


def _wait(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.xdist_group("timing")  # real processes on a clock: with the other timing tests
def test_ctrl_c_during_once_says_what_was_committed_and_what_is_pending(tmp_path: Path):
    path = write_config(tmp_path)
    assert run_cli("--once", "--config", str(path)).code == 0
    first = _committed(tmp_path)
    proc = _start(path, "--once", CDC_PAUSE="transacoes:after_put_cdc:6")  # transacoes is slow to publish (its CDC file written, no link yet)
    try:
        _wait(lambda: _committed(tmp_path)["clientes"] != first["clientes"])
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    after = _committed(tmp_path)
    run = after["clientes"]
    assert proc.returncode == 1 and "the committed state is unchanged" not in err
    assert "Interrupted: the table(s) in progress finish first (Ctrl-C again to stop at once)" in err
    said = err.strip().splitlines()[-1]
    for table in ("clientes", "transacoes"):  # transacoes was in progress: it finished after the Ctrl-C
        assert after[table] == run and f"{table} (run {run})" in said, said
    assert after["produtos"] == first["produtos"] and "no new run for produtos" in said  # the demo's produtos is
    # unchanged between versions
    late = "transacao_produto"  # started before the Ctrl-C (then finished) or not (then never started): said as it is
    committed = after[late] == run
    assert (f"{late} (run {run})" in said) == committed and (late in said.split("no new run for")[-1]) != committed


@pytest.mark.xdist_group("timing")  # real processes on a clock: with the other timing tests
def test_ctrl_c_in_the_timed_loop_is_acknowledged_at_once(tmp_path: Path):
    path = write_config(tmp_path)
    proc = _start(path, CDC_PAUSE="transacoes:after_put_cdc:6")
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.monotonic(), line) for line in proc.stderr))
    reader.start()
    try:
        _wait(lambda: "clientes" in _committed(tmp_path) if (tmp_path / "data" / "state").exists() else False)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    reader.join(timeout=10)
    stopping = [(at, line) for at, line in lines if line.startswith("stopping:")]
    assert proc.returncode == 0 and stopping and stopping[0][0] - sent < 2, lines
    assert "then the timed loop ends (Ctrl-C again to stop at once)" in stopping[0][1]
    assert not [line for _, line in lines if line.startswith("next cycle in")]
    assert set(_committed(tmp_path)) == {t["name"] for t in DEMO_TABLES}  # the cycle in progress finished


@pytest.fixture
def prev_cur(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "a.csv").write_text("id,v\n1,x\n2,y\n")
    (tmp_path / "b.csv").write_text("id,v\n1,x\n2,z\n3,w\n")
    return tmp_path / "a.csv", tmp_path / "b.csv"


@pytest.mark.parametrize(("options", "code", "message"), [
    (["--sep", "ab"], 2, "Error: --sep 'ab' must be one character, e.g. ';' or ','"),
    (["--quote", "ab"], 2, "Error: --quote 'ab' must be one character, or '' for none"),
    (["--escape", "ab"], 2, "Error: --escape 'ab' must be one character, or '' for none"),
    (["--output", "{tmp}"], 2, "Error: --output {tmp} is a folder — give a file path, like {tmp}/out.parquet"),
    (["--output", "/proc/cdc-test/out.parquet"], 2, ("Error: --output /proc/cdc-test/out.parquet: cannot make the "
                                                    "folder /proc/cdc-test")),
], ids=["sep", "quote", "escape", "output-folder", "output-unwritable"])
def test_diff_options_and_outputs_are_one_line(prev_cur, tmp_path: Path, options: list[str], code: int,
                                               message: str):
    options = [o.replace("{tmp}", str(tmp_path)) for o in options]
    args = ["diff", *map(str, prev_cur), "--key", "id", "--output", str(tmp_path / "o.parquet"), *options]
    result = run_cli(*args)
    assert result.code == code and result.err.startswith(message.replace("{tmp}", str(tmp_path))), result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


def test_diff_makes_missing_folders_and_takes_an_escape_character(prev_cur, tmp_path: Path):
    (tmp_path / "b.csv").write_text('id,v\n1,x\n2,"say \\"hi\\""\n')
    result = run_cli("diff", *map(str, prev_cur), "--key", "id", "--escape", "\\",
                     "--output", str(tmp_path / "new" / "folder" / "o.parquet"))
    assert result.code == 0 and "I 0  U 1  D 0" in result.out, result.err
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "new" / "folder" / "o.parquet").column("v").to_pylist() == ['say "hi"']


def test_diff_errors_keep_the_file_name_as_it_is(tmp_path: Path):
    (tmp_path / "dupkey.csv").write_text("id,v\n1,a\n1,b\n")
    (tmp_path / "b.csv").write_text("id,v\n1,a\n")
    result = run_cli("diff", "dupkey.csv", "b.csv", "--key", "id", "--output", "o.parquet", cwd=tmp_path)
    assert result.code == 1 and result.err.startswith("Error: dupkey.csv: 1 key value(s) appear more than once")


def test_replay_outputs_and_verify_with_nothing_captured(tmp_path: Path):
    path = write_config(tmp_path, tables=DEMO_TABLES[1:2])
    nothing = run_cli("verify", "--config", str(path))
    assert nothing.code == 1 and nothing.out.startswith("Nothing to verify: no table was captured yet into ")
    assert "do not match" not in nothing.out
    assert run_cli("--once", "--config", str(path)).code == 0
    half = run_cli("verify", "--config", str(write_config(tmp_path, tables=DEMO_TABLES[:2])))
    assert half.code == 1 and half.out.splitlines()[-1] == ("1 of 2 table(s) verified: the lake replays to the "
                                                             "committed snapshots; not captured yet: clientes")
    path = write_config(tmp_path, tables=DEMO_TABLES[1:2])
    made = run_cli("replay", "--table", "produtos", "--output", str(tmp_path / "x" / "y" / "p.parquet"),
                   "--config", str(path))
    assert made.code == 0 and (tmp_path / "x" / "y" / "p.parquet").is_file(), made.err
    folder = run_cli("replay", "--table", "produtos", "--output", str(tmp_path), "--config", str(path))
    assert folder.code == 2 and folder.err == (f"Error: --output {tmp_path} is a folder — give a file path, like "
                                               f"{tmp_path / 'out.parquet'}\n")
    (tmp_path / "file").write_text("not a folder")  # (as root, permissions cannot block: a file in the way can)
    blocked = run_cli("replay", "--table", "produtos", "--output", str(tmp_path / "file" / "p.parquet"),
                      "--config", str(path))
    assert blocked.code == 2 and blocked.err.startswith(f"Error: --output {tmp_path / 'file' / 'p.parquet'}: cannot "
                                                        f"make the folder {tmp_path / 'file'}"), blocked.err
    assert len(blocked.err.strip().splitlines()) == 1


def test_publishing_a_preview_twice_says_it_is_already_published(tmp_path: Path):
    path = write_config(tmp_path)
    preview = run_cli("--dry-run", "--config", str(path))
    run = preview.out.split()[1]
    assert run_cli("--publish", run, "--config", str(path)).code == 0
    again = run_cli("--publish", run, "--config", str(path))
    assert again.code == 0 and again.out == f"Run {run} is already published — nothing to do\n"


def test_a_dry_run_against_a_lake_it_cannot_read_fails_instead_of_listing_uploads(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-value")
    path = write_config(tmp_path, lake="s3://my-lake/x", tables=DEMO_TABLES[:1],
                        aws={"endpoint_url": "http://127.0.0.1:9", "max_attempts": 1, "region": "us-east-1"})
    result = run_cli("--dry-run", "--config", str(path))
    assert result.code == 1 and "would upload" not in result.out and "FAILED" in result.out, result.out


def test_a_failing_table_is_said_once_in_the_terminal(tmp_path: Path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    path = write_config(tmp_path, lake="s3://my-lake/x", tables=DEMO_TABLES[:1],
                        aws={"endpoint_url": "http://127.0.0.1:9", "max_attempts": 1, "region": "us-east-1"})
    result = run_cli("--once", "--config", str(path))
    assert result.code == 1 and (result.out + result.err).count("no AWS credentials found") == 1, result.out
    assert "no AWS credentials found" in (tmp_path / "data" / "logs" / "cdc.log").read_text()  # the log keeps it


class _FailingCatalog:
    """An Iceberg REST catalog that answers every request with HTTP 500."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b'{"error": {"message": "boom", "type": "ServerError", "code": 500}}'
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_catalog_uri_with_secrets_is_masked_everywhere_and_its_traceback_stays_in_the_log(tmp_path: Path):
    catalog = _FailingCatalog()
    uri = f"http://admin:p@ss-Sekr1t@127.0.0.1:{catalog.port}/cat?apikey=K3yK3y-42&jwt=eyJhbGc.J1J1J1"
    try:
        path = write_config(tmp_path, table_format="iceberg", tables=DEMO_TABLES[1:2],
                            iceberg={"catalog": {"type": "rest", "uri": uri}})
        result = run_cli("--once", "--config", str(path))
    finally:
        catalog.close()
    assert result.code == 1 and "Traceback" not in result.err and "Traceback" not in result.out
    log = (tmp_path / "data" / "logs" / "cdc.log").read_text()
    outcome = (tmp_path / "data" / "outcome.json").read_text()
    for secret in ("Sekr1t", "ss-Sekr1t", "K3yK3y", "J1J1J1"):
        assert secret not in result.out + result.err + log + outcome
    assert "Traceback" in log  # for whoever debugs it, secrets masked


def test_init_writes_a_commented_starter_that_runs(tmp_path: Path):
    missing = run_cli("--once", "--config", str(tmp_path / "config.json"))
    assert missing.code == 2 and "write a starter config with: cdc-core init" in missing.err
    made = run_cli("init", "--config", str(tmp_path / "config.json"))
    assert made.code == 0 and f"Wrote {tmp_path / 'config.json'}" in made.out
    raw = json.loads((tmp_path / "config.json").read_text())
    assert "kaggle" in " ".join(raw["source"]["_comment"]) and "s3://" in " ".join(raw["_comment"])
    assert run_cli("--once", "--config", str(tmp_path / "config.json")).code == 0
    again = run_cli("init", "--config", str(tmp_path / "config.json"))
    assert again.code == 2 and "already exists — keep it, or pass --force" in again.err


def test_without_prometheus_client_the_metrics_file_says_why_not_once(tmp_path: Path, monkeypatch, caplog):
    from cdc_core import metrics, run_once
    from cdc_core.config import load_config

    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as in a base install from the wheel
    monkeypatch.setattr(metrics, "_said_no_metrics", [])
    config = load_config(write_config(tmp_path, tables=DEMO_TABLES[1:2]))
    with caplog.at_level("INFO", logger="cdc_core"):
        run_once(config)
        run_once(config)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("no metrics file")]
    assert len(said) == 1 and "pip install 'cdc_core[metrics]'" in said[0]
    assert not (tmp_path / "data" / "metrics").exists()


def test_a_dry_run_after_a_failed_upload_says_which_uploads_are_the_pending_run(s3, tmp_path: Path):
    from .conftest import BUCKET

    def config(**aws) -> str:
        return str(write_config(tmp_path, lake=f"s3://{BUCKET}/x", tables=DEMO_TABLES[:1], aws=aws))

    assert run_cli("--once", "--config", config()).code == 0
    failed = run_cli("--once", "--config", config(endpoint_url="http://127.0.0.1:9", max_attempts=1))
    assert failed.code == 1, failed.out
    pending = next((tmp_path / "data" / "outbox" / "clientes").iterdir()).name
    preview = run_cli("--dry-run", "--config", config())
    uploads = [line for line in preview.out.splitlines() if "would upload" in line]
    assert preview.code == 0 and any(pending in line for line in uploads), preview.out
    assert all(f"(pending run {pending}, captured earlier)" in line for line in uploads if pending in line)


@pytest.mark.parametrize(("value", "shown"), [
    ("http://admin:p@ss-Sekr1t@catalog:8181/v1?apikey=K3y&warehouse=s3://w",
     "http://admin:***@catalog:8181/v1?apikey=***&warehouse=s3://w"),  # an Iceberg REST catalog URI
    ("https://minio:S3cr3t@minio.local:9000", "https://minio:***@minio.local:9000"),  # an endpoint
    ("postgresql://cdc:Sek@r1t@db/shop?sslmode=require", "postgresql://cdc:***@db/shop?sslmode=require"),
    ("host=db password='abc Sekr1t' dbname=shop", "host=db password=*** dbname=shop"),
    ("https://hooks.example.com/x?token=T0k&jwt=eyJ.a.b", "https://hooks.example.com/x?token=***&jwt=***"),
    ("mailto://ops:${SMTP_PASSWORD}@smtp.example.com", "mailto://ops:${SMTP_PASSWORD}@smtp.example.com"),
    ("mailto://ops:****@smtp.example.com", "mailto://ops:****@smtp.example.com"),  # Apprise's privacy form
], ids=["catalog", "endpoint", "dsn-uri", "dsn-keywords", "webhook", "variable", "masked-already"])
def test_every_url_like_value_is_masked_by_its_structure(value: str, shown: str):
    from cdc_core.logs import mask

    assert mask(value) == shown and mask(f"failed: {value} — retry") == f"failed: {shown} — retry"
