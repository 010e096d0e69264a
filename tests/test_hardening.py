"""Hardening: a lake that cannot attack its readers, preview == publish, date_field mode that replays, no leaks."""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cdc_core import load_config, replay, run_once, verify
from cdc_core.errors import LakeError
from cdc_core.lake import LocalLake, read_manifests
from cdc_core.logs import add_secret, redact, setup_logging
from cdc_core.sources.kaggle import _extract, _TableError

from .conftest import run_cli, write_config

DATA = Path(__file__).parent / "data"


def directory_lake(tmp_path: Path, **table) -> tuple[Path, object]:
    (tmp_path / "source").mkdir(exist_ok=True)
    table = {"name": "t", "pk": "id", "sep": ";", **table}
    config = load_config(write_config(tmp_path, source={"type": "directory", "path": "source"}, tables=[table]))
    return tmp_path / "source" / "t.csv", config


def capture(config, csv: Path, text: str, **kwargs):
    csv.write_text(text)
    return run_once(config, **kwargs)


# --- 1. the lake is not trusted blindly -------------------------------------------------------------------------
def tamper(lake: Path, table: str, change) -> None:
    path = max((lake / "manifests" / table).glob("*.json"))
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("change, message", [
    (lambda m: m["files"][0].update(key="cdc/../../../escaped.parquet"), "is not a key of the lake layout"),
    (lambda m: m["files"][0].update(key="cdc/other/other_20250101_000000.parquet"), "which is not a file of this run"),
    (lambda m: m.update(run_id="20990101_000000"), "it names another table or run than its key"),
    (lambda m: m["columns"].update(v="VARCHAR) TO 'injected.csv' (FORMAT csv); SELECT (1"),
     "has column types that are not lake types"),
])
def test_a_crafted_manifest_is_refused_and_nothing_is_read_or_written_outside(tmp_path: Path, change, message,
                                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    csv, config = directory_lake(tmp_path)
    capture(config, csv, "id;v\n1;a\n2;b\n")
    capture(config, csv, "id;v\n1;a\n2;c\n")
    tamper(tmp_path / "lake", "t", change)
    with pytest.raises(LakeError) as caught:
        replay(LocalLake(tmp_path / "lake"), "t", tmp_path / "out" / "t.parquet")
    assert message in str(caught.value)
    assert not (tmp_path / "escaped.parquet").exists() and not (tmp_path / "injected.csv").exists()
    assert not (tmp_path / "out" / "t.parquet").exists()


def test_a_crafted_key_cannot_leave_the_download_folder_of_an_s3_replay(s3, tmp_path: Path):
    from cdc_core.config import LakeConfig
    from cdc_core.s3lake import S3Lake

    lake = S3Lake(LakeConfig(url="s3://lake-bucket", bucket="lake-bucket"))
    (tmp_path / "x").write_text("x")
    lake.put(tmp_path / "x", "cdc/t/t_20250101_000000.parquet")
    with pytest.raises(LakeError, match="would resolve outside"):
        lake.local("cdc/../../escaped", tmp_path / "cache")
    assert not (tmp_path / "escaped").exists()


# --- 2. date_field mode replays -----------------------------------------------------------------------------------
def test_date_field_mode_holds_back_changes_without_a_later_date_until_the_date_moves(tmp_path: Path):
    csv, config = directory_lake(tmp_path, date_field="d", detect="date_field")
    capture(config, csv, "id;v;d\n1;a;2025-01-01\n2;b;2025-01-01\n")
    quiet = capture(config, csv, "id;v;d\n1;A;2025-01-01\n2;B;2025-01-02\n3;c;2025-01-02\n").tables[0]
    assert quiet.counts == {"I": 1, "U": 1, "D": 0}
    assert '1 row(s) changed without a later "d" (not captured: kept as they were until their date moves)' in \
        quiet.warnings
    full = {r["id"]: r["v"] for r in pq.read_table(tmp_path / "lake/full-load/t/t.parquet").to_pylist()}
    assert full == {"1": "a", "2": "B", "3": "c"}  # row 1 stays as captured: replay == full load
    assert all(check.ok for check in verify(config))
    moved = capture(config, csv, "id;v;d\n1;A;2025-01-03\n2;B;2025-01-02\n3;c;2025-01-02\n").tables[0]
    assert moved.counts == {"I": 0, "U": 1, "D": 0}
    cdc = pq.read_table(max((tmp_path / "lake/cdc/t").glob("*.parquet"))).to_pylist()
    assert [(r["op"], r["id"], r["v"]) for r in cdc] == [("U", "1", "A")]
    assert all(check.ok for check in verify(config))


# --- 3. a preview publishes exactly what it showed ----------------------------------------------------------------
def test_publishing_a_preview_sends_the_previewed_change_set_or_is_refused(tmp_path: Path):
    csv, config = directory_lake(tmp_path, date_field="DtAtualizacao", pk="idCliente")
    capture(config, csv, (DATA / "clientes_20250918.csv").read_text())
    first = capture(config, csv, (DATA / "clientes_20250922.csv").read_text(), dry_run=True)
    assert first.tables[0].counts == {"I": 27, "U": 138, "D": 0}
    newer = capture(config, csv, (DATA / "clientes_20250922.csv").read_text().replace(";0;0;0;0;0;", ";1;0;0;0;0;"),
                    dry_run=True)
    stale = run_once(config, publish_preview=first.run_id)
    assert stale.tables[0].status == "failed"
    assert f"there is no preview of run {first.run_id}" in stale.tables[0].error
    published = run_once(config, publish_preview=newer.run_id)
    assert published.tables[0].status == "changes" and published.tables[0].counts == newer.tables[0].counts
    cdc = pq.read_table(tmp_path / f"lake/cdc/t/t_{newer.run_id}.parquet")
    assert cdc.num_rows == sum(newer.tables[0].counts.values())
    files = sorted((tmp_path / "lake").rglob("*"))
    again = run_once(config, publish_preview=newer.run_id)  # a retried job: nothing to do, not an error
    assert again.ok and again.tables[0].status == "unchanged" and sorted((tmp_path / "lake").rglob("*")) == files


def test_a_preview_is_refused_when_the_lake_moved_after_it(tmp_path: Path):
    csv, config = directory_lake(tmp_path)
    capture(config, csv, "id;v\n1;a\n")
    preview = capture(config, csv, "id;v\n1;b\n", dry_run=True)
    capture(config, csv, "id;v\n1;c\n")
    refused = run_once(config, publish_preview=preview.run_id)
    assert "but the lake is at run" in refused.tables[0].error and "preview again" in refused.tables[0].error
    assert not list((tmp_path / "data" / "outbox").rglob(".preview-*"))  # it can never be published: gone
    assert {r["v"] for r in pq.read_table(tmp_path / "lake/full-load/t/t.parquet").to_pylist()} == {"c"}


# --- 4. no secret in logs, reports or errors ----------------------------------------------------------------------
def test_tracebacks_and_secrets_from_files_are_masked_in_the_log(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-1234")
    add_secret("from-a-credentials-file-5678")
    path = setup_logging(tmp_path, console=False)
    log = logging.getLogger("cdc_core")
    try:
        raise RuntimeError("boto said env-secret-1234 and from-a-credentials-file-5678")
    except RuntimeError:
        log.exception("failed with %s", "from-a-credentials-file-5678")
    text = path.read_text()
    assert "Traceback" in text and "RuntimeError" in text
    assert "env-secret-1234" not in text and "from-a-credentials-file-5678" not in text
    assert redact("x env-secret-1234 y") == "x *** y"


def test_credentials_from_an_aws_credentials_file_are_masked(s3, tmp_path: Path, monkeypatch):
    from cdc_core.config import LakeConfig
    from cdc_core.s3lake import S3Lake

    secret = "file-only-secret-access-key-000"
    (tmp_path / "credentials").write_text(f"[default]\naws_access_key_id = testing\n"
                                          f"aws_secret_access_key = {secret}\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    S3Lake(LakeConfig(url="s3://lake-bucket", bucket="lake-bucket"))
    assert redact(f"signature was computed with {secret}") == "signature was computed with ***"


# --- 5. change rows never held whole in Python --------------------------------------------------------------------
def test_the_cycle_writes_change_rows_straight_to_parquet(tmp_path: Path, monkeypatch):
    import cdc_core.engines.duckdb

    seen = []
    real_diff = cdc_core.engines.duckdb.diff

    def spy(*args, **kwargs):
        changes = real_diff(*args, **kwargs)
        seen.append(changes)
        return changes

    monkeypatch.setattr(cdc_core.engines.duckdb, "diff", spy)
    csv, config = directory_lake(tmp_path)
    capture(config, csv, "".join(["id;v\n"] + [f"{i};{i}\n" for i in range(1000)]))
    capture(config, csv, "".join(["id;v\n"] + [f"{i};{i + 1}\n" for i in range(1000)]))
    assert seen and seen[0].path is not None and seen[0]._rows is None  # counted in DuckDB, never loaded


# --- 6. one table's broken state stops only that table ------------------------------------------------------------
def test_a_missing_committed_snapshot_fails_only_its_table(tmp_path: Path):
    config = write_config(tmp_path)
    assert run_cli("--once", "-q", "--config", str(config)).code == 0
    state = json.loads((tmp_path / "data/state/produtos.json").read_text())
    (tmp_path / "data" / state["snapshot"]).unlink()
    result = run_cli("--once", "--config", str(config))
    assert result.code == 1
    assert "produtos" in result.out and "is missing" in result.out
    assert result.out.count("changes   I") == 3


# --- 7. crash safety ----------------------------------------------------------------------------------------------
def test_a_failed_local_put_leaves_no_temporary_file(tmp_path: Path):
    lake = LocalLake(tmp_path / "lake")
    (tmp_path / "lake/full-load/t/t.parquet").mkdir(parents=True)  # the target is in the way
    (tmp_path / "f").write_text("data")
    with pytest.raises(LakeError):
        lake.put(tmp_path / "f", "full-load/t/t.parquet")
    assert [p.name for p in (tmp_path / "lake/full-load/t").iterdir()] == ["t.parquet"]


def test_after_a_crash_before_the_commit_the_full_load_is_still_the_committed_one(tmp_path: Path):
    import os
    import signal
    import subprocess
    import sys

    from .conftest import ROOT

    config = write_config(tmp_path)
    assert run_cli("--once", "-q", "--config", str(config)).code == 0
    before = (tmp_path / "lake/full-load/clientes/clientes.parquet").read_bytes()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CDC_FAULT": "clientes:after_put_cdc"}
    killed = subprocess.run([sys.executable, "-m", "cdc_core", "--once", "-q", "--config", str(config)], env=env,
                            capture_output=True, timeout=120, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / "lake/full-load/clientes/clientes.parquet").read_bytes() == before
    assert len(read_manifests(LocalLake(tmp_path / "lake"), "clientes")) == 1


# --- 8. edges -----------------------------------------------------------------------------------------------------
def test_an_unwritable_data_dir_is_one_line(tmp_path: Path):
    (tmp_path / "afile").write_text("not a folder")
    config = write_config(tmp_path, data_dir="afile/data")
    result = run_cli("--once", "--config", str(config))
    assert result.code == 2 and "Traceback" not in result.err
    assert result.err.startswith("Error: Cannot write the log file") and result.err.count("\n") == 1


@pytest.mark.parametrize("blocked", ["outbox", "tmp"])
def test_a_data_dir_whose_inner_folder_is_a_file_fails_the_table_in_one_line(tmp_path: Path, blocked: str):
    config = write_config(tmp_path)  # the demo source
    (tmp_path / "data" / "logs").mkdir(parents=True)
    (tmp_path / "data" / blocked).write_text("not a folder")
    result = run_cli("--once", "--tables", "produtos", "--config", str(config))
    assert result.code == 1 and "Traceback" not in result.out + result.err
    line = next(x for x in result.out.splitlines() if "FAILED" in x)
    assert f"{tmp_path / 'data' / blocked}" in line and line.endswith(
        "— check that the data dir and the lake are writable folders with space")


def test_a_table_name_ending_in_a_newline_is_refused(tmp_path: Path):
    result = run_cli("--once", "--config", str(write_config(tmp_path, tables=[{"name": "t\n", "pk": "id"}])))
    assert result.code == 2 and "tables[0].name" in result.err


def test_a_zip_bomb_is_refused(tmp_path: Path):
    archive = tmp_path / "clientes.csv.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("clientes.csv", b"0" * 50_000_000)  # 50 MB of zeros compress about a thousandfold
    with pytest.raises(_TableError, match="zip bomb"):
        _extract(archive, "clientes.csv", tmp_path / "clientes.csv")


def test_manifests_are_read_once_per_process(tmp_path: Path):
    class CountingLake(LocalLake):
        reads = 0

        def get(self, key):
            CountingLake.reads += key.startswith("manifests/")
            return super().get(key)

    csv, config = directory_lake(tmp_path)
    for text in ("id;v\n1;a\n", "id;v\n1;b\n", "id;v\n1;c\n"):
        capture(config, csv, text)
    lake = CountingLake(tmp_path / "lake")
    lake.url = "counting:" + lake.url  # a cache of its own, not the one the captures filled
    assert len(read_manifests(lake, "t")) == 3 and CountingLake.reads == 3
    assert len(read_manifests(lake, "t")) == 3 and CountingLake.reads == 3


def test_a_bad_date_in_the_date_field_still_says_where(tmp_path: Path):
    csv, config = directory_lake(tmp_path, date_field="d")
    report = capture(config, csv, "id;d\n1;2025-01-01\n2;yesterday\n").tables[0]
    assert report.status == "failed" and report.error == (
        f'Table "t": {csv.name}: date field "d" has values that are not dates (e.g. \'yesterday\') — use '
        'YYYY-MM-DD[ HH:MM:SS[.fff]], or give its format in "columns" in the config')


# --- every table column of every lake file is optional, as the table's columns are ------------------------------
def test_lake_files_never_declare_a_table_column_not_null(tmp_path: Path):
    (tmp_path / "source").mkdir()
    config = load_config(write_config(tmp_path, source={"type": "directory", "path": "source"},
                                      tables=[{"name": "t", "pk": "id"}]))
    pq.write_table(pa.table({"id": ["1", "2"], "v": ["a", "b"], "n": [1, 2]}), tmp_path / "source" / "t.parquet")
    assert run_once(config).ok
    pq.write_table(pa.table({"id": ["1", "3"], "v": ["A", "c"], "n": [1, 3]}), tmp_path / "source" / "t.parquet")
    assert run_once(config).ok  # no NULL anywhere, yet another run may bring some: DuckDB must not say "required"
    files = sorted((tmp_path / "lake").rglob("*.parquet"))
    assert run_cli("replay", "--table", "t", "--output", str(tmp_path / "r.parquet"), "--config",
                   str(tmp_path / "config.json")).code == 0
    for path in [*files, tmp_path / "r.parquet"]:
        schema = pq.read_schema(path)
        assert all(schema.field(c).nullable for c in ("id", "v", "n")), (path, schema)
