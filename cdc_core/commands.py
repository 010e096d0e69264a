"""The CLI's subcommands besides a capture: `diff`, `replay` and `verify`, each a few lines around one core call.

Every output path is checked the same way (`output_file`): missing folders are made, a folder or an unwritable
place is one line naming the option. Exit codes as in `cli`: 0 ok, 1 failed, 2 usage.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import duckdb

from .errors import CdcError, ConfigError
from .layout import RUN_ID, RUN_ID_FORMAT

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def output_file(text: str, option: str = "--output") -> Path:
    """The file an option names, its missing folders made; ConfigError (one line) when it cannot be a file."""
    path = Path(text)
    if path.is_dir():
        raise ConfigError(f"{option} {text} is a folder — give a file path, like {path / 'out.parquet'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {text}: cannot make the folder {path.parent} ({exc.strerror or exc}) — choose "
                          "a writable place") from None
    return path


def cannot_write(path: Path, exc: BaseException, option: str = "--output") -> str:
    """One line for a write that failed (an OSError or DuckDB's IOException)."""
    text = getattr(exc, "strerror", None) or re.sub(r'^IO Error: Cannot open file "[^"]*": ', "", str(exc))
    return f"Error: cannot write {option} {path} ({text.splitlines()[0]}) — check the folder and its permissions"


def replay_command(config, args: argparse.Namespace) -> int:
    from .engines import make_engine
    from .lake import make_lake
    from .replay import replay

    config.table(args.table)
    output = output_file(args.output)
    engine = make_engine(config)
    try:
        result = replay(make_lake(config.lake), args.table, output, as_of=as_of_run(args.as_of), engine=engine)
    except (OSError, duckdb.IOException) as exc:
        print(cannot_write(output, exc), file=sys.stderr)
        return EXIT_FAILED
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
        if re.fullmatch(RUN_ID, text):
            datetime.strptime(text, RUN_ID_FORMAT)  # a real moment (not 20261399_999999)
            return text
        moment = datetime.fromisoformat(text)
        if re.fullmatch(r"\d{4}-?\d\d-?\d\d", text.strip()):  # a date: every run of that day counts
            moment = datetime.combine(moment.date(), time(23, 59, 59))
    except ValueError:
        raise ConfigError(f"--as-of {text!r} is neither a run id (YYYYMMDD_HHMMSS, e.g. 20250922_143000) nor an "
                          "ISO date or time (e.g. 2025-09-22 or 2025-09-22T14:30:00Z)") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime(RUN_ID_FORMAT)


def verify_command(config, tables: list[str] | None) -> int:
    from .replay import verify

    checks = verify(config, tables)
    if not any(c.captured for c in checks):
        print(f"Nothing to verify: no table was captured yet into {config.lake.url} (nor into {config.data_dir}) — "
              "run a capture first (python -m cdc_core --once)")
        return EXIT_FAILED
    width = max(len(c.table) for c in checks)
    for check in checks:
        if check.ok:
            print(f"ok      {check.table:<{width}}  run {check.run_id}  {check.rows:,} rows")
        for problem in check.problems:
            print(f"{'FAILED' if check.captured else 'not yet'}  {check.table:<{width}}  {problem}")
    bad, missing = sum(c.captured and not c.ok for c in checks), [c.table for c in checks if not c.captured]
    later = f"; not captured yet: {', '.join(missing)}" if missing else ""
    print(f"{len(checks) - bad - len(missing)} of {len(checks)} table(s) verified: the lake replays to the "
          f"committed snapshots{later}" if not bad else f"{bad} of {len(checks)} table(s) do not match — see above"
          f"{later}")
    return EXIT_OK if not bad and not missing else EXIT_FAILED


def diff_command(args: argparse.Namespace) -> int:
    try:
        _check_dialect(args)
        if args.detect == "date_field" and not args.date_field:
            raise ConfigError("--detect date_field needs --date-field COL")
        output = output_file(args.output)
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    missing = [p for p in (args.previous, args.current) if not Path(p).is_file()]
    if missing:
        print(f"Error: {' and '.join(missing)} {'do' if len(missing) > 1 else 'does'} not exist — check the "
              f"path{'s' if len(missing) > 1 else ''}", file=sys.stderr)
        return EXIT_FAILED
    try:
        changes = _diff_files(args, output)
    except CdcError as exc:
        message = re.sub(r'^Table "[^"]*": ', "", str(exc))
        for key, option in (("pk", "--key"), ("sep", "--sep"), ("date_field", "--date-field"),
                            ('quote"/"escape', "--quote/--escape")):
            message = message.replace(f'"{key}" in the config', option)
        print(f"Error: {message}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED  # a missing extra: exit 2, as elsewhere
    except (OSError, duckdb.IOException) as exc:
        print(cannot_write(output, exc), file=sys.stderr)
        return EXIT_FAILED
    print(f"I {changes.counts['I']:,}  U {changes.counts['U']:,}  D {changes.counts['D']:,}  → {output}")
    if args.stat:
        width = max((len(c) for c in changes.column_counts), default=0)
        for column, rows in sorted(changes.column_counts.items(), key=lambda item: (-item[1], item[0])):
            print(f"  {column:<{width}}  {rows:>10,} updated row(s)")
    for warning in changes.warnings:
        print(f"warning: {warning}")
    return EXIT_OK


def _check_dialect(args: argparse.Namespace) -> None:
    """--sep is one character; --quote and --escape one character or none (--escape defaults to --quote)."""
    if len(args.sep) != 1:
        raise ConfigError(f"--sep {args.sep!r} must be one character, e.g. ';' or ','")
    args.escape = args.quote if args.escape is None else args.escape
    for option, value in (("--quote", args.quote), ("--escape", args.escape)):
        if len(value) > 1:
            raise ConfigError(f"{option} {value!r} must be one character, or '' for none")


def _diff_files(args: argparse.Namespace, output: Path):
    """The diff command on the engine `--engine` names, with its settings for this machine alone (Spark: a local
    session unless one is already active)."""
    from .config import TableConfig
    from .engines import engine_class

    table = TableConfig(name="", pk=tuple(args.key), date_field=args.date_field, sep=args.sep, quote=args.quote,
                        escape=args.escape, detect=args.detect)
    engine = engine_class(args.engine)()
    try:
        return engine.diff_files(Path(args.previous), Path(args.current), table, output=output,
                                 changed_columns=args.changed_columns)
    finally:
        engine.close()
