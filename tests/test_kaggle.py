"""The Kaggle source: the real kaggle client against a local fake Kaggle server (tests/fake_kaggle.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from cdc_core import run_once
from cdc_core.config import TableConfig, parse_config
from cdc_core.errors import SourceError
from cdc_core.sources.demo import TABLES, DemoSource
from cdc_core.sources.kaggle import KaggleSource

from .conftest import DEMO_TABLES, ROOT
from .fake_kaggle import FakeKaggle, route_client

USER, KEY, TOKEN = "alice", "key-7f3a9c1e55", "token-b81d44e0a2"
SEED, SCALE = 3, 0.05
DB = "database.db"


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, bytes]]:
    """Versions 1 and 2 of the demo dataset as the Kaggle dataset's files, plus a database.db nobody needs."""
    folder, demo = tmp_path_factory.mktemp("demo"), DemoSource(SEED, scale=SCALE)
    return {v: {**{f"{n}.csv": demo.write(n, v, folder / f"{n}_{v}.csv").read_bytes() for n in TABLES},
                DB: b"SQLite format 3\x00" + bytes(8192)} for v in (1, 2)}


@pytest.fixture
def fake(versions: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKaggle]:
    """The fake serving owner/slug; the real client pointed at it, signed in by KAGGLE_USERNAME/KAGGLE_KEY."""
    monkeypatch.setenv("KAGGLE_USERNAME", USER)
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    with FakeKaggle({"owner/slug": versions}, users={USER: KEY}, tokens={TOKEN: USER}) as server:
        route_client(server, monkeypatch, tmp_path / "home")
        yield server


def source(dataset: str = "owner/slug", **options) -> KaggleSource:
    return KaggleSource(dataset, backoff=0.001, **options)


def tables(*names: str) -> list[TableConfig]:
    return [TableConfig(name, ("id",), sep=";") for name in names]


def fetch(src: KaggleSource, dest: Path, names: tuple[str, ...] = TABLES, last_version: str | None = None):
    dest.mkdir(parents=True, exist_ok=True)
    return src.fetch(tables(*names), dest, last_version=last_version)


def test_pipeline_captures_each_version_once_and_never_downloads_the_database(fake: FakeKaggle, tmp_path: Path):
    config = parse_config({"source": {"type": "kaggle", "dataset": "owner/slug"}, "lake": "lake",
                           "data_dir": "data", "tables": DEMO_TABLES}, base_dir=tmp_path)
    fake.current["owner/slug"] = 1
    first = run_once(config)
    assert first.ok and first.source == "kaggle owner/slug" and first.source_version == "1"
    assert [t.status for t in first.tables] == ["full_load"] * 4
    assert sorted(fake.downloads) == sorted((f"{n}.csv", 1) for n in TABLES)
    full = pd.read_parquet(tmp_path / "lake/full-load/clientes/clientes.parquet")
    assert len(full) == DemoSource(SEED, scale=SCALE).table("clientes", 1).num_rows

    fake.current["owner/slug"] = 2
    second = run_once(config)
    assert second.ok and second.source_version == "2"
    assert {t.table: t.counts for t in second.tables} == DemoSource(SEED, scale=SCALE).expected_changes(2)
    manifest = max((tmp_path / "lake/manifests/clientes").glob("*.json"))
    assert json.loads(manifest.read_text())["source_version"] == "2"

    downloads = len(fake.downloads)
    third = run_once(config)  # Kaggle still at version 2: nothing downloaded, nothing captured
    assert third.source_version == "2" and [t.status for t in third.tables] == ["skipped"] * 4
    assert len(fake.downloads) == downloads
    assert not [r for r in fake.requests if DB in r.path or DB in json.dumps(r.body)]


def test_fetch_delivers_the_tables_of_the_current_version_silently(fake: FakeKaggle, versions: dict,
                                                                   tmp_path: Path, capsys: pytest.CaptureFixture):
    capsys.readouterr()
    result = fetch(source(), tmp_path / "dest")
    assert result.version == "2" and not result.errors and not result.unchanged
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == sorted(f"{n}.csv" for n in TABLES)
    assert all(result.files[n].read_bytes() == versions[2][f"{n}.csv"] for n in TABLES)
    assert {r.auth for r in fake.requests} == {f"basic {USER}"}
    assert capsys.readouterr() == ("", "")  # the client's "Dataset URL: …" lines are captured, not printed


def test_unchanged_version_downloads_nothing(fake: FakeKaggle, tmp_path: Path):
    result = fetch(source(), tmp_path / "dest", last_version="2")
    assert result.unchanged and result.version == "2" and not result.files
    assert list((tmp_path / "dest").iterdir()) == []
    assert [r.call for r in fake.requests] == ["GetDataset"]


def test_a_pinned_version_is_downloaded_as_pinned(fake: FakeKaggle, versions: dict, tmp_path: Path):
    result = fetch(source("owner/slug/1"), tmp_path / "dest", ("clientes",))
    assert result.version == "1" and result.files["clientes"].read_bytes() == versions[1]["clientes.csv"]
    assert fake.downloads == [("clientes.csv", 1)]


def test_zipped_files_are_extracted(fake: FakeKaggle, versions: dict, tmp_path: Path):
    fake.zipped = True
    result = fetch(source(), tmp_path / "dest", ("clientes", "produtos"))
    assert result.files["produtos"].read_bytes() == versions[2]["produtos.csv"]
    assert [r.path.rsplit("/", 1)[-1] for r in fake.calls("blob")] == ["clientes.csv.zip", "produtos.csv.zip"]
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["clientes.csv", "produtos.csv"]


@pytest.mark.parametrize("entry", ["../evil.csv", "sub/../../evil.csv", "/tmp/evil.csv"])
def test_a_zip_entry_outside_the_folder_is_refused(fake: FakeKaggle, versions: dict, tmp_path: Path, entry: str):
    fake.archives["clientes.csv"] = {"clientes.csv": versions[2]["clientes.csv"], entry: b"pwned"}
    result = fetch(source(), tmp_path / "fetch" / "run", ("clientes", "produtos"))
    assert "points outside the download folder — refused" in str(result.errors["clientes"])
    assert list(result.files) == ["produtos"]
    assert [p.name for p in (tmp_path / "fetch" / "run").iterdir()] == ["produtos.csv"]
    assert not list(tmp_path.rglob("evil.csv")) and not Path("/tmp/evil.csv").exists()


def test_a_missing_table_file_fails_only_that_table(fake: FakeKaggle, tmp_path: Path):
    result = fetch(source(), tmp_path / "dest", ("clientes", "extra", "produtos"))
    assert sorted(result.files) == ["clientes", "produtos"] and list(result.errors) == ["extra"]
    message = str(result.errors["extra"])
    assert message.startswith('Table "extra": the dataset owner/slug (version 2) has no file extra.csv — ')
    assert "clientes.csv, database.db, produtos.csv" in message


def test_503_twice_then_success(fake: FakeKaggle, tmp_path: Path):
    fake.unavailable = 2
    result = fetch(source(), tmp_path / "dest", ("clientes",))
    assert result.version == "2" and list(result.files) == ["clientes"]
    assert len(fake.calls("GetDataset")) == 3


def test_retries_give_up_after_the_attempts(fake: FakeKaggle, tmp_path: Path):
    fake.unavailable = 100
    with pytest.raises(SourceError, match=r"after 3 attempts \(last: HTTP 503 Service Unavailable\)"):
        fetch(source(attempts=3), tmp_path / "dest")
    assert len(fake.requests) == 3


def test_a_stalled_answer_times_out_and_is_retried(fake: FakeKaggle, tmp_path: Path):
    fake.slow, fake.delay = 1, 2.0
    result = fetch(source(timeout=0.3), tmp_path / "dest", ("clientes",))
    assert list(result.files) == ["clientes"] and len(fake.calls("GetDataset")) == 2


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("KAGGLE_KEY", "key-wrong-0000", "Kaggle rejected the credentials (KAGGLE_USERNAME and KAGGLE_KEY)"),
    ("KAGGLE_API_TOKEN", "token-wrong-0000", "Kaggle rejected the API token in KAGGLE_API_TOKEN"),
])
def test_bad_credentials_are_one_line_without_the_secret(fake: FakeKaggle, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, variable: str,
                                                         value: str, expected: str):
    if variable == "KAGGLE_API_TOKEN":  # a token wins over KAGGLE_USERNAME/KAGGLE_KEY: test it alone
        monkeypatch.delenv("KAGGLE_USERNAME")
        monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv(variable, value)
    with pytest.raises(SourceError) as error:
        fetch(source(), tmp_path / "dest")
    message = str(error.value)
    assert message.startswith(expected) and "\n" not in message
    assert value not in message and KEY not in message
    assert not fake.calls("DownloadDataset") and len(fake.calls("GetDataset")) <= 1  # 401 is not retried


@pytest.mark.parametrize(("dataset", "expected"), [
    ("owner/nope", 'Kaggle has no dataset owner/nope — check "source.dataset"'),
    ("owner/slug/9", "The dataset owner/slug has no version 9 (its latest is 2)"),
])
def test_a_missing_dataset_or_version_fails_the_source(fake: FakeKaggle, tmp_path: Path, dataset: str,
                                                       expected: str):
    with pytest.raises(SourceError, match=re.escape(expected)):
        fetch(source(dataset), tmp_path / "dest")
    assert len(fake.calls("GetDataset")) == 1 and not fake.calls("DownloadDataset")


@pytest.mark.parametrize("credentials", ["username_key", "token"])
def test_credentials_from_the_environment_work(fake: FakeKaggle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               credentials: str):
    if credentials == "token":
        monkeypatch.delenv("KAGGLE_USERNAME")
        monkeypatch.delenv("KAGGLE_KEY")
        monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
    result = fetch(source(), tmp_path / "dest", ("produtos",))
    assert list(result.files) == ["produtos"]
    expected = "bearer" if credentials == "token" else f"basic {USER}"
    assert {r.auth for r in fake.requests if r.call != "IntrospectToken"} == {expected}


def test_no_credentials_in_a_fresh_process_prints_nothing_and_says_how_to_fix(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    script = ("from pathlib import Path\n"
              "from cdc_core.config import TableConfig\n"
              "from cdc_core.sources.kaggle import KaggleSource\n"
              "try:\n"
              "    KaggleSource('owner/slug').fetch([TableConfig('t', ('id',))], Path('.'), last_version=None)\n"
              "except Exception as exc:\n"
              "    raise SystemExit(f'{type(exc).__name__}: {exc}')\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.stdout == ""  # kaggle's own help text, printed at import, is swallowed
    assert proc.stderr.strip().startswith("SourceError: No Kaggle credentials found — set KAGGLE_API_TOKEN")
    assert proc.stderr.count("\n") == 1
