"""Shared by the table-format tests: chains of runs made by the project's own snapshot loader and diff, the laws
every format keeps (state == snapshot after each run, idempotent apply, time travel), and a moto server process.

The moto server runs in its own process here, not in a thread: delta-rs' `load_cdf` holds the GIL while it waits
for S3, so an in-process (threaded) server could never answer it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cdc_core import diff
from cdc_core.config import TableConfig, parse_config
from cdc_core.engines.duckdb.snapshot import load_snapshot
from cdc_core.formats import FormatRun, TableFormat, make_format
from cdc_core.formats.changes import normalize
from cdc_core.sources.demo import DemoSource

DATA = Path(__file__).resolve().parent / "data"
BUCKET = "format-lake"
START = datetime(2025, 9, 18, 12, 0, tzinfo=UTC)


@dataclass
class Chain:
    """Successive snapshots of one table as the runs a format applies, with each run's I/U/D counts."""

    folder: Path
    table: str
    key: tuple[str, ...]
    sep: str = ";"
    runs: list[FormatRun] = field(default_factory=list)
    counts: list[dict[str, int] | None] = field(default_factory=list)

    def add(self, snapshot: pa.Table | Path) -> FormatRun:
        """Make the next run from a snapshot (an Arrow table, or a CSV file the project's loader types)."""
        i = len(self.runs)
        started = START + timedelta(hours=6 * i)
        run_id = started.strftime("%Y%m%d_%H%M%S")
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.table}_{run_id}.parquet"
        if isinstance(snapshot, pa.Table):
            pq.write_table(snapshot, path)
        else:
            load_snapshot(Path(snapshot), TableConfig(name=self.table, pk=self.key, sep=self.sep), path)
        changes, counts = None, None
        if self.runs:
            change_set = diff(self.runs[-1].snapshot, path, self.key)
            counts = dict(change_set.counts)
            rows = change_set.rows
            if rows.num_rows:
                rows = rows.append_column("_cdc_run_id", pa.array([run_id] * rows.num_rows, pa.string()))
                rows = rows.append_column("_cdc_captured_at", pa.array([started] * rows.num_rows,
                                                                       pa.timestamp("us", tz="UTC")))
                changes = self.folder / f"{self.table}_{run_id}_changes.parquet"
                pq.write_table(rows, changes)
        run = FormatRun(table=self.table, run_id=run_id, key=self.key, snapshot=path, changes=changes,
                        first=not self.runs, history=tuple(r.run_id for r in self.runs))
        self.runs.append(run)
        self.counts.append(counts)
        return run

    def snapshot(self, run: FormatRun) -> pa.Table:
        return pq.read_table(run.snapshot)

    def with_before_images(self) -> Chain:
        """The same runs with change files as a later core may write them: a `B` row (the previous row) before
        each `U` row, and a `_cdc_changed` list of column names on every row. Formats must ignore both."""
        runs = self.runs[:1]
        for previous, run in zip(self.runs, self.runs[1:]):
            if run.changes is None:
                runs.append(run)
                continue
            rows = pq.read_table(run.changes)
            before = {tuple(r[k] for k in self.key): r for r in pq.read_table(previous.snapshot).to_pylist()}
            out = []
            for row in rows.to_pylist():
                old = before.get(tuple(row[k] for k in self.key), {})
                if row["op"] == "U":
                    out.append({**{c: old.get(c) for c in row}, "op": "B", "_cdc_run_id": row["_cdc_run_id"],
                                "_cdc_captured_at": row["_cdc_captured_at"], "_cdc_changed": None})
                out.append({**row, "_cdc_changed": [c for c in row if c in old and old[c] != row[c]]})
            path = run.changes.with_name(run.changes.stem + "_b.parquet")
            pq.write_table(pa.Table.from_pylist(
                out, schema=rows.schema.append(pa.field("_cdc_changed", pa.list_(pa.string())))), path)
            runs.append(replace(run, changes=path))
        return Chain(self.folder, self.table, self.key, self.sep, runs, self.counts)


def demo_chain(folder: Path, table: str, key: str, versions: range, *, seed: int = 3,
               scale: float = 0.05) -> Chain:
    """Demo versions of a table, each written as the source's CSV and typed by the project's loader."""
    source, chain = DemoSource(seed, scale), Chain(folder, table, (key,))
    folder.mkdir(parents=True, exist_ok=True)
    for version in versions:
        chain.add(source.write(table, version, folder / f"{table}_v{version}.csv"))
    return chain


def real_chain(folder: Path, table: str) -> Chain:
    """The real dataset's two files of a table (tests/data)."""
    files = {"clientes": ("idCliente", ["clientes_20250918.csv", "clientes_20250922.csv"]),
             "produtos": ("IdProduto", ["produtos_41.csv", "produtos_118.csv"])}
    key, names = files[table]
    chain = Chain(folder, table, (key,))
    for name in names:
        chain.add(DATA / name)
    return chain


# --- the laws ----------------------------------------------------------------------------------------------

def assert_same(actual: pa.Table, expected: pa.Table, key: tuple[str, ...], what: str = "") -> None:
    """Same columns with the same (lake) types and the same rows, whatever the order of rows and columns."""
    actual, expected = normalize(actual), normalize(expected)
    assert sorted(actual.column_names) == sorted(expected.column_names), what
    actual = actual.select(expected.column_names)
    assert actual.schema == expected.schema.remove_metadata(), what
    order = [(k, "ascending") for k in key]
    a, e = actual.sort_by(order), expected.sort_by(order)
    if not a.equals(e):
        a_rows, e_rows = a.to_pylist(), e.to_pylist()
        missing = [r for r in e_rows if r not in a_rows][:3]
        extra = [r for r in a_rows if r not in e_rows][:3]
        pytest.fail(f"{what}: {a.num_rows} rows, expected {e.num_rows}; missing {missing}; unexpected {extra}")


def apply_and_check(fmt: TableFormat, chain: Chain, head: Callable[[str], object]) -> list[int]:
    """Apply every run: the state equals its snapshot, a second apply commits nothing; then travel back to each.

    `head(table)` names the format table's latest commit (any value that changes on every commit). A run with
    nothing to write is not recorded (no commit) until a later run is: applied_version says None for it till then.
    """
    versions = []
    for run in chain.runs:
        assert fmt.applied_version(run.table, run.run_id) is None
        version = fmt.apply(run)
        versions.append(version)
        applied = fmt.applied_version(run.table, run.run_id)
        assert applied == version or (applied is None and run.changes is None and not run.first)
        assert_same(fmt.current(run.table), chain.snapshot(run), chain.key, f"state after {run.run_id}")
        before = head(run.table)
        assert fmt.apply(run) == version
        assert head(run.table) == before, f"applying {run.run_id} twice made a commit"
    for run, version in zip(chain.runs, versions, strict=True):
        if fmt.applied_version(run.table, run.run_id) is None:  # only trailing runs with nothing to write
            assert run.changes is None and version == versions[-1]
            continue
        assert fmt.applied_version(run.table, run.run_id) == version
        assert_same(fmt.as_of(run.table, run.run_id), chain.snapshot(run), chain.key, f"as of {run.run_id}")
    return versions


# --- configs and servers -----------------------------------------------------------------------------------

def format_for(folder: Path, table_format: str, lake: str = "lake", **extra) -> TableFormat:
    """The format a config.json with `table_format` (and e.g. an "iceberg" block) makes."""
    raw = {"source": {"type": "demo"}, "lake": lake, "tables": [{"name": "t", "pk": "id"}],
           "table_format": table_format, **extra}
    config = parse_config(raw, base_dir=folder)
    return make_format(config.table_format, config.lake)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory) -> Iterator[str]:
    """A moto server (S3 and Glue) in its own process on 127.0.0.1."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"moto server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_lake(moto_endpoint: str, monkeypatch, tmp_path: Path) -> str:
    """A fresh prefix in a bucket of the moto server; the environment points boto3 (and our formats) at it."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret-value",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": moto_endpoint,
                        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=BUCKET)
    return f"s3://{BUCKET}/{tmp_path.name}"


# --- random snapshot sequences (hypothesis) ------------------------------------------------------------------

def snapshot_sequences():
    """Strategy: 2-4 small snapshots of one table keyed by `id`, whose columns come and go, hold NULLs, and may
    widen to string once (then stay string) — the lake's rules for column types."""
    import decimal

    from hypothesis import strategies as st

    pool = {
        "i": (pa.int64(), st.integers(-(2**40), 2**40)),
        "f": (pa.float64(), st.integers(-4000, 4000).map(lambda i: i / 4)),
        "d": (pa.decimal128(10, 2), st.integers(-10**6, 10**6).map(lambda i: decimal.Decimal(i).scaleb(-2))),
        "b": (pa.bool_(), st.booleans()),
        "day": (pa.date32(), st.dates(min_value=datetime(2000, 1, 1).date(), max_value=datetime(2030, 1, 1).date())),
        "ts": (pa.timestamp("us", tz="UTC"), st.datetimes(min_value=datetime(2000, 1, 1),
                                                          max_value=datetime(2030, 1, 1)).map(
            lambda d: d.replace(tzinfo=UTC))),
        "Nome Ç": (pa.string(), st.text(max_size=5)),
    }

    @st.composite
    def sequences(draw) -> list[pa.Table]:
        widened: set[str] = set()
        tables = []
        for _ in range(draw(st.integers(2, 4))):
            ids = sorted(draw(st.sets(st.sampled_from([f"k{i}" for i in range(8)]), max_size=6)))
            columns = sorted(draw(st.sets(st.sampled_from(sorted(pool)))))
            if columns and draw(st.booleans()):
                widened.add(draw(st.sampled_from(columns)))
            table = {"id": pa.array(ids, pa.string())}
            for name in columns:
                kind, values = pool[name]
                row = [draw(st.none() | values) for _ in ids]
                table[name] = (pa.array([None if v is None else str(v) for v in row], pa.string())
                               if name in widened else pa.array(row, kind))
            tables.append(pa.table(table))
        return tables

    return sequences()
