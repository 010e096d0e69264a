"""Notifications through Apprise: one message per cycle and event, sent to every target subscribed to that event.

Events: `failure` (a table failed), `held` (a guard held a table's capture back), `recovered` (a table that failed
or was held in its previous cycle captured fine now), `changes` (a table's changes reached the lake). A message
names the run, the source and the lake (the report's own strings), the tables with their I/U/D counts or their
one-line error, and what to do. A message that cannot be sent is logged as a warning and never fails the cycle.
Secrets never leave in a message or a log line: URLs are shown only in Apprise's privacy form, without a query.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from .config import Config, NotifyTarget
from .logs import redact
from .notify_urls import ENV_REFERENCE, apprise_module, apprise_warnings, expand
from .outcome import CAPTURED, PROBLEMS

if TYPE_CHECKING:
    from .report import RunReport, TableReport

log = logging.getLogger("cdc_core")
TITLE_TABLES = 3  # tables named in a title before "…"


@dataclass(frozen=True)
class Message:
    """One notification: an event, a title and a plain-text body."""

    event: str
    title: str
    body: str


def notify(config: Config, report: RunReport, previous: dict[str, dict[str, Any]]) -> list[Message]:
    """Send this cycle's messages to the subscribed targets; returns the messages (sent or not); never raises."""
    if not config.notify or report.dry_run:
        return []
    messages = compose(config, report, previous)
    for message in messages:
        for i, target in enumerate(config.notify):
            if message.event in target.on:
                send(target, message, f"notify[{i}]")
    return messages


def compose(config: Config, report: RunReport, previous: dict[str, dict[str, Any]]) -> list[Message]:
    """The messages a cycle gives, one per event that concerns at least one table."""
    failed = [t for t in report.tables if t.status == "failed"]
    held = [t for t in report.tables if t.status == "held"]
    recovered = [t for t in report.tables
                 if t.status in CAPTURED and previous.get(t.table, {}).get("status") in PROBLEMS]
    changed = [t for t in report.tables if t.status in ("changes", "full_load")]
    secrets = [secret for target in config.notify for secret in _referenced(target)]
    messages = []
    for event, tables in (("failure", failed), ("held", held), ("recovered", recovered), ("changes", changed)):
        if tables:
            title, lines = _WRITERS[event](config, report, tables, previous)
            body = "\n".join([*_header(report), "", *lines])
            messages.append(Message(event, redact(title, secrets), redact(body, secrets)))
    return messages


def _header(report: RunReport) -> list[str]:
    version = f" version {report.source_version}" if report.source_version else ""
    finished = report.finished_at or report.started_at
    return [f"cdc_core run {report.run_id}, finished {finished:%Y-%m-%d %H:%M:%S} UTC on {socket.gethostname()}",
            f"source: {report.source}{version}", f"lake:   {report.lake}"]


def _title(what: str, report: RunReport, tables: list[TableReport]) -> str:
    names = [t.table for t in tables]
    shown = ", ".join(names[:TITLE_TABLES]) + (f" and {len(names) - TITLE_TABLES} more" if len(names) > TITLE_TABLES else "")
    return f"cdc_core: {what}: {shown} (run {report.run_id})"


def _command(config: Config, *options: str) -> str:
    where = f" --config {config.path.resolve()}" if config.path else ""
    return f"python -m cdc_core {' '.join(options)}{where}"


def _one_line(text: str | None) -> str:
    return " ".join((text or "no reason recorded").split())


def _failure(config, report, tables, previous) -> tuple[str, list[str]]:
    lines = [f"{len(tables)} of {len(report.tables)} table(s) failed:"]
    lines += [f"  {t.table}: {_one_line(t.error)}" for t in tables]
    lines += ["", "What to do: fix the error above, then run again (the next cycle also retries):",
              f"  {_command(config, '--once')}",
              ("Nothing was lost: a failed table keeps its last committed capture, and the first good run "
               "captures every change in between.")]
    return _title(f"{len(tables)} table(s) failed", report, tables), lines


def _held(config, report, tables, previous) -> tuple[str, list[str]]:
    lines = [(f"{len(tables)} table(s) held back by a guard: nothing was published for them, and their "
              "committed state is kept:")]
    lines += [f"  {t.table}: {_one_line(t.error)}" for t in tables]
    lines += ["", "What to do: check the numbers above against the source. If the capture is right, publish it:"]
    lines += [f"  {_command(config, '--once', '--accept-held', t.table)}" for t in tables]
    lines += [("or preview it in the terminal app (cdc-tui) and accept it on its confirm screen. If the source "
               "is wrong, fix it: the next cycle checks again.")]
    return _title(f"{len(tables)} table(s) held for confirmation", report, tables), lines


def _recovered(config, report, tables, previous) -> tuple[str, list[str]]:
    lines = [f"{len(tables)} table(s) captured fine again after a failed or held cycle:"]
    for t in tables:
        before = previous.get(t.table, {})
        lines.append(f"  {t.table}: {_outcome(t)} (run {before.get('run_id', '?')} {before.get('status')}: "
                     f"{_one_line(before.get('error'))})")
    lines += ["", "Nothing to do."]
    return _title("recovered", report, tables), lines


def _changes(config, report, tables, previous) -> tuple[str, list[str]]:
    lines = ["Changes captured into the lake:"]
    width = max(len(t.table) for t in tables)
    lines += [f"  {t.table:<{width}}  {_outcome(t)}" for t in tables]
    return _title("changes captured", report, tables), lines


def _outcome(t: TableReport) -> str:
    rows = f", {t.rows:,} rows" if t.rows is not None else ""
    if t.status == "changes":
        return "  ".join(f"{op} {t.counts.get(op, 0):,}" for op in "IUD") + rows
    if t.status == "full_load":
        return f"full load{rows}"
    if t.status == "unchanged":
        return f"no changes{rows}"
    return "the source has no new version"


_WRITERS = {"failure": _failure, "held": _held, "recovered": _recovered, "changes": _changes}


def send(target: NotifyTarget, message: Message, where: str) -> bool:
    """Send one message to one target; a failure is logged (redacted) and returns False, never raises."""
    name, secrets = where, _referenced(target)
    try:
        apprise = apprise_module()
        url = expand(target.url)
        secrets.append(url)
        with apprise_warnings() as warnings:
            plugin = apprise.Apprise.instantiate(url)
            if plugin is not None:
                public = unquote(plugin.url(privacy=True))
                name = f"{where} ({public.split('?')[0]})"
                secrets += _private_parts(url, public)
                sender = apprise.Apprise()
                sender.add(plugin)
                sent = sender.notify(body=message.body, title=message.title, body_format=apprise.NotifyFormat.TEXT)
        if plugin is None:
            reason = "Apprise does not understand its URL"
        elif sent:
            log.info("notification %s sent to %s", message.event, name)
            return True
        else:
            reason = "; ".join(warnings) or "Apprise reported a failure"
    except Exception as exc:  # noqa: BLE001 — nothing here may fail the cycle
        reason = f"{type(exc).__name__}: {exc}"
    log.warning("%s", redact(f"Notification {message.event!r} to {name} could not be sent ({reason}) — the "
                             "capture itself is not affected; check the target in the config", secrets))
    return False


def _referenced(target: NotifyTarget) -> list[str]:
    """The values of the variables a target's URL refers to, as they are and percent-encoded."""
    values = [os.environ.get(name, "") for name in ENV_REFERENCE.findall(target.url)]
    return values + [quote(value, safe="") for value in values]


def _private_parts(url: str, public: str) -> list[str]:
    """The pieces of a URL that Apprise's privacy form hides (passwords, tokens, keys)."""
    pieces = set(unquote(url).replace("\\", "/").split("/"))
    for sep in ":@?&=#,":
        pieces = {part for piece in pieces for part in piece.split(sep)}
    return sorted((p for p in pieces if len(p) >= 4 and p not in public), key=len, reverse=True)
