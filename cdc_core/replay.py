"""Rebuild a table from the lake alone, as of any committed run, and verify the lake against the local state.

The manifests (`manifests/{table}/{table}_{run}.json`, written last by every capture) say which runs are
committed. A table as of run R is its latest base (first full load) at or before R, with every CDC file after the
base up to R applied in run order: per key, the last change wins; a `D` removes the row. A column that left the
table and came back holds only what was written since it came back.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from .chain import head, is_base, manifest, run_ids, walk_back
from .config import Config
from .engines.duckdb import diff
from .errors import CdcError, LakeError
from .lake import Lake, make_lake, read_manifests
from .layout import full_load_file, manifest_file, sha256
from .state import State
from .types import sql_type

if TYPE_CHECKING:
    from .engines import Engine


@dataclass(frozen=True)
class Replayed:
    """A table rebuilt from the lake."""

    table: str
    run_id: str
    rows: int
    path: Path


@dataclass
class TableCheck:
    """What `verify` found for one table."""

    table: str
    run_id: str | None = None
    rows: int | None = None
    problems: list[str] = field(default_factory=list)
    captured: bool = True  # False: neither the data dir nor the lake holds a capture of this table yet

    @property
    def ok(self) -> bool:
        return not self.problems


def replay(lake: Lake, table: str, output: Path, *, as_of: str | None = None, engine: Engine | None = None,
           top: dict | None = None) -> Replayed:
    """Write `table` as of run `as_of` (default: the head run, `top` when the caller has read it) to `output` as
    Parquet. It reads the newest base at or before that run and at most `checkpoint_every` CDC files after it."""
    with _scratch("cdc-replay-", engine) as tmp:
        folder = Path(tmp)
        target = _target(lake, table, as_of, top)
        chain = walk_back(lake, table, target, is_base)
        base = chain[0]
        if not is_base(base):
            raise LakeError(f'The lake {lake.url} has no base (first full load or checkpoint) of table "{table}" '
                            f"at or before run {target['run_id']} — it cannot be replayed")
        base_file = lake.local(manifest_file(base, "base"), folder)
        cdc_files = [lake.local(manifest_file(m, "cdc"), folder) for m in chain[1:] if m.get("has_changes")]
        columns, key = _columns(target), target["pk"]
        forget = [f for m, f in zip(chain, _forgotten(chain, columns), strict=True)
                  if m is base or m.get("has_changes")]
        if not set(key) <= set(columns):
            raise LakeError(f'Manifest of run {target["run_id"]} ({table}) has a key that is not one of its columns — '
                            "the lake is damaged: restore the manifest")
        layouts = {c: layout for c, layout in target.get("layouts", {}).items() if c in columns}
        rows = (engine or _local_engine()).replay(base_file, cdc_files, columns, key, layouts, output, forget=forget)
    return Replayed(table=table, run_id=target["run_id"], rows=rows, path=output)


def _target(lake: Lake, table: str, as_of: str | None, top: dict | None) -> dict:
    """The manifest of the run a replay rebuilds: the head, or the last run at or before `as_of`."""
    top = top or head(lake, table, repair=False)
    if top is None:
        raise LakeError(f'The lake {lake.url} has no captures of table "{table}" — check the table name and the lake')
    if as_of is None or as_of >= top["run_id"]:
        return top
    kept = run_ids(lake, table)
    earlier = [r for r in kept if r <= as_of]
    if not earlier:
        raise CdcError(f'Table "{table}" has no capture at or before run {as_of} — the lake keeps runs from '
                       f"{kept[0] if kept else top['run_id']} on (older ones before a checkpoint are removed after "
                       '"lake_retention"); choose a later --as-of')
    return manifest(lake, table, earlier[-1])


def _scratch(prefix: str, engine: Engine | None) -> tempfile.TemporaryDirectory:
    """A temporary folder for the files an engine reads and writes: the engine's `scratch` when it has one (Spark:
    `data_dir/tmp`, which its executors see), else the system's."""
    folder = getattr(engine, "scratch", None)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=prefix, dir=folder)


def _local_engine() -> Engine:
    """DuckDB with default settings, for a replay asked for without a config (the notebooks, a script)."""
    from .engines import engine_class

    return engine_class("duckdb")()


def _forgotten(chain: list[dict], columns: dict[str, str]) -> list[frozenset[str]]:
    """Per run of `chain` (the base, then every run after it): the columns whose values in that run's file no longer
    count, because the column left the table after it and came back. A column that comes back starts empty, as a
    new one does: only the rows that changed since (their `U` rows, with its value) say otherwise."""
    back: dict[str, int] = {}  # column -> index of the run where it last (re)appeared
    for i in range(1, len(chain)):
        before = chain[i - 1].get("columns") or {}
        back.update((c, i) for c in chain[i].get("columns") or {} if c not in before)
    return [frozenset(c for c in columns if back.get(c, 0) > i) for i in range(len(chain))]


def _columns(manifest: dict) -> dict[str, str]:
    """A manifest's columns and types; a type that is not a lake type means a damaged (or crafted) manifest."""
    try:
        return {str(c): sql_type(t) for c, t in manifest["columns"].items()}
    except (ValueError, AttributeError, TypeError):
        raise LakeError(f'Manifest of run {manifest.get("run_id")} ({manifest.get("table")}) has column types that '
                        "are not lake types — the lake is damaged: restore the manifest") from None


def verify(config: Config, tables: list[str] | None = None) -> list[TableCheck]:
    """Replay every table from the lake and compare it with the committed snapshot; also check CDC checksums."""
    from .engines import make_engine
    from .formats import make_format

    lake, state = make_lake(config.lake), State(config.data_dir)
    table_format, engine = make_format(config.table_format, config.lake), make_engine(config)
    checks = []
    for table in [config.table(n) for n in tables] if tables else config.tables:
        check = TableCheck(table.name)
        checks.append(check)
        try:
            _verify_table(lake, state, table.name, table.pk, check, engine, table_format)
        except CdcError as exc:
            check.problems.append(str(exc))
    engine.close()
    return checks


def _verify_table(lake: Lake, state: State, name: str, pk: tuple[str, ...], check: TableCheck, engine: Engine,
                  table_format=None) -> None:
    """In step with the lake: replay == the committed snapshot. A data dir that never captured (or a fresh one):
    the lake alone, replay of its latest run == its full load. Every data file must match its manifest, and a
    table format's current state must equal the replayed table."""
    committed = state.committed(name)
    with _scratch("cdc-verify-", engine) as tmp:
        folder = Path(tmp)
        runs = read_manifests(lake, name)
        if committed is None and not runs:
            check.problems.append("not captured yet — run a capture first")
            check.captured = False
            return
        for manifest in runs:
            for item in manifest["files"]:
                if not item["key"].startswith("full-load/") and sha256(lake.local(item["key"], folder)) != \
                        item["sha256"]:
                    check.problems.append(f"{item['key']} does not match its manifest's checksum")
        _check_chain(runs, check)
        latest = head(lake, name, repair=False)
        if committed is not None and (latest is None or latest["run_id"] != committed.run_id):
            last = latest["run_id"] if latest else "none"
            check.problems.append(f"the lake's last capture is run {last} but {state.root} is at run "
                                  f"{committed.run_id} — run a capture to bring it onto the lake, then verify")
        if latest is None:
            return
        check.run_id = committed.run_id if committed else latest["run_id"]
        replayed = replay(lake, name, folder / "replayed.parquet", as_of=check.run_id, engine=engine, top=latest)
        check.rows = replayed.rows
        if table_format is not None:  # the format table follows the lake, even when this data dir is behind it
            at_latest = replayed if replayed.run_id == latest["run_id"] else replay(
                lake, name, folder / "latest.parquet", as_of=latest["run_id"], engine=engine, top=latest)
            _check_format(table_format, name, pk, at_latest, check)
        if committed is not None:
            _compare(committed.snapshot, replayed.path, pk, "the committed snapshot", check)
        full = full_load_file(latest)
        local_full = lake.local(full["key"], folder / "full")
        if sha256(local_full) != full["sha256"]:
            check.problems.append(f"{full['key']} is not the full load of run {latest['run_id']} (its writer stopped "
                                  "before refreshing it) — the next capture rewrites it")
        elif committed is None:
            _compare(local_full, replayed.path, pk, "the latest full load", check)


def _check_chain(runs: list[dict], check: TableCheck) -> None:
    """The kept runs form one chain: each names the run before it as its parent (the first kept one excepted)."""
    for before, run in pairwise(runs):
        if "parent" in run and run["parent"] != before["run_id"]:
            check.problems.append(f"run {run['run_id']} was diffed against run {run['parent']}, not against the run "
                                  f"before it ({before['run_id']}) — the history forks or is out of order")


def _check_format(table_format, name: str, pk: tuple[str, ...], replayed: Replayed, check: TableCheck) -> None:
    import pyarrow.parquet as pq

    from .formats import differences

    found = differences(table_format.current(name), pq.read_table(replayed.path), tuple(pk))
    if found:
        check.problems.append(f"the {table_format.name} table differs from the lake's run {replayed.run_id}: {found}")


def _compare(expected: Path, replayed: Path, pk: tuple[str, ...], what: str, check: TableCheck) -> None:
    changes = diff(expected, replayed, pk)
    if changes.total or changes.schema_changed:
        keys = changes.rows.select(list(pk)).to_pylist()[:5]
        shown = ", ".join("/".join(str(v) for v in k.values()) for k in keys)
        notes = "; " + "; ".join(changes.warnings) if changes.warnings else ""
        check.problems.append(f"replaying the lake differs from {what}: {changes.total} row(s) (e.g. {shown}){notes}")
