"""`python -m cdc_core`: parse, call the core, print a summary, exit 0 (ok), 1 (a table failed) or 2 (usage/config)."""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import extras, interrupt
from .commands import EXIT_FAILED, EXIT_OK, EXIT_USAGE, diff_command, replay_command, verify_command
from .config import load_config
from .engines import KNOWN_ENGINES
from .errors import CdcError, ConfigError
from .layout import RUN_ID, parse_key
from .logs import redact, setup_logging
from .report import RunReport


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
    d.add_argument("--escape", metavar="CHAR",
                   help="CSV escape character inside quotes (default: the quote character, RFC 4180; e.g. '\\')")
    d.add_argument("--date-field", metavar="COL", help="date column, parsed as a UTC timestamp")
    d.add_argument("--detect", choices=("content", "date_field"), default="content",
                   help="what makes an update: any content change (default) or a later date field")
    d.add_argument("--output", required=True, metavar="OUT.parquet", help="where to write the change rows")
    d.add_argument("--stat", action="store_true",
                   help="also print each changed column with its number of updated rows")
    d.add_argument("--engine", choices=tuple(KNOWN_ENGINES), default="duckdb",
                   help="the engine that types and diffs: DuckDB in this process (default), or Spark (local[*]; needs "
                        "cdc-core[spark])")
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
    i = commands.add_parser("init", help="write a commented starter config.json (the demo into ./lake)",
                            description="Write a starter config for the built-in demo dataset into a local lake, "
                                        "with notes on switching to Kaggle and S3.")
    i.add_argument("--force", action="store_true", help="replace an existing config file")
    _config_option(i)
    return parser


def _config_option(parser: argparse.ArgumentParser, default: str = argparse.SUPPRESS) -> None:
    parser.add_argument("--config", default=default, metavar="PATH",
                        help="config file (default: config.json); .env next to it is loaded too")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(quiet=args.quiet, verbose=args.verbose, summary=True)
    if args.command == "diff":
        return diff_command(args)
    config = before = None
    try:
        if args.command == "init":
            return _init_command(args)
        config = load_config(args.config)
        setup_logging(config.data_dir, quiet=args.quiet, verbose=args.verbose, summary=True)
        tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
        for name in tables or []:
            config.table(name)
        if args.command == "replay":
            return replay_command(config, args)
        if args.command == "verify":
            return verify_command(config, tables)
        if args.publish and not re.fullmatch(RUN_ID, args.publish):
            raise ConfigError(f"--publish takes the run id a dry run printed (like 20250601_060000), not "
                              f"{args.publish!r}")
        if args.publish and (args.dry_run or args.skip_download):
            raise ConfigError("--publish sends what a dry run sealed: it cannot be combined with --dry-run or "
                              "--skip-download")
        before = interrupt.committed_runs(config)
        if args.publish and interrupt.already_published(config, tables, args.publish, before):
            print(f"Run {args.publish} is already published — nothing to do")
            return EXIT_OK
        if not args.once and not args.dry_run and not args.publish:
            from .schedule import run_forever

            return run_forever(config, tables=tables, skip_download=args.skip_download, on_report=print_report)
        with _transfer_bars(enabled=not args.quiet) as on_transfer:
            accepted = [t.strip() for t in args.accept_held.split(",") if t.strip()] if args.accept_held else []
            for name in accepted:
                config.table(name)
            from .monitored import run_once  # the pipeline, imported only for a capture

            report = run_once(config, tables=tables, skip_download=args.skip_download, dry_run=args.dry_run,
                              publish_preview=args.publish, accept_held=accepted, on_transfer=on_transfer)
    except ConfigError as exc:
        print(f"Error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except CdcError as exc:
        print(f"Error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(interrupt.interrupted(config, before), file=sys.stderr)
        return EXIT_FAILED
    print_report(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def _init_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .starter import write_starter

    path = write_starter(Path(args.config), force=args.force)
    print(f"Wrote {path}: the built-in demo into ./lake (notes inside on Kaggle and S3). Next: "
          f"cdc-core --once{'' if path.name == 'config.json' and path.parent == Path() else f' --config {path}'}")
    return EXIT_OK


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
            if warning not in (t.error or ""):  # a warning the error repeats (the lake could not be read) is said once
                print(f"  {'':<{width}}  warning: {warning}")
        for upload in t.uploads if report.dry_run else []:
            rows = f"{upload.rows:>10,} rows" if upload.rows is not None else " " * 15
            size = f"{upload.bytes:>12,} bytes" if upload.bytes else ""
            run = parse_key(upload.key).run_id
            earlier = f"  (pending run {run}, captured earlier)" if run and run != report.run_id else ""
            print(f"  {'':<{width}}  would upload {upload.key:<60} {rows} {size}{earlier}".rstrip())
    failed = sum(t.status == "failed" for t in report.tables)
    if failed:
        others = "; the others were captured" if failed < len(report.tables) else ""
        print(f"{failed} of {len(report.tables)} table(s) failed{others}. Fix the error(s) above and run again: "
              "nothing was lost.")
    held = [t.table for t in report.tables if t.status == "held"]
    if held and not report.dry_run:
        print(f"{len(held)} table(s) held by a guard: nothing of them was published. Look at the numbers above, "
              f"then publish with --accept-held {','.join(held)}, or fix the source.")
