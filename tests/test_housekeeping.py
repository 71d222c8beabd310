"""Run retention (dagster_zi/housekeeping.py): old runs go, the runs the UI's asset status rests on stay.

Runs of small jobs defined here are executed into a real instance written from the repository's
dagster.yaml (dagster_zi/instance.py) in a temporary DAGSTER_HOME; "old" is reached by purging as of a day
200 days from now.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from dagster import (
    AssetCheckResult,
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    asset,
    asset_check,
    define_asset_job,
    materialize,
)
from dagster._core.test_utils import create_run_for_test

from dagster_zi.constants import BUILD_JOB
from dagster_zi.housekeeping import (
    JOB_NAME,
    RETENTION_ENV,
    SCHEDULE_NAME,
    purge_old_runs,
    retention_days,
)
from dagster_zi.run_worker import run_output_path
from zi_warehouse import alerts

LATER = dt.datetime.now(dt.UTC) + dt.timedelta(days=200)


@asset
def upstream() -> None:
    pass


@asset(deps=[upstream])
def downstream() -> None:
    pass


@asset_check(asset=upstream, blocking=True, description="Prüfung des Tests")
def upstream_positive() -> AssetCheckResult:
    return AssetCheckResult(passed=True)


@asset
def broken() -> None:
    raise RuntimeError("kaputt")


@pytest.fixture
def instance(tmp_path, monkeypatch) -> DagsterInstance:
    from dagster_zi.instance import ensure_instance

    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "data" / "dagster"))
    monkeypatch.delenv("ZI_DAGSTER_POSTGRES_URL", raising=False)
    ensure_instance()
    with DagsterInstance.get() as inst:
        yield inst


def _build(inst: DagsterInstance, selection=None) -> str:
    """A run of a job named like the build job (the rule keeps its last success by name)."""
    job = define_asset_job(BUILD_JOB, selection=selection).resolve(
        asset_graph=_graph([upstream, downstream, upstream_positive])
    )
    return job.execute_in_process(instance=inst).run_id


def _graph(defs_list):
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

    return AssetGraph.from_assets(defs_list)


def _event_file(inst: DagsterInstance, run_id: str) -> Path:
    return Path(inst.event_log_storage.path_for_shard(run_id))


def _open_files() -> set[str]:
    """The files this process holds open (a deleted one keeps its disk space while it is open)."""
    names = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            names.add(os.readlink(fd).removesuffix(" (deleted)"))
        except OSError:
            pass
    return names


def test_old_runs_go_the_runs_the_asset_status_rests_on_stay(instance):
    first_build = _build(instance)
    last_build = _build(instance)
    checked = materialize([upstream, upstream_positive], instance=instance).run_id  # the newest check result
    failed = materialize([broken], instance=instance, raise_on_error=False).run_id
    only_downstream = materialize([downstream], instance=instance).run_id  # now the newest of `downstream`
    other_job = materialize([upstream], instance=instance).run_id  # newest `upstream`, but no check result
    running = create_run_for_test(instance, job_name="still_running", status=DagsterRunStatus.STARTED).run_id
    alerts.claim(Path(instance.root_directory) / "alerts", failed, "test")
    assert instance.get_run_by_id(failed).status == DagsterRunStatus.FAILURE
    assert _event_file(instance, first_build).exists()
    for run_id in (first_build, failed, last_build):  # what the run worker kept of their output
        run_output_path(run_id, Path(instance.root_directory)).parent.mkdir(parents=True, exist_ok=True)
        run_output_path(run_id, Path(instance.root_directory)).write_text("STEP_START\n")

    # Young runs are never touched.
    assert purge_old_runs(instance, 180, [upstream_positive.check_key]).deleted == []

    purge = purge_old_runs(instance, 180, [upstream_positive.check_key], now=LATER)

    assert sorted(purge.deleted) == sorted([first_build, failed])
    assert purge.kept == {
        last_build: "letzter erfolgreicher Build",
        checked: "jüngstes Ergebnis der Prüfung upstream_positive",
        only_downstream: "jüngste Materialisierung von downstream",
        other_job: "jüngste Materialisierung von upstream",
    }
    for run_id in (first_build, failed):
        assert instance.get_run_by_id(run_id) is None
        assert not _event_file(instance, run_id).exists()  # the emptied SQLite file is removed, too
        assert str(_event_file(instance, run_id)) not in _open_files()  # and its disk space given back
        assert not (Path(instance.root_directory) / "storage" / run_id).exists()  # compute logs
        assert not run_output_path(run_id, Path(instance.root_directory)).exists()
        assert instance.all_logs(run_id) == []
    assert alerts.read_record(Path(instance.root_directory) / "alerts", failed) is None
    assert instance.get_run_by_id(running).status == DagsterRunStatus.STARTED
    # The asset status still rests on runs that exist, with their events.
    latest = {
        key: instance.get_latest_materialization_event(AssetKey(key)).run_id for key in ("upstream", "downstream")
    }
    assert latest == {"upstream": other_job, "downstream": only_downstream}
    summary = instance.event_log_storage.get_asset_check_summary_records([upstream_positive.check_key])
    assert summary[upstream_positive.check_key].last_check_execution_record.run_id == checked
    assert instance.all_logs(last_build)
    assert run_output_path(last_build, Path(instance.root_directory)).exists()


def test_retention_days_from_the_environment():
    assert retention_days({}) == 180
    assert retention_days({RETENTION_ENV: "30"}) == 30
    assert retention_days({RETENTION_ENV: "0"}) is None  # keep every run
    for bad in ("drei", "-1"):
        with pytest.raises(ValueError, match=RETENTION_ENV):
            retention_days({RETENTION_ENV: bad})


def test_the_housekeeping_job_runs_daily_before_the_build_and_is_on_by_default(instance):
    from dagster import DefaultScheduleStatus

    from dagster_zi.definitions import daily_build_schedule, defs

    schedule = defs.get_repository_def().get_schedule_def(SCHEDULE_NAME)
    assert schedule.job_name == JOB_NAME
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    assert schedule.execution_timezone == daily_build_schedule.execution_timezone == "Europe/Berlin"
    assert schedule.cron_schedule == "30 5 * * *" and daily_build_schedule.cron_schedule == "0 6 * * *"

    # The job of the code location runs in the instance and says what it did.
    old_enough = _build(instance)
    result = defs.resolve_job_def(JOB_NAME).execute_in_process(instance=instance)
    assert result.success
    messages = [e.message for e in instance.all_logs(result.run_id) if e.message]
    assert any("0 Läufe gelöscht" in m for m in messages), messages
    assert instance.get_run_by_id(old_enough) is not None
