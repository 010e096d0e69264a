"""Prometheus metrics: `data_dir/metrics/cdc_core.prom` after every cycle, and `/metrics` while the timed loop runs.

The values come from what `data_dir` holds (the recorded outcome of the last cycles, the committed state, the
outbox), so the file and the endpoint agree and survive restarts. The file follows node_exporter's textfile
collector convention (written to a temporary file, then renamed). Every write builds a fresh registry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .config import Config
from .errors import CdcError, ConfigError
from .extras import version
from .outcome import OPS, load_outcome, parse_time
from .state import State

log = logging.getLogger("cdc_core")


_said_no_metrics: list[bool] = []  # the missing library is said once per process, not once per cycle


def textfile_path(config: Config) -> Path:
    return config.data_dir / "metrics" / "cdc_core.prom"


def write_textfile(config: Config, say_why_not: bool = True) -> Path | None:
    """Write the metrics file atomically; None (and nothing written, said once) when prometheus_client is not
    installed."""
    try:
        from prometheus_client import CollectorRegistry, write_to_textfile
    except ImportError:
        if say_why_not and not _said_no_metrics:
            _said_no_metrics.append(True)
            log.info("no metrics file: prometheus_client is not installed — pip install 'cdc_core[metrics]' to get "
                     '%s after every cycle, or set "metrics": {"textfile": false} to say you want none',
                     textfile_path(config))
        return None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families(config)))
    path = textfile_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    return path


def families(config: Config) -> list[Any]:
    """Every metric family, read from `config.data_dir`."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    def gauge(name: str, help: str, labels: tuple[str, ...] = ("table",)) -> Any:
        return GaugeMetricFamily(name, help, labels=list(labels))

    try:
        outcome = load_outcome(config.data_dir)
    except CdcError as exc:
        log.warning("metrics: %s", exc)
        outcome = {"cycle": {}, "tables": {}}
    state, cycle = State(config.data_dir), outcome["cycle"]
    info = gauge("cdc_info", "cdc_core's version, and the source and lake of the last cycle",
                 ("version", "source", "lake"))
    info.add_metric([version(), cycle.get("source", ""), cycle.get("lake", "")], 1)
    found = [info]
    finished = parse_time(cycle.get("finished_at"))
    if finished is not None:
        stamp = gauge("cdc_cycle_timestamp_seconds", "When the last cycle finished (Unix time)", ())
        stamp.add_metric([], finished)
        duration = gauge("cdc_cycle_duration_seconds", "How long the last cycle took", ())
        seconds = cycle.get("seconds")  # measured; the times are whole seconds
        duration.add_metric([], seconds if isinstance(seconds, int | float) else
                            finished - parse_time(cycle["started_at"]))
        found += [stamp, duration]
    per_table = {
        "rows": gauge("cdc_table_rows", "Rows of the committed snapshot (the lake's full load)"),
        "success": gauge("cdc_last_success_timestamp_seconds",
                         "When the table was last captured fine, changes or not (Unix time)"),
        "commit": gauge("cdc_last_commit_timestamp_seconds", "When the table's last capture was committed"),
        "run": gauge("cdc_last_run_timestamp_seconds", "When the table's last cycle finished, fine or not"),
        "changes": gauge("cdc_last_run_changes", "Changes the table's last cycle found, per op (I, U, D)",
                         ("table", "op")),
        "total": CounterMetricFamily("cdc_changes", "Changes published into the lake since data_dir began, per op",
                                     labels=["table", "op"]),
        "pending": gauge("cdc_outbox_pending", "Captured runs waiting in the outbox to be published"),
        "failed": gauge("cdc_table_failed", "1 when the table failed in its last cycle"),
        "held": gauge("cdc_table_held", "1 while a capture a guard held waits for a person to accept it"),
        "warnings": gauge("cdc_last_run_warnings", "Warnings of the table's last cycle"),
    }
    for name in config.table_names:
        _table(name, outcome["tables"].get(name, {}), state, per_table)
    return found + list(per_table.values())


def _table(name: str, record: dict, state: State, metrics: dict[str, Any]) -> None:
    try:
        committed = state.committed(name)
        pending = len(state.outbox.pending(name))
        waiting = state.outbox.held(name) is not None
    except CdcError as exc:
        log.warning("metrics: %s", exc)
        committed, pending, waiting = None, 0, False
    if committed is not None:
        metrics["rows"].add_metric([name], committed.rows)
        metrics["commit"].add_metric([name], parse_time(committed.committed_at))
    success = parse_time(record.get("last_success_at")) or (parse_time(committed.committed_at) if committed
                                                            else None)
    if success is not None:
        metrics["success"].add_metric([name], success)
    if record:
        metrics["run"].add_metric([name], parse_time(record["finished_at"]))
        metrics["warnings"].add_metric([name], record.get("warnings", 0))
    for op in OPS:
        metrics["changes"].add_metric([name, op], record.get("counts", {}).get(op, 0))
        metrics["total"].add_metric([name, op], record.get("changes_total", {}).get(op, 0))
    metrics["pending"].add_metric([name], pending)
    metrics["failed"].add_metric([name], int(record.get("status") == "failed"))
    metrics["held"].add_metric([name], int(record.get("status") == "held" or waiting))


class _Snapshot:
    """A collector that returns metric families taken earlier."""

    def __init__(self, found: list[Any]):
        self.found = found

    def collect(self) -> Iterator[Any]:
        return iter(self.found)


class MetricsServer:
    """`/metrics` on `metrics.host:metrics.port` for the timed loop (nothing without a port); `update()` after a cycle."""

    def __init__(self, config: Config):
        self.config, self._server, self._thread = config, None, None
        self._snapshot = _Snapshot([])
        if config.metrics.port is None:
            return
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry(auto_describe=False)
        registry.register(self._snapshot)
        self.update()
        host, port = config.metrics.host, config.metrics.port
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise ConfigError(f"Cannot serve metrics on {host}:{port} ({exc.strerror or exc}) — is another process "
                              'using the port? Choose another "metrics.port" in the config') from None
        log.info("metrics: serving http://%s:%d/metrics", host, port)

    def update(self) -> None:
        """Serve the values `data_dir` holds now; a problem is logged, the previous values stay."""
        if self.config.metrics.port is None:
            return
        try:
            self._snapshot.found = families(self.config)
        except Exception as exc:  # noqa: BLE001 — never stop the loop over metrics
            log.warning("metrics: could not read %s (%s: %s)", self.config.data_dir, type(exc).__name__, exc)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None
