"""The instance's SQLite event log (dagster_zi/event_log_storage.py): Dagster's own files, one open connection per
file, none carried across a fork."""

from __future__ import annotations

import json
import os
import time

import sqlalchemy
from dagster import AssetKey, AssetMaterialization, DagsterInstance
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from dagster_zi import event_log_storage
from dagster_zi.event_log_storage import ZiSqliteEventLogStorage


def _entry(run_id: str, event_type: DagsterEventType, data) -> EventLogEntry:
    """An event of the build job's dbt step, as the run stores it."""
    return EventLogEntry(
        error_info=None,
        level=20,
        user_message="",
        run_id=run_id,
        timestamp=time.time(),
        step_key="zi_dbt_assets",
        job_name="build_warehouse",
        dagster_event=DagsterEvent(
            event_type_value=event_type.value, job_name="build_warehouse", event_specific_data=data
        ),
    )


def _materialization(run_id: str, i: int) -> EventLogEntry:
    materialization = AssetMaterialization(asset_key=AssetKey(["marts", f"mart_{i % 3}"]), metadata={"rows": i})
    return _entry(run_id, DagsterEventType.ASSET_MATERIALIZATION, StepMaterializationData(materialization))


def test_the_instance_on_sqlite_uses_it_on_dagsters_own_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path / "zi"))
    # set, not deleted: monkeypatch then removes what ensure_instance() puts there (a deleted, unset variable
    # is not restored, and this test's instance leaked into the next test's `zi build` in the same worker)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "zi" / "dagster"))
    monkeypatch.delenv("ZI_DAGSTER_POSTGRES_URL", raising=False)
    from dagster_zi.instance import ensure_instance

    home = ensure_instance()
    with DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, ZiSqliteEventLogStorage)
        assert storage._base_dir == str(home / "history" / "runs")  # where Dagster's default keeps them
        # and the UI the data team opens every day shows no new-user dialog ("Join the Dagster community")
        assert instance.nux_enabled is False and instance.telemetry_enabled is False


def test_events_are_dagsters_and_each_file_keeps_one_engine(tmp_path):
    storage = ZiSqliteEventLogStorage(str(tmp_path))
    for i in range(12):
        storage.store_event(_materialization("run-a", i))
    storage.store_event(_materialization("run-b", 0))
    assert set(storage._engines) == {"index", "run-a", "run-b"}  # not one engine per event
    with storage.run_connection("run-a") as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    storage.dispose()

    # Dagster's own storage reads what was written: same files, same tables.
    plain = SqliteEventLogStorage(str(tmp_path))
    assert len(plain.get_logs_for_run("run-a")) == 12
    latest = plain.get_latest_materialization_events([AssetKey(["marts", "mart_2"])])[AssetKey(["marts", "mart_2"])]
    assert latest.dagster_event.event_specific_data.materialization.metadata["rows"].value == 11


def test_each_file_is_opened_once_not_once_per_event(tmp_path):
    storage = ZiSqliteEventLogStorage(str(tmp_path))
    storage.store_event(_materialization("run-a", 0))
    opened: list[str] = []
    for shard, engine in storage._engines.items():
        sqlalchemy.event.listen(engine, "connect", lambda *_args, shard=shard: opened.append(shard))
    for i in range(1, 20):
        storage.store_event(_materialization("run-a", i))
    assert opened == []  # the connections opened for the first event serve every later one
    assert len(storage.get_logs_for_run("run-a")) == 20
    storage.dispose()


def test_a_forked_child_opens_its_own_connections_and_leaves_the_parents_alone(tmp_path):
    """SQLite forbids using a connection opened before a fork in the child; the run worker forks a child per run."""
    storage = ZiSqliteEventLogStorage(str(tmp_path))
    for i in range(3):
        storage.store_event(_materialization("run-a", i))
    parents = {id(engine) for engine in storage._engines.values()}
    result = tmp_path / "child.json"
    pid = os.fork()
    if pid == 0:  # the child: report what it used, never return into pytest
        code = 1
        try:
            for i in range(3, 6):
                storage.store_event(_materialization("run-a", i))
            storage.store_event(_materialization("run-c", 0))
            result.write_text(
                json.dumps(
                    {
                        "own": [id(engine) for engine in storage._engines.values()],
                        "set_aside": [id(engine) for engine in event_log_storage._INHERITED_ENGINES],
                    }
                )
            )
            code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    child = json.loads(result.read_text())
    assert parents.isdisjoint(child["own"])  # the child used none of the parent's engines ...
    assert set(child["set_aside"]) == parents  # ... and kept them unclosed
    storage.store_event(_materialization("run-a", 6))  # the parent's connections still work
    assert len(storage.get_logs_for_run("run-a")) == 7
    assert len(storage.get_logs_for_run("run-c")) == 1
    storage.dispose()

    plain = SqliteEventLogStorage(str(tmp_path))
    assert (
        plain.get_logs_for_run("run-a")[-1].dagster_event.event_specific_data.materialization.metadata["rows"].value
        == 6
    )
    with plain.run_connection("run-a") as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_a_watcher_sees_each_event_while_the_run_goes_on(tmp_path):
    """The UI follows a running run through Dagster's watch of the run's file (a file-system notification when
    the ``.db`` file changes). With an open connection in WAL mode the events go to the ``-wal`` file, and the
    database file would change only when the run's process ends: the UI's log would stand still until then."""
    writer = ZiSqliteEventLogStorage(str(tmp_path))
    writer.store_event(_materialization("run-a", 0))
    reader = ZiSqliteEventLogStorage(str(tmp_path))  # the webserver's storage (another process there)
    seen: list[int] = []
    reader.watch("run-a", None, lambda entry, _cursor: seen.append(entry.dagster_event.event_specific_data))
    try:
        for i in range(1, 4):
            writer.store_event(_materialization("run-a", i))
            deadline = time.monotonic() + 20
            while len(seen) < i and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(seen) >= i, f"the watcher saw {len(seen)} of {i} events while the writer's connection is open"
    finally:
        reader.end_watch("run-a", reader._watchers["run-a"] and next(iter(reader._watchers["run-a"])))
        reader.dispose()
        writer.dispose()


def test_engines_of_old_runs_are_let_go(tmp_path, monkeypatch):
    monkeypatch.setattr(event_log_storage, "KEPT_ENGINES", 3)
    storage = ZiSqliteEventLogStorage(str(tmp_path))
    for run in range(6):
        storage.store_event(_materialization(f"run-{run}", run))
    assert len(storage._engines) == 3 and "run-5" in storage._engines
    storage.dispose()
    assert not storage._engines


def test_postgres_storage_is_left_as_dagster_makes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ZI_DAGSTER_POSTGRES_URL", "postgresql://zi@db.intern/dagster")
    from dagster_zi.instance import instance_yaml

    text = instance_yaml(tmp_path)
    assert "postgres_url" in text and "event_log_storage" not in text


def _check_event(run_id: str, i: int, planned: bool) -> EventLogEntry:
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluation,
        AssetCheckEvaluationPlanned,
    )

    key = AssetKey(["marts", f"mart_{i % 3}"])
    data = (
        AssetCheckEvaluationPlanned(asset_key=key, check_name=f"check_{i}")
        if planned
        else AssetCheckEvaluation(asset_key=key, check_name=f"check_{i}", passed=True, metadata={})
    )
    event_type = DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED if planned else DagsterEventType.ASSET_CHECK_EVALUATION
    return _entry(run_id, event_type, data)


def test_what_the_index_holds_is_looked_up_once_not_per_event(tmp_path, monkeypatch):
    """Dagster asks for every asset and check event whether a table, an asset-key column or a data migration
    exists, building an engine each time; the storage asks once per name and remembers a "yes"."""
    asked: list[tuple[str, str]] = []
    for method in ("has_table", "_has_asset_key_col_on_connection", "has_secondary_index"):
        original = getattr(SqliteEventLogStorage, method)

        def counting(self, *args, _original=original, _method=method):
            asked.append((_method, args[-1]))
            return _original(self, *args)

        monkeypatch.setattr(SqliteEventLogStorage, method, counting)
    storage = ZiSqliteEventLogStorage(str(tmp_path))
    asked.clear()  # what creating the index asked
    for i in range(10):
        storage.store_event(_check_event("run-a", i, planned=True))
    for i in range(10):
        storage.store_event(_check_event("run-a", i, planned=False))
        storage.store_event(_materialization("run-a", i))
    assert asked, "the storage no longer asks Dagster at all: the test does not see the look-ups"
    assert len(asked) == len(set(asked)), asked  # each name asked once, not once per event
    # the events are Dagster's as before: the check results are in the index
    assert (
        len(
            storage.get_asset_check_execution_history(
                _check_event("run-a", 4, True).dagster_event.event_specific_data.asset_check_key, limit=5
            )
        )
        == 1
    )
    # a "no" is not remembered: a table added later (dagster instance migrate) is found
    assert storage.has_table("no_such_table") is False
    assert storage.has_table("no_such_table") is False
    assert asked.count(("has_table", "no_such_table")) == 2
