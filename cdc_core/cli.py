"""`python -m cdc_core`: parse, call the core, print a summary, exit 0 (ok), 1 (a table failed) or 2 (usage/config)."""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import extras
from .config import load_config
from .errors import CdcError, ConfigError
from .logs import redact, setup_logging
from .pipeline import RunReport, run_once

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own exit code is 2 as well; keep its one-line style
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"Error: {message} — see --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m cdc_core", description=(
        "Capture inserts, updates and deletes of a dataset's CSV tables into a data lake as Parquet. "
        "Without --once, runs a cycle on every tick of the config's timer."))
    parser.add_argument("--version", action="version", version=f"{extras.DISTRIBUTION} {extras.version()}",
                        help="print the installed version and exit")
    parser.add_argument("--once", action="store_true", help="run one capture cycle and exit")
    _config_option(parser, default="config.json")
    parser.add_argument("--tables", metavar="A,B", help="capture only these tables (comma-separated)")
    parser.add_argument("--skip-download", action="store_true",
                        help="re-use the last fetched files instead of fetching again (they are kept)")
    parser.add_argument("--dry-run", action="store_true",
                        help="fetch and diff, then list what would be uploaded; upload and commit nothing")
    parser.add_argument("--accept-held", metavar="A,B",
                        help="publish these tables' captures even if they break a guard (they were held)")
    parser.add_argument("--publish", metavar="RUN_ID",
                        help="publish exactly what the dry run RUN_ID showed (refused if the lake moved since)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary and errors")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also log each table's stage timings (snapshot, diff, publish…) and other details")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    d = commands.add_parser("diff", help="compare two snapshot files by key and write the change rows",
                            description="Compare two snapshots (CSV or Parquet) by key; print the I/U/D counts and "
                                        "write the change rows (op + the row's columns) as Parquet.")
    d.add_argument("previous", help="the previous snapshot (CSV or Parquet)")
    d.add_argument("current", help="the current snapshot (CSV or Parquet)")
    d.add_argument("--key", action="append", required=True, metavar="COL",
                   help="key column; repeat for a composite key")
    d.add_argument("--sep", default=",", help="CSV separator (default ',')")
    d.add_argument("--quote", default='"', metavar="CHAR",
                   help="CSV quote character (default '\"', RFC 4180; '' for none)")
    d.add_argument("--date-field", metavar="COL", help="date column, parsed as a UTC timestamp")
    d.add_argument("--detect", choices=("content", "date_field"), default="content",
                   help="what makes an update: any content change (default) or a later date field")
    d.add_argument("--output", required=True, metavar="OUT.parquet", help="where to write the change rows")
    d.add_argument("--stat", action="store_true",
                   help="also print each changed column with its number of updated rows")
    d.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb",
                   help="where to diff: DuckDB in this process (default) or Spark (local[*]; needs cdc-core[spark])")
    d.add_argument("--changed-columns", action="store_true",
                   help="add _cdc_changed (each U row's changed columns) to the change rows")
    r = commands.add_parser("replay", help="rebuild a table from the lake alone, as of any committed run",
                            description="Rebuild a table from the lake alone (its base plus every CDC file), as of "
                                        "the latest committed run or --as-of RUN_ID, and write it as Parquet.")
    r.add_argument("--table", required=True, help="the table to rebuild")
    r.add_argument("--as-of", metavar="RUN_ID|DATE",
                   help="a run id (YYYYMMDD_HHMMSS), or an ISO date/time (UTC): the table as the last run at or "
                        "before it left it")
    r.add_argument("--output", required=True, metavar="FILE.parquet", help="where to write the table")
    _config_option(r)
    v = commands.add_parser("verify", help="check that replaying the lake gives the committed snapshots",
                            description="For every table, replay the lake and compare it with the committed "
                                        "snapshot in data_dir; exit 0 only if all match.")
    v.add_argument("--tables", metavar="A,B", help="verify only these tables")
    _config_option(v)
    return parser


def _config_option(parser: argparse.ArgumentParser, default: str = argparse.SUPPRESS) -> None:
    parser.add_argument("--config", default=default, metavar="PATH",
                        help="config file (default: config.json); .env next to it is loaded too")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(quiet=args.quiet, verbose=args.verbose)
    if args.command == "diff":
        return _diff_command(args)
    try:
        config = load_config(args.config)
        setup_logging(config.data_dir, quiet=args.quiet, verbose=args.verbose)
        tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
        for name in tables or []:
            config.table(name)
        if args.command == "replay":
            return _replay_command(config, args)
        if args.command == "verify":
            return _verify_command(config, tables)
        if args.publish and not re.fullmatch(r"\d{8}_\d{6}", args.publish):
            raise ConfigError(f"--publish takes the run id a dry run printed (like 20250601_060000), not "
                              f"{args.publish!r}")
        if args.publish and (args.dry_run or args.skip_download):
            raise ConfigError("--publish sends what a dry run sealed: it cannot be combined with --dry-run or "
                              "--skip-download")
        if not args.once and not args.dry_run and not args.publish:
            from .schedule import run_forever

            return run_forever(config, tables=tables, skip_download=args.skip_download, on_report=print_report)
        with _transfer_bars(enabled=not args.quiet) as on_transfer:
            accepted = [t.strip() for t in args.accept_held.split(",") if t.strip()] if args.accept_held else []
            for name in accepted:
                config.table(name)
            report = run_once(config, tables=tables, skip_download=args.skip_download, dry_run=args.dry_run,
                              publish_preview=args.publish, accept_held=accepted, on_transfer=on_transfer)
    except ConfigError as exc:
        print(f"Error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except CdcError as exc:
        print(f"Error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("Interrupted: the committed state is unchanged; pending captures go out on the next run",
              file=sys.stderr)
        return EXIT_FAILED
    print_report(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def _replay_command(config, args: argparse.Namespace) -> int:
    from pathlib import Path

    from .engines import make_engine
    from .lake import make_lake
    from .replay import replay

    config.table(args.table)
    engine = make_engine(config)
    try:
        result = replay(make_lake(config.lake), args.table, Path(args.output), as_of=as_of_run(args.as_of),
                        engine=engine)
    finally:
        engine.close()
    print(f"{result.table} as of run {result.run_id}: {result.rows:,} rows → {result.path}")
    return EXIT_OK


def as_of_run(text: str | None) -> str | None:
    """`--as-of` as a run id: a run id itself, or an ISO date or date-time (UTC unless it says otherwise) mapped
    to the last run at or before it (a bare date: the end of that day)."""
    from datetime import UTC, datetime, time

    if text is None:
        return text
    try:
        if re.fullmatch(r"\d{8}_\d{6}", text):
            datetime.strptime(text, "%Y%m%d_%H%M%S")  # a real moment (not 20261399_999999)
            return text
        moment = datetime.fromisoformat(text)
        if re.fullmatch(r"\d{4}-?\d\d-?\d\d", text.strip()):  # a date: every run of that day counts
            moment = datetime.combine(moment.date(), time(23, 59, 59))
    except ValueError:
        raise ConfigError(f"--as-of {text!r} is neither a run id (YYYYMMDD_HHMMSS, e.g. 20250922_143000) nor an "
                          "ISO date or time (e.g. 2025-09-22 or 2025-09-22T14:30:00Z)") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y%m%d_%H%M%S")


def _verify_command(config, tables: list[str] | None) -> int:
    from .replay import verify

    checks = verify(config, tables)
    width = max(len(c.table) for c in checks)
    for check in checks:
        if check.ok:
            print(f"ok      {check.table:<{width}}  run {check.run_id}  {check.rows:,} rows")
        for problem in check.problems:
            print(f"FAILED  {check.table:<{width}}  {problem}")
    bad = sum(not c.ok for c in checks)
    print(f"{len(checks) - bad} of {len(checks)} table(s) verified: the lake replays to the committed snapshots"
          if not bad else f"{bad} of {len(checks)} table(s) do not match — see above")
    return EXIT_OK if not bad else EXIT_FAILED


def _diff_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .diff import diff

    if args.detect == "date_field" and not args.date_field:
        print("Error: --detect date_field needs --date-field COL", file=sys.stderr)
        return EXIT_USAGE
    missing = [p for p in (args.previous, args.current) if not Path(p).is_file()]
    if missing:
        print(f"Error: {' and '.join(missing)} {'do' if len(missing) > 1 else 'does'} not exist — check the "
              f"path{'s' if len(missing) > 1 else ''}", file=sys.stderr)
        return EXIT_FAILED
    try:
        if args.engine == "spark":
            changes = _spark_diff(args)
        else:
            changes = diff(args.previous, args.current, args.key, date_field=args.date_field, detect=args.detect,
                           sep=args.sep, quote_char=args.quote, output=Path(args.output),
                           changed_columns=args.changed_columns)
    except CdcError as exc:
        message = re.sub(r'^Table "[^"]*": ', "", str(exc))
        for key, option in (("pk", "--key"), ("sep", "--sep"), ("date_field", "--date-field"),
                            ('quote"/"escape', "--quote")):
            message = message.replace(f'"{key}" in the config', option)
        print(f"Error: {message}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED  # a missing extra: exit 2, as elsewhere
    except OSError as exc:
        print(f"Error: cannot write {args.output} ({exc.strerror or exc}) — check the folder", file=sys.stderr)
        return EXIT_FAILED
    print(f"I {changes.counts['I']:,}  U {changes.counts['U']:,}  D {changes.counts['D']:,}  → {args.output}")
    if args.stat:
        width = max((len(c) for c in changes.column_counts), default=0)
        for column, rows in sorted(changes.column_counts.items(), key=lambda item: (-item[1], item[0])):
            print(f"  {column:<{width}}  {rows:>10,} updated row(s)")
    for warning in changes.warnings:
        print(f"warning: {warning}")
    return EXIT_OK


def _spark_diff(args: argparse.Namespace):
    """The diff command on the Spark engine (a local session unless a Spark session is already active)."""
    from pathlib import Path

    from .config import EngineConfig, TableConfig
    from .engines import engine_class

    table = TableConfig(name="", pk=tuple(args.key), date_field=args.date_field, sep=args.sep, quote=args.quote,
                        escape=args.quote, detect=args.detect)
    engine = engine_class("spark")(settings=EngineConfig(type="spark", master="local[*]"))
    try:
        return engine.diff_files(Path(args.previous), Path(args.current), table, output=Path(args.output),
                                 changed_columns=args.changed_columns)
    finally:
        engine.close()


@contextmanager
def _transfer_bars(enabled: bool) -> Iterator[Callable[[str, str, int, int], None] | None]:
    """Progress bars for uploads when stderr is a terminal and rich is installed (the s3 and tui extras bring it);
    nothing otherwise (log lines say what happens)."""
    if not (enabled and sys.stderr.isatty() and importlib.util.find_spec("rich")):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bars: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        def update(table: str, key: str, done: int, total: int) -> None:
            if key not in bars:
                bars[key] = progress.add_task(f"upload {key}", total=total)
            progress.update(bars[key], completed=done)

        yield update


def print_report(report: RunReport) -> None:
    """The per-table summary a user reads after a cycle."""
    version = f" version {report.source_version}" if report.source_version else ""
    dry = (f" (dry run: nothing uploaded or committed; publish exactly this with --publish {report.run_id})"
           if report.dry_run else "")
    print(f"run {report.run_id}{dry} · {report.source}{version} → {report.lake}")
    width = max(len(t.table) for t in report.tables)
    said: dict[str, str] = {}  # an error several tables share (the source failed as a whole) is printed once
    for t in report.tables:
        counts = "  ".join(f"{op} {t.counts[op]:>6,}" for op in "IUD")
        rows = f"{t.rows:>10,} rows" if t.rows is not None else ""
        if t.status == "failed":
            line = f"FAILED: {t.error}" if t.error not in said else f"FAILED: the same error as {said[t.error]}"
            said.setdefault(t.error or "", t.table)
        elif t.status == "held":
            line = f"HELD: {t.error}"
        elif t.status == "full_load":
            line = f"full load {rows}"
        elif t.status == "changes":
            line = f"changes   {counts}  {rows}"
        elif t.status == "unchanged":
            line = f"no changes{' ' * (len(counts) + 2)}{rows}"
        else:
            line = "skipped: the source has no new version"
        if t.published_pending:
            line += f"  (also published pending runs {', '.join(t.published_pending)})"
        if t.rebased:
            line += f"  (rebased on the lake's run {t.rebased})"
        if t.held_waiting:
            line += f"  (a held capture, run {t.held_waiting}, is waiting: --accept-held {t.table})"
        print(f"  {t.table:<{width}}  {line}")
        for warning in t.warnings:
            print(f"  {'':<{width}}  warning: {warning}")
        for upload in t.uploads if report.dry_run else []:
            rows = f"{upload.rows:>10,} rows" if upload.rows is not None else " " * 15
            size = f"{upload.bytes:>12,} bytes" if upload.bytes else ""
            print(f"  {'':<{width}}  would upload {upload.key:<60} {rows} {size}".rstrip())
    failed = sum(t.status == "failed" for t in report.tables)
    if failed:
        others = "; the others were captured" if failed < len(report.tables) else ""
        print(f"{failed} of {len(report.tables)} table(s) failed{others}. Fix the error(s) above and run again: "
              "nothing was lost.")
    held = [t.table for t in report.tables if t.status == "held"]
    if held and not report.dry_run:
        print(f"{len(held)} table(s) held by a guard: nothing of them was published. Look at the numbers above, "
              f"then publish with --accept-held {','.join(held)}, or fix the source.")
