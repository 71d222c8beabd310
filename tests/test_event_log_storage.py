"""The instance's SQLite event log (dagster_zi/event_log_storage.py): Dagster's own files, one engine per file."""

from __future__ import annotations

import time

from dagster import AssetKey, AssetMaterialization, DagsterInstance
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from dagster_zi import event_log_storage
from dagster_zi.event_log_storage import ZiSqliteEventLogStorage


def _materialization(run_id: str, i: int) -> EventLogEntry:
    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
        job_name="build_warehouse",
        event_specific_data=StepMaterializationData(
            AssetMaterialization(asset_key=AssetKey(["marts", f"mart_{i % 3}"]), metadata={"rows": i})
        ),
    )
    return EventLogEntry(
        error_info=None,
        level=20,
        user_message="",
        run_id=run_id,
        timestamp=time.time(),
        step_key="zi_dbt_assets",
        job_name="build_warehouse",
        dagster_event=event,
    )


def test_the_instance_on_sqlite_uses_it_on_dagsters_own_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path / "zi"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("ZI_DAGSTER_POSTGRES_URL", raising=False)
    from dagster_zi.instance import ensure_instance

    home = ensure_instance()
    with DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, ZiSqliteEventLogStorage)
        assert storage._base_dir == str(home / "history" / "runs")  # where Dagster's default keeps them


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
