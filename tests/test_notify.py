"""Notifications through Apprise to a real SMTP server (aiosmtpd) and to Amazon SNS on moto's server, via real runs."""

from __future__ import annotations

import email
import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from hypothesis import given, settings
from hypothesis import strategies as st

from cdc_core.config import load_config, parse_config
from cdc_core.errors import ConfigError
from cdc_core.monitor import after_cycle
from cdc_core.notify import compose
from cdc_core.outcome import CAPTURED, PROBLEMS, record_outcome
from cdc_core.report import RunReport, TableReport

from .conftest import run_cli, write_config

DATA = Path(__file__).parent / "data"
TABLES = [{"name": "clientes", "pk": "idCliente", "date_field": "DtAtualizacao", "sep": ";"},
          {"name": "produtos", "pk": "IdProduto", "sep": ";"}]
PASSWORD = "p@ss/w:rd!Sup3rSecret"  # characters that mean something in a URL: the reference is percent-encoded
ALL_EVENTS = ["failure", "held", "recovered", "changes"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mailbox:
    """A real SMTP server on 127.0.0.1 that keeps every message and every login."""

    port: int
    received: list[Message] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    def take(self) -> list[Message]:
        taken, self.received[:] = list(self.received), []
        return taken


def text(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")


@pytest.fixture
def smtp():
    mailbox = Mailbox(free_port())

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            mailbox.received.append(email.message_from_bytes(envelope.original_content))
            return "250 Message accepted"

    def authenticate(server, session, envelope, mechanism, auth_data):
        mailbox.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)

    controller = Controller(Handler(), hostname="127.0.0.1", port=mailbox.port, authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    yield mailbox
    controller.stop()


def mailto(port: int, to: str) -> str:
    return f"mailto://ops:${{SMTP_PASSWORD}}@127.0.0.1:{port}?from=cdc@example.com&to={to}&mode=insecure"


def source_folder(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(DATA / "clientes_20250918.csv", source / "clientes.csv")
    shutil.copy(DATA / "produtos_41.csv", source / "produtos.csv")
    return source


def by_recipient(messages: list[Message]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for m in messages:
        found.setdefault(m["To"], []).append(m["Subject"])
    return {to: sorted(subjects) for to, subjects in found.items()}


def test_a_failure_then_the_fix_mail_failure_then_recovered_and_changes(tmp_path: Path, smtp: Mailbox):
    source = source_folder(tmp_path)
    (tmp_path / ".env").write_text(f"SMTP_PASSWORD='{PASSWORD}'\n")
    config = write_config(tmp_path, source={"type": "directory", "path": "source"}, tables=TABLES, notify=[
        {"url": mailto(smtp.port, "team@example.com"), "on": ALL_EVENTS},
        {"url": mailto(smtp.port, "oncall@example.com")}])  # default: failure, held, recovered

    first = run_cli("--once", "--config", str(config))
    assert first.code == 0, first.err
    [changes] = smtp.take()
    assert changes["To"] == "team@example.com" and changes["From"] == "cdc@example.com"
    run_1 = re.match(r"run (\d{8}_\d{6})", first.out).group(1)
    assert changes["Subject"] == f"cdc_core: changes captured: clientes, produtos (run {run_1})"
    body = text(changes)
    assert f"cdc_core run {run_1}" in body
    assert f"source: directory {source}" in body and f"lake:   {tmp_path / 'lake'}" in body
    assert re.search(r"clientes\s+full load, 3,837 rows", body) and re.search(r"produtos\s+full load, 41 rows", body)

    clientes = source / "clientes.csv"
    with open(clientes, "a") as f:
        f.write(clientes.read_text().splitlines()[1] + "\n")  # a duplicate key
    broken = run_cli("--once", "--config", str(config))
    assert broken.code == 1
    run_2 = re.match(r"run (\d{8}_\d{6})", broken.out).group(1)
    error = re.search(r"clientes\s+FAILED: (.*)", broken.out).group(1)
    failures = smtp.take()
    assert by_recipient(failures) == {to: [f"cdc_core: 1 table(s) failed: clientes (run {run_2})"]
                                      for to in ("team@example.com", "oncall@example.com")}
    body = text(failures[0])
    assert f"  clientes: {error}" in body and "1 key value(s) appear more than once" in error
    assert "1 of 2 table(s) failed:" in body
    assert f"python -m cdc_core --once --config {config.resolve()}" in body and "Nothing was lost" in body

    shutil.copy(DATA / "clientes_20250922.csv", clientes)
    fixed = run_cli("--once", "--config", str(config))
    assert fixed.code == 0, fixed.out
    run_3 = re.match(r"run (\d{8}_\d{6})", fixed.out).group(1)
    received = smtp.take()
    assert by_recipient(received) == {
        "team@example.com": [f"cdc_core: changes captured: clientes (run {run_3})",
                             f"cdc_core: recovered: clientes (run {run_3})"],
        "oncall@example.com": [f"cdc_core: recovered: clientes (run {run_3})"]}
    recovered = next(text(m) for m in received if m["To"] == "oncall@example.com")
    assert f"(run {run_2} failed: {error})" in recovered and "Nothing to do." in recovered
    in_lake = pq.read_table(tmp_path / "lake" / "cdc" / "clientes" / f"clientes_{run_3}.parquet").to_pandas()
    ops = in_lake.op.value_counts()
    counts = "  ".join(f"{op} {ops.get(op, 0):,}" for op in "IUD")
    changed = next(text(m) for m in received if "changes" in m["Subject"])
    assert f"clientes  {counts}, 3,864 rows" in changed and "produtos" not in changed

    assert smtp.logins == [("ops", PASSWORD)] * 6  # the .env secret was expanded when sending, every time
    everything = [first.out, first.err, broken.out, broken.err, fixed.out, fixed.err,
                  (tmp_path / "data" / "logs" / "cdc.log").read_text()]
    assert not any(PASSWORD in t or "p%40ss" in t for t in everything)


def test_a_cycle_that_fails_as_a_whole_mails_and_shows_in_the_metrics_but_a_busy_data_dir_does_not(
        tmp_path: Path, smtp: Mailbox):
    source_folder(tmp_path)
    (tmp_path / ".env").write_text(f"SMTP_PASSWORD='{PASSWORD}'\n")
    config = write_config(tmp_path, source={"type": "directory", "path": "source"}, tables=TABLES,
                          notify=[{"url": mailto(smtp.port, "oncall@example.com")}])
    failed = run_cli("--once", "--skip-download", "--config", str(config))  # nothing was ever fetched
    assert failed.code == 1 and "Nothing was fetched" in failed.err
    [mail] = smtp.take()
    assert mail["Subject"].startswith("cdc_core: 2 table(s) failed: clientes, produtos (run ")
    assert "Nothing was fetched" in text(mail)
    prom = (tmp_path / "data" / "metrics" / "cdc_core.prom").read_text()
    assert 'cdc_table_failed{table="clientes"} 1.0' in prom and 'cdc_table_failed{table="produtos"} 1.0' in prom
    assert run_cli("--once", "--config", str(config)).code == 0
    assert next(m["Subject"] for m in smtp.take()).startswith("cdc_core: recovered: clientes, produtos")
    with open(tmp_path / "data" / "cdc.lock", "a+") as lock:  # another capture holds the data dir
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        busy = run_cli("--once", "--config", str(config))
    assert busy.code == 1 and "Another capture is running" in busy.err
    assert smtp.take() == []  # the capture that runs reports for itself


def held_report(run_id: str, status: str, error: str | None = None) -> RunReport:
    started = datetime.strptime(run_id, "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    tables = [TableReport("clientes", status=status, error=error, rows=3864,
                          counts={"I": 27, "U": 138, "D": 1934} if status == "held" else {"I": 0, "U": 0, "D": 0}),
              TableReport("produtos", status="unchanged", rows=41)]
    return RunReport(run_id=run_id, source="directory /srv/loyalty", lake="s3://my-data-lake/loyalty",
                     source_version="7", started_at=started, finished_at=started, tables=tables)


def test_a_held_capture_mails_the_guard_and_how_to_accept_it_then_recovered(tmp_path: Path, smtp: Mailbox,
                                                                            monkeypatch):
    # The guards live in the core; here a held report goes through the same after_cycle every run_once calls.
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    config = load_config(write_config(tmp_path, tables=TABLES, notify=[{"url": mailto(smtp.port, "a@example.com")}]))
    reason = 'Table "clientes": 1,934 of 3,864 rows deleted (50%) — above max_delete_ratio 0.2'
    report = held_report("20261126_060000", "held", reason)
    assert not report.ok
    after_cycle(config, report)
    [held] = smtp.take()
    assert held["Subject"] == "cdc_core: 1 table(s) held for confirmation: clientes (run 20261126_060000)"
    body = text(held)
    assert f"  clientes: {reason}" in body
    assert "source: directory /srv/loyalty version 7" in body and "lake:   s3://my-data-lake/loyalty" in body
    assert f"python -m cdc_core --once --accept-held clientes --config {tmp_path / 'config.json'}" in body
    assert "cdc-tui" in body and "produtos" not in body

    after_cycle(config, held_report("20261126_120000", "held", reason))  # still held: held again, no recovery
    assert [m["Subject"].split(":")[1] for m in smtp.take()] == [" 1 table(s) held for confirmation"]
    after_cycle(config, held_report("20261126_180000", "changes"))
    [recovered] = smtp.take()
    assert recovered["Subject"] == "cdc_core: recovered: clientes (run 20261126_180000)"
    assert f"(run 20261126_120000 held: {reason})" in text(recovered)


def test_an_unreachable_target_is_logged_without_secrets_and_the_others_still_get_the_message(
        tmp_path: Path, smtp: Mailbox):
    (tmp_path / ".env").write_text(f"SMTP_PASSWORD='{PASSWORD}'\n")
    closed = free_port()
    config = write_config(tmp_path, notify=[{"url": mailto(closed, "lost@example.com"), "on": ["changes"]},
                                            {"url": mailto(smtp.port, "team@example.com"), "on": ["changes"]}])
    result = run_cli("--once", "--config", str(config))
    assert result.code == 0, result.err
    assert [m["To"] for m in smtp.take()] == ["team@example.com"]
    warning = next(line for line in result.err.splitlines() if "could not be sent" in line)
    assert warning.startswith(f"Notification 'changes' to notify[0] (mailto://ops:****@127.0.0.1:{closed}/")
    assert "the capture itself is not affected" in warning
    log = (tmp_path / "data" / "logs" / "cdc.log").read_text()
    assert "could not be sent" in log
    assert not any(PASSWORD in t or "p%40ss" in t for t in (result.out, result.err, log))


def test_a_dry_run_notifies_nothing(tmp_path: Path, smtp: Mailbox):
    (tmp_path / ".env").write_text(f"SMTP_PASSWORD='{PASSWORD}'\n")
    config = write_config(tmp_path, notify=[{"url": mailto(smtp.port, "team@example.com"), "on": ALL_EVENTS}])
    result = run_cli("--dry-run", "--config", str(config))
    assert result.code == 0, result.err
    assert smtp.received == [] and not (tmp_path / "data" / "outcome.json").exists()


def test_a_missing_variable_is_a_config_error_naming_it(tmp_path: Path):
    config = write_config(tmp_path, notify=[{"url": "mailto://ops:${SMTP_PASSWORD}@smtp.example.com?to=a@b.c"}])
    result = run_cli("--once", "--config", str(config))
    assert result.code == 2
    assert 'Config key "notify[0].url" refers to ${SMTP_PASSWORD}, which is not set' in result.err
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize(("notify", "message"), [
    ({"url": "mailto://a@b.c", "on": ["failures"]},
     '"notify[0].on" has an unknown event \'failures\' — did you mean "failure"?'),
    ({"url": "mailto://a@b.c", "events": ["failure"]}, 'Unknown config key "notify[0].events"'),
    ({"on": ["failure"]}, 'Config key "notify[0].url" is missing'),
    ({"url": "nosuchservice://x/y"},
     'Config key "notify[0].url" is not a URL Apprise can send to (scheme "nosuchservice")'),
    ({"url": "mailto://a@b.c", "on": []}, 'Config key "notify[0].on" must be a list of events'),
])
def test_bad_notify_config_says_what_to_fix(tmp_path: Path, notify: dict, message: str):
    raw = json.loads(write_config(tmp_path, notify=[notify]).read_text())
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=tmp_path)
    assert message in str(caught.value)


def test_a_secret_written_into_the_url_never_shows_in_the_config_or_an_invalid_url_error(tmp_path: Path):
    secret = "Sup3rSecretLiteral"
    raw = json.loads(write_config(tmp_path, notify=[{"url": f"mailto://ops:{secret}@smtp.example.com"}]).read_text())
    config = parse_config(raw, base_dir=tmp_path)
    assert config.notify[0].on == ("failure", "held", "recovered")
    assert secret not in repr(config)
    raw["notify"][0]["url"] = f"sns://AKIDEXAMPLE0FAKE0KEY/{secret}/not-a-region/#x"
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=tmp_path)
    assert "not a URL Apprise can send to" in str(caught.value) and secret not in str(caught.value)


STATUSES = st.sampled_from(["full_load", "changes", "unchanged", "skipped", "failed", "held"])


@settings(max_examples=40, deadline=None)
@given(cycles=st.lists(st.fixed_dictionaries({"a": STATUSES, "b": st.none() | STATUSES}), min_size=1, max_size=6))
def test_recovered_means_failed_or_held_in_the_tables_previous_cycle_and_captured_now(tmp_path_factory, cycles):
    """Over any sequence of cycles (table b sometimes left out, as with --tables): one message per event, and a
    table is `recovered` exactly when its previous recorded cycle failed or was held and this one captured it."""
    data_dir = tmp_path_factory.mktemp("outcome")
    config = parse_config(json.loads(write_config(data_dir, notify=[{"url": "json://localhost", "on": ALL_EVENTS}])
                                     .read_text()), base_dir=data_dir)
    last: dict[str, str] = {}
    for k, statuses in enumerate(cycles):
        run_id = f"20260101_0000{k:02d}"
        tables = [TableReport(name, status=s, error=f"{name} broke" if s in PROBLEMS else None)
                  for name, s in statuses.items() if s is not None]
        report = RunReport(run_id=run_id, source="demo", lake="lake", source_version=None,
                           started_at=datetime.now(UTC), finished_at=datetime.now(UTC), tables=tables)
        previous = record_outcome(data_dir / "data", report)
        events = {m.event: m for m in compose(config, report, previous)}
        assert len(events) == len(compose(config, report, previous))
        expected = {t.table for t in tables if t.status in CAPTURED and last.get(t.table) in PROBLEMS}
        recovered = events["recovered"].body if "recovered" in events else ""
        named = set(re.findall(r"^  (\w+): ", recovered, re.MULTILINE))
        assert named == expected
        assert ("failure" in events) == any(t.status == "failed" for t in tables)
        assert ("held" in events) == any(t.status == "held" for t in tables)
        last.update({t.table: t.status for t in tables})


@pytest.fixture
def sns_via_moto(monkeypatch, tmp_path: Path):
    """moto in proxy mode: HTTPS to *.amazonaws.com (Apprise's SNS endpoint is fixed) is answered by moto, with a
    certificate of moto's own CA, which the clients trust through the standard CA-bundle variables."""
    from moto.moto_proxy.certificate_creator import CertificateCreator

    port = free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "moto.proxy", "-H", "127.0.0.1", "-p", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proxy.poll() is None, "moto's proxy did not start"
            time.sleep(0.1)
    for name, value in {"HTTPS_PROXY": f"http://127.0.0.1:{port}", "REQUESTS_CA_BUNDLE": CertificateCreator.cacert,
                        "AWS_CA_BUNDLE": CertificateCreator.cacert, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE0FAKE0KEY",
                        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    yield
    proxy.terminate()
    proxy.wait(timeout=30)


def test_a_failure_reaches_an_sns_topic(tmp_path: Path, sns_via_moto):
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="cdc-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="cdc-alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    source = source_folder(tmp_path)
    (source / "produtos.csv").write_text("IdProduto;DescNomeProduto\n1;a\n1;b\n")  # a duplicate key
    config = write_config(tmp_path, source={"type": "directory", "path": "source"}, tables=TABLES, notify=[
        {"url": "sns://${AWS_ACCESS_KEY_ID}/${AWS_SECRET_ACCESS_KEY}/us-east-1/#cdc-alerts"}])
    result = run_cli("--once", "--config", str(config))
    assert result.code == 1 and "could not be sent" not in result.err, result.err
    run_id = re.match(r"run (\d{8}_\d{6})", result.out).group(1)
    error = re.search(r"produtos\s+FAILED: (.*)", result.out).group(1)

    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=5).get("Messages", [])
    [published] = [json.loads(m["Body"]) for m in messages]
    assert published["TopicArn"] == topic
    assert published["Subject"] == f"cdc_core: 1 table(s) failed: produtos (run {run_id})"
    assert f"  produtos: {error}" in published["Message"]
    assert f"cdc_core run {run_id}" in published["Message"] and "Nothing was lost" in published["Message"]
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in published["Message"] + result.out + result.err
