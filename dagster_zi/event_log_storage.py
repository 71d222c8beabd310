"""The event log of a SQLite Dagster instance, with one open connection per file instead of one per event.

What belongs here: only this storage class; ``dagster_zi/instance.py`` names it in ``dagster.yaml`` when the
instance stores in SQLite (PostgreSQL storage is left as Dagster makes it).

Why: Dagster's SQLite event log builds a new SQLAlchemy engine for every event it stores, opens a connection,
commits, closes it and throws the engine away. A build stores ~1,200 events (one per planned asset, step,
check result and log line; a one-workbook run ~400), and closing the last connection to a WAL database makes
SQLite checkpoint the log into the database file, so the per-event set-up was a noticeable part of a run.
Here each database file (one per run, plus the index) keeps its engine and one pooled connection, and the
databases stay what Dagster writes and reads. Commits do not wait for the disk (``synchronous=NORMAL`` in
SQLite's WAL mode, which Dagster sets): a power cut may lose a run's last events but leaves every database
consistent. After every stored event the run's file gets a new modification time: Dagster's watch of a running
run (the UI's live log) waits for a change of that file, and the events now go to its ``-wal`` file.

Schema look-ups: for every asset and check event Dagster asks whether a table of the index exists (a new engine
and connection each time), whether the asset-key table has a column and whether a data migration has been
done. What exists stays: tables and columns are only ever added (``dagster instance migrate``), so a "yes" is
remembered for the storage's life and a "no" is asked again. A one-workbook build stores ~250 such events.

Forks: the run worker forks a child per run (``dagster_zi/run_worker.py``). SQLite forbids using a
connection opened before a fork in the child, and closing it there would act on the parent's files, so a
child that inherited pooled connections sets them aside untouched (never used, never closed; the child ends
with ``os._exit``) and opens its own. Measured in docs/performance.md (fixes 18 and 19).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as db
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy.pool import QueuePool

#: Engines kept (the index and the latest runs' files); older ones are disposed of when a new file is used.
KEPT_ENGINES = 16

#: Engines a forked child inherited from its parent: kept referenced so that their connections are never
#: closed (or finalised) in the child (see the module docstring).
_INHERITED_ENGINES: list[db.Engine] = []


def _commit_without_waiting_for_the_disk(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


class ZiSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log storage, keeping one engine per database file (see the module docstring)."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, db.Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._present: set[tuple[str, str]] = set()  # ("table" | "column" | "index", name) known to exist
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> ZiSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> db.Engine:
        if self._engines_pid != os.getpid():  # a forked child: the parent's connections are not ours
            _INHERITED_ENGINES.extend(self._engines.values())
            self._engines.clear()
            self._engines_pid = os.getpid()
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = db.create_engine(
            self.conn_string_for_shard(shard),
            poolclass=QueuePool,
            pool_size=1,  # the storage's lock lets one caller at a time use a file
            max_overflow=1,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        db.event.listen(engine, "connect", _commit_without_waiting_for_the_disk)
        self._engines[shard] = engine
        while len(self._engines) > KEPT_ENGINES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[db.Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _remembered(self, kind: str, name: str, ask) -> bool:
        """Whether the table, asset-key column or data migration ``name`` exists; a "yes" is remembered."""
        if (kind, name) in self._present:
            return True
        present = bool(ask())
        if present:
            self._present.add((kind, name))
        return present

    def has_table(self, table_name: str) -> bool:
        return self._remembered("table", table_name, lambda: super(ZiSqliteEventLogStorage, self).has_table(table_name))

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        return self._remembered(
            "column",
            column_name,
            lambda: super(ZiSqliteEventLogStorage, self)._has_asset_key_col_on_connection(conn, column_name),
        )

    def has_secondary_index(self, name: str) -> bool:
        return self._remembered("index", name, lambda: super(ZiSqliteEventLogStorage, self).has_secondary_index(name))

    def upgrade(self) -> None:
        self._present.clear()
        super().upgrade()

    def store_event(self, event) -> None:
        super().store_event(event)
        # Watchers of a running run (the UI's live log) are woken by a change of the run's ``.db`` file. With an
        # open connection in WAL mode the event went to the ``-wal`` file, and the ``.db`` file would change only
        # at a checkpoint or when this process ends; changing its time is a change the watcher sees.
        try:
            os.utime(self.path_for_shard(event.run_id))
        except OSError:
            pass

    def forget_shard(self, shard: str) -> None:
        """Close the connection to a file about to be deleted (a run removed by housekeeping)."""
        with self._db_lock:
            engine = self._engines.pop(shard, None)
            if engine is not None and self._engines_pid == os.getpid():
                engine.dispose()
            self._initialized_dbs.discard(shard)

    def wipe(self) -> None:
        with self._db_lock:
            for shard in [s for s in self._engines if s != INDEX_SHARD_NAME]:
                engine = self._engines.pop(shard)
                if self._engines_pid == os.getpid():
                    engine.dispose()
        super().wipe()

    def dispose(self) -> None:
        with self._db_lock:
            if self._engines_pid == os.getpid():
                for engine in self._engines.values():
                    engine.dispose()
            else:
                _INHERITED_ENGINES.extend(self._engines.values())
            self._engines.clear()
        super().dispose()
