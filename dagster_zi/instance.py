"""The one Dagster instance every run goes into: where it lives and how its ``dagster.yaml`` is written.

What belongs here: choosing ``DAGSTER_HOME`` (default ``$ZI_DATA_DIR/dagster``: one instance per data
directory, so the UI shows exactly the runs that built that warehouse) and writing its ``dagster.yaml`` from
the repository's template, with PostgreSQL storage when ``ZI_DAGSTER_POSTGRES_URL`` is set (several people
and the daemon sharing one instance on a server; the URL is read from the environment when the instance
starts and never written into the file). Runs by ``zi build``, the daemon (schedule, sensors) and the UI
all use this instance, so every run, materialisation and check result has one history.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from zi_warehouse import config

TEMPLATE = config.REPO_ROOT / "dagster.yaml"
POSTGRES_URL_ENV = "ZI_DAGSTER_POSTGRES_URL"

_POSTGRES_STORAGE = f"""
# PostgreSQL storage (runs, event logs, schedules), because {POSTGRES_URL_ENV} is set where this was written.
storage:
  postgres:
    postgres_url:
      env: {POSTGRES_URL_ENV}
"""


_SQLITE_EVENT_LOG = """
# SQLite event log: Dagster's own files (history/runs/ in this folder), one database engine per file instead
# of one per stored event (dagster_zi/event_log_storage.py).
event_log_storage:
  module: dagster_zi.event_log_storage
  class: ZiSqliteEventLogStorage
  config:
    base_dir: {base_dir}
"""


def instance_yaml(home: Path | None = None) -> str:
    """The configuration of the instance in ``home`` (default: this data directory's) for the current
    environment: PostgreSQL storage when the URL is set, else SQLite with this project's event log."""
    text = TEMPLATE.read_text(encoding="utf-8")
    if os.environ.get(POSTGRES_URL_ENV):
        return text + _POSTGRES_STORAGE
    base_dir = (home or config.paths().dagster_home) / "history" / "runs"
    return text + _SQLITE_EVENT_LOG.format(base_dir=json.dumps(str(base_dir)))


class InstanceMismatch(RuntimeError):
    """The instance stores in PostgreSQL, but this process's environment does not name the database."""


def _uses_postgres(text: str) -> bool:
    import yaml

    try:
        storage = (yaml.safe_load(text) or {}).get("storage") or {}
    except yaml.YAMLError:
        return False
    return "postgres" in storage


def ensure_instance() -> Path:
    """Point ``DAGSTER_HOME`` at this data directory's instance and (re)write its ``dagster.yaml``.

    An instance on PostgreSQL is never switched back to SQLite because one shell lacks the variable: the
    daemon's runs would then execute against another storage than the one they were queued in, and a
    person's build would vanish from the shared UI. That is refused with a German message instead.
    """
    home = config.paths().dagster_home
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    target = home / "dagster.yaml"
    wanted = instance_yaml(home)
    try:
        current = target.read_text(encoding="utf-8")
    except OSError:
        current = None
    if current is not None and _uses_postgres(current) and not os.environ.get(POSTGRES_URL_ENV):
        raise InstanceMismatch(
            f"Die Dagster-Instanz {home} speichert ihre Läufe in PostgreSQL, aber {POSTGRES_URL_ENV} ist in dieser "
            "Umgebung nicht gesetzt. Die Umgebung des Servers laden (z. B. set -a; . /etc/zi-warehouse/zi.env; "
            f"set +a) oder, um wirklich zu SQLite zurückzukehren, {target} löschen."
        )
    if current != wanted:
        tmp = target.with_name(f"dagster.yaml.{os.getpid()}.tmp")  # units starting at once each write their own
        tmp.write_text(wanted, encoding="utf-8")
        os.replace(tmp, target)
    _ensure_writer_pool()
    return home


def _ensure_writer_pool() -> None:
    """Create the writer pool's limit before the first run: the run queue counts only pools it knows, so on a
    new instance two runs queued in the same second would both start (and the second wait on the lock)."""
    from dagster import DagsterInstance

    from dagster_zi.constants import WAREHOUSE_POOL

    with DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        if WAREHOUSE_POOL not in storage.get_concurrency_keys():
            storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)


if __name__ == "__main__":  # `make instance`, the systemd units: python -m dagster_zi.instance
    try:
        print(ensure_instance())
    except InstanceMismatch as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
