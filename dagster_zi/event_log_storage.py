"""The event log of a SQLite Dagster instance, with one database engine per file instead of one per event.

What belongs here: only this storage class; ``dagster_zi/instance.py`` names it in ``dagster.yaml`` when the
instance stores in SQLite (PostgreSQL storage is left as Dagster makes it).

Why: Dagster's SQLite event log builds a new SQLAlchemy engine for every event it stores, opens a connection,
commits and throws the engine away. A build stores ~1,200 events (one per planned asset, step, check result
and log line; a one-workbook run ~400), so the engine set-up alone is a noticeable part of a run. Here each
database file (one per run, plus the index) keeps its engine; the engine still opens a connection per use and
holds none between uses (no pooled connection can cross the run worker's fork), and the databases stay what
Dagster writes and reads. Commits do not wait for the disk (``synchronous=NORMAL`` in SQLite's WAL mode, which
Dagster sets): a power cut may lose a run's last events but leaves every database consistent.
Measured in docs/performance.md (fix 18).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as db
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy.pool import NullPool

#: Engines kept (the index and the latest runs' files); older ones are disposed of when a new file is used.
KEPT_ENGINES = 16


def _commit_without_waiting_for_the_disk(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


class ZiSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log storage, keeping one engine per database file (see the module docstring)."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, db.Engine] = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> ZiSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> db.Engine:
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = db.create_engine(
            self.conn_string_for_shard(shard),
            poolclass=NullPool,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
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

    def dispose(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
        super().dispose()
