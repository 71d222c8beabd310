"""A throwaway PostgreSQL 15 server for tests: a fresh cluster in a temp dir on a free port, removed afterwards.

Usage::

    from tests.pg_server import postgres_server

    with postgres_server() as pg:
        dsn = pg.dsn                      # postgresql://postgres@127.0.0.1:<port>/postgres
        other = pg.create_database("x")   # DSN of a new, empty database on the same server

A missing PostgreSQL installation raises ``PostgresNotAvailable`` (in CI that must fail, never skip).
``initdb`` refuses to run as root, so under root the cluster runs as the unprivileged ``postgres``
system user (Debian's package creates it; override with ``ZI_TEST_PG_USER``) via ``runuser``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: Where Debian/Ubuntu put the server binaries; PATH is tried first.
_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")


class PostgresNotAvailable(RuntimeError):
    """PostgreSQL server binaries (initdb, pg_ctl) are not installed or the cluster did not start."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    data_dir: Path

    @property
    def dsn(self) -> str:
        """libpq URI of the default database ``postgres`` (trust authentication, no password)."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn, autocommit=True) as con:
            con.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return self.dsn_for(name)

    def require_password(self, role: str) -> None:
        """Make ``role`` log in over TCP with its password (the cluster trusts everyone else), as a real server
        would; for tests of what the password is."""
        import psycopg

        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        with psycopg.connect(self.dsn, autocommit=True) as con:
            con.execute("select pg_reload_conf()")

    def env(self) -> dict[str, str]:
        """PG* variables that point libpq (psql, psycopg without a DSN) at this server."""
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user, "PGDATABASE": "postgres"}


def find_binary(name: str) -> str:
    for directory in _BIN_DIRS:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise PostgresNotAvailable(
        f"PostgreSQL-Programm '{name}' nicht gefunden (gesucht in {', '.join(_BIN_DIRS)} und PATH); "
        "bitte das Paket 'postgresql' (Version 15) installieren."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as(user: str | None, args: list[str]) -> subprocess.CompletedProcess:
    command = ["runuser", "-u", user, "--", *args] if user else args
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise PostgresNotAvailable(
            f"{' '.join(args[:2])} fehlgeschlagen ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
        )
    return result


@contextmanager
def postgres_server(db_user: str = "postgres") -> Iterator[PostgresServer]:
    """Start a fresh PostgreSQL cluster; stop it and delete its files on exit, whatever happened."""
    initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
    os_user: str | None = None
    if os.geteuid() == 0:
        os_user = os.environ.get("ZI_TEST_PG_USER", "postgres")
        try:
            account = pwd.getpwnam(os_user)
        except KeyError as exc:
            raise PostgresNotAvailable(
                f"Als root braucht der Test-Server einen unprivilegierten Benutzer '{os_user}' (ZI_TEST_PG_USER)."
            ) from exc
    base = Path(tempfile.mkdtemp(prefix="zi-pg-"))
    data_dir, socket_dir = base / "data", base / "socket"
    socket_dir.mkdir()
    if os_user:
        for path in (base, socket_dir):
            os.chown(path, account.pw_uid, account.pw_gid)
    port = _free_port()
    started = False
    try:
        _run_as(
            os_user,
            [initdb, "-D", str(data_dir), "-U", db_user, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        )
        options = f"-p {port} -h 127.0.0.1 -k {socket_dir} -F -c fsync=off -c full_page_writes=off"
        _run_as(
            os_user,
            [pg_ctl, "-D", str(data_dir), "-o", options, "-l", str(base / "server.log"), "-w", "-t", "60", "start"],
        )
        started = True
        yield PostgresServer(host="127.0.0.1", port=port, user=db_user, data_dir=data_dir)
    finally:
        if started:
            try:
                _run_as(os_user, [pg_ctl, "-D", str(data_dir), "-m", "immediate", "-w", "stop"])
            except PostgresNotAvailable:
                pass
        shutil.rmtree(base, ignore_errors=True)
