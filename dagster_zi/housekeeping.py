"""Run retention: the daily housekeeping job deletes old runs from the Dagster instance.

What belongs here: which runs are old enough to go (``ZI_RUN_RETENTION_DAYS``, default 180; 0 keeps every
run), which are kept whatever their age, deleting them with what belongs to them, and the job and schedule
(05:30 Europe/Berlin, before the daily build; running by default). Sensor and schedule ticks are purged by
Dagster itself (``retention`` in ``dagster.yaml``).

Deleting a run deletes its events, and with them that run's materialisations and check results: the asset
history in the UI then starts at the oldest run kept. So some runs are kept whatever their age:
- the last successful run of the build job (what the published warehouse was built by);
- every run that holds the latest materialisation of an asset or the latest result of an asset check
  (otherwise the UI would show an asset as materialised by a run that no longer exists, and the asset's
  status would point at deleted events);
- runs not finished (queued, starting, running).
The data-quality history the controllers read lives in the warehouse (``marts.mart_data_quality``), not in
Dagster's event log, and is not affected.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dagster import (
    AssetCheckKey,
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    RunsFilter,
    ScheduleDefinition,
    job,
    op,
)
from dagster._core.storage.dagster_run import FINISHED_STATUSES

from dagster_zi.alerts import record_dir
from dagster_zi.constants import BUILD_JOB
from dagster_zi.run_worker import run_output_path
from zi_warehouse import alerts
from zi_warehouse.german import LOCAL_TIME_ZONE

RETENTION_ENV = "ZI_RUN_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 180
JOB_NAME = "housekeeping"
SCHEDULE_NAME = "daily_housekeeping"


def retention_days(environ: Mapping[str, str] | None = None) -> int | None:
    """Days a finished run is kept (None: keep every run, ``ZI_RUN_RETENTION_DAYS=0``)."""
    env = os.environ if environ is None else environ
    text = env.get(RETENTION_ENV, "").strip() or str(DEFAULT_RETENTION_DAYS)
    try:
        days = int(text)
    except ValueError:
        raise ValueError(
            f"{RETENTION_ENV}={text!r} ist keine ganze Zahl von Tagen (0 = alle Läufe behalten)."
        ) from None
    if days < 0:
        raise ValueError(f"{RETENTION_ENV}={days} ist negativ (0 = alle Läufe behalten).")
    return days or None


@dataclass
class Purge:
    cutoff: dt.datetime
    deleted: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # old runs kept: run id -> why (German)

    def summary_de(self) -> str:
        return (
            f"{len(self.deleted)} Läufe gelöscht, die vor dem {self.cutoff:%d.%m.%Y} endeten; "
            f"{len(self.kept)} ältere Läufe behalten (letzter erfolgreicher Build, jüngste Materialisierung "
            "oder Prüfung eines Assets)."
        )


def protected_runs(instance: DagsterInstance, check_keys: Iterable[AssetCheckKey]) -> dict[str, str]:
    """Runs kept whatever their age (see the module docstring): run id -> why, in German."""
    keep: dict[str, str] = {}
    last_build = instance.get_run_records(RunsFilter(job_name=BUILD_JOB, statuses=[DagsterRunStatus.SUCCESS]), limit=1)
    if last_build:
        keep[last_build[0].dagster_run.run_id] = "letzter erfolgreicher Build"
    for record in instance.get_asset_records():
        latest = record.asset_entry.last_materialization_record
        if latest is not None:
            keep.setdefault(
                latest.run_id, f"jüngste Materialisierung von {record.asset_entry.asset_key.to_user_string()}"
            )
    check_keys = list(check_keys)
    if check_keys:
        for key, summary in instance.event_log_storage.get_asset_check_summary_records(check_keys).items():
            latest = summary.last_check_execution_record
            if latest is not None:
                keep.setdefault(latest.run_id, f"jüngstes Ergebnis der Prüfung {key.name}")
    return keep


def _remove_run_files(instance: DagsterInstance, run_id: str) -> None:
    """What stays on disk after Dagster deleted a run: its compute logs, its output from the run worker and
    (SQLite) its emptied event file."""
    instance.compute_log_manager.delete_logs(prefix=[run_id])
    run_output_path(run_id, Path(instance.root_directory)).unlink(missing_ok=True)
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    from dagster_zi.event_log_storage import ZiSqliteEventLogStorage

    storage = instance.event_log_storage
    if isinstance(storage, SqliteEventLogStorage):
        # An emptied SQLite file keeps its size (about 1 MB for a build). This process must not reuse its
        # knowledge that the file has tables: a later read of the run would find a new, empty file.
        if isinstance(storage, ZiSqliteEventLogStorage):
            storage.forget_shard(run_id)  # its open connection would keep the deleted file alive
        Path(storage.path_for_shard(run_id)).unlink(missing_ok=True)
        getattr(storage, "_initialized_dbs", set()).discard(run_id)
    alerts.forget(record_dir(instance), run_id)


def purge_old_runs(
    instance: DagsterInstance, days: int, check_keys: Iterable[AssetCheckKey], now: dt.datetime | None = None
) -> Purge:
    """Delete finished runs that ended more than ``days`` days before ``now``, except the protected ones."""
    now = now or dt.datetime.now(dt.UTC)
    purge = Purge(cutoff=now - dt.timedelta(days=days))
    keep = protected_runs(instance, check_keys)
    cutoff = purge.cutoff.timestamp()
    old = instance.get_run_records(
        RunsFilter(statuses=list(FINISHED_STATUSES), created_before=purge.cutoff), ascending=True
    )
    for record in old:
        run_id = record.dagster_run.run_id
        if (record.end_time or record.create_timestamp.timestamp()) >= cutoff:
            continue  # started before the cutoff, ended after it
        if run_id in keep:
            purge.kept[run_id] = keep[run_id]
            continue
        instance.delete_run(run_id)
        _remove_run_files(instance, run_id)
        purge.deleted.append(run_id)
    return purge


@op(
    name="delete_old_runs",
    description="Löscht beendete Läufe, die älter sind als ZI_RUN_RETENTION_DAYS (Standard 180).",
)
def delete_old_runs(context) -> None:  # no annotation: Dagster cannot read postponed ones
    from dagster_zi.definitions import defs

    days = retention_days()
    if days is None:
        context.log.info(f"{RETENTION_ENV}=0: alle Läufe werden behalten.")
        return
    purge = purge_old_runs(context.instance, days, defs.resolve_asset_graph().asset_check_keys)
    context.log.info(purge.summary_de())
    for run_id, why in purge.kept.items():
        context.log.debug(f"behalten: {run_id} ({why})")


@job(name=JOB_NAME, description="Aufräumen der Dagster-Instanz: alte Läufe löschen (ZI_RUN_RETENTION_DAYS).")
def housekeeping_job() -> None:
    delete_old_runs()


daily_housekeeping_schedule = ScheduleDefinition(
    name=SCHEDULE_NAME,
    job=housekeeping_job,
    cron_schedule="30 5 * * *",
    execution_timezone=LOCAL_TIME_ZONE.key,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Täglich 05:30, vor dem Gesamtlauf: Läufe löschen, die älter als ZI_RUN_RETENTION_DAYS (180) Tage sind.",
)

jobs = [housekeeping_job]
schedules = [daily_housekeeping_schedule]
