"""A throwaway PostgreSQL server for tests and benchmarks: initdb + pg_ctl on 127.0.0.1, a free port, a temp dir.

The server refuses to run as root, so as root it runs as the `postgres` system user (`runuser`); as any other user
it runs as that user. `PostgresServer.find()` is None only when the server binaries are not installed (`BINDIRS`
says where they are looked for).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER, SUPERUSER_PASSWORD = "postgres", "super-secret-pw"


# where packages put the server binaries, off PATH: Debian and Ubuntu (the postgresql package; GitHub's runners),
# the PGDG packages for RHEL/Fedora, a build from source, Homebrew
BINDIRS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin",
           "/opt/homebrew/opt/postgresql@*/bin", "/usr/local/opt/postgresql@*/bin")


def _bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH, else the newest version under one of `BINDIRS`."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    found = [Path(folder) for pattern in BINDIRS for folder in glob.glob(pattern)]
    for folder in sorted(found, key=_version, reverse=True):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _version(folder: Path) -> tuple[int, ...]:
    """The version a folder's path names, as numbers: /usr/lib/postgresql/9.6/bin → (9, 6); () for none."""
    numbers = re.search(r"(\d+(?:\.\d+)*)\D*$", str(folder.parent if folder.name == "bin" else folder))
    return tuple(int(n) for n in numbers[1].split(".")) if numbers else ()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    """One cluster in a temp folder; `start()`, `stop()`, `dsn(...)`, `sql(...)` (as the superuser)."""

    bindir: Path
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cdc-pg-")))
    port: int = field(default_factory=_free_port)
    host: str = "127.0.0.1"

    @classmethod
    def find(cls) -> PostgresServer | None:
        bindir = _bindir()
        return cls(bindir) if bindir else None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*as_user, *args], check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        """initdb with a password-protected superuser; TCP logins need a password (scram-sha-256)."""
        pwfile = self.root / "pw"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(pwfile, "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
                  "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8")
        pwfile.unlink()

    def start(self) -> None:
        opts = f"-c listen_addresses={self.host} -c port={self.port} -c unix_socket_directories='{self.root}' " \
               "-c fsync=off -c TimeZone=America/Sao_Paulo"
        self._run(str(self.bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
                  "-l", str(self.root / "server.log"), "-o", opts)

    def running(self) -> bool:
        return self._run(str(self.bindir / "pg_ctl"), "status", "-D", str(self.data), check=False).returncode == 0

    def start_if_stopped(self) -> None:
        """Start the server again if a test stopped it."""
        if not self.running():
            self.start()

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "stop", "-w", "-D", str(self.data), "-m", mode, check=False)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, user: str = SUPERUSER, password: str | None = SUPERUSER_PASSWORD, db: str = "postgres") -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@{self.host}:{self.port}/{db}"

    def sql(self, *statements: str, db: str = "postgres", user: str = SUPERUSER,
            password: str = SUPERUSER_PASSWORD) -> list[tuple]:
        """Run statements (as the superuser unless told), each in its own transaction; the rows of the last one."""
        import adbc_driver_postgresql.dbapi as adbc

        rows: list[tuple] = []
        with adbc.connect(self.dsn(user, password, db), autocommit=True) as con, con.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
                rows = cur.fetchall() if cur.description else []
        return rows


@dataclass
class Database:
    """A database owned by a login role with a password (what a capture connects as)."""

    server: PostgresServer
    name: str
    user: str
    password: str

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.user, self.password, self.name)

    def sql(self, *statements: str) -> list[tuple]:
        """Run statements as the owner, each in its own transaction; the rows of the last one."""
        return self.server.sql(*statements, db=self.name, user=self.user, password=self.password)

    def ingest(self, table: str, data) -> None:
        """Append an Arrow table's rows to an existing table (COPY through ADBC)."""
        import adbc_driver_postgresql.dbapi as adbc

        with adbc.connect(self.dsn) as con, con.cursor() as cur:
            cur.adbc_ingest(table, data, mode="append")
            con.commit()


def create_database(server: PostgresServer, name: str, user: str = "cdc", password: str = "cdc-pass-Z9") -> Database:
    """A fresh database `name` owned by `user` (created once, with `password`)."""
    exists = server.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{user}'")
    if not exists:
        server.sql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
    server.sql(f"CREATE DATABASE {name} OWNER {user}")
    return Database(server, name, user, password)
