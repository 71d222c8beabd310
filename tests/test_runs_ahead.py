"""Which runs of the deployment `zi build` waits for before it builds (dagster_zi/runner.py, ``runs_ahead``).

The whole path, with the daemon, is in tests/test_operations.py; here the rules, on a real instance: a run
counts while something will still move it on (the daemon's queue for a queued run, a live process for a
running one), and never when it would keep `zi build` waiting for nothing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from dagster import DagsterEvent, DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.storage.dagster_run import DagsterRun, RunOpConcurrency
from dagster._daemon.types import DaemonHeartbeat

from dagster_zi import runner
from dagster_zi.constants import RUN_HOST_TAG, RUN_PID_TAG, WAREHOUSE_POOL
from dagster_zi.instance import ensure_instance


@pytest.fixture()
def instance(tmp_path, monkeypatch):
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("ZI_DAGSTER_POSTGRES_URL", raising=False)
    ensure_instance()
    with DagsterInstance.get() as instance:
        yield instance


def _add_run(instance, status: DagsterRunStatus, tags: dict | None = None, pools=(WAREHOUSE_POOL,)) -> DagsterRun:
    run = instance.add_run(
        DagsterRun(
            job_name="build_warehouse",
            status=DagsterRunStatus.NOT_STARTED,
            remote_job_origin=RemoteJobOrigin(
                RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("dagster_zi.definitions"), "__repository__"),
                "build_warehouse",
            ),
            tags={
                "zi/launched_by": "Sensor landing_sensor (neue, geänderte oder entfernte Dateien: Prognosen)",
                **(tags or {}),
            },
            run_op_concurrency=RunOpConcurrency(
                root_key_counts={}, has_unconstrained_root_nodes=False, all_pools=set(pools)
            ),
        )
    )
    event = {
        DagsterRunStatus.QUEUED: DagsterEventType.RUN_ENQUEUED,
        DagsterRunStatus.STARTED: DagsterEventType.RUN_START,
    }
    if status != DagsterRunStatus.NOT_STARTED:
        instance.report_dagster_event(DagsterEvent(event[status].value, job_name=run.job_name), run.run_id)
    return instance.get_run_by_id(run.run_id)


def _queue_heartbeat(instance, seconds_ago: float = 0.0) -> None:
    instance.add_daemon_heartbeat(
        DaemonHeartbeat(time.time() - seconds_ago, "QUEUED_RUN_COORDINATOR", "test-daemon", None)
    )


def test_a_queued_build_counts_while_the_daemons_queue_runs(instance):
    queued = _add_run(instance, DagsterRunStatus.QUEUED)
    _add_run(instance, DagsterRunStatus.QUEUED, pools=())  # a run that never opens the warehouse
    assert runner.runs_ahead() == []  # no daemon: nobody will start it, so nobody waits for it
    _queue_heartbeat(instance, seconds_ago=runner.QUEUE_SILENT_SECONDS + 30)
    assert runner.runs_ahead() == []  # a daemon stopped a while ago
    _queue_heartbeat(instance)
    assert [run.run_id for run in runner.runs_ahead()] == [queued.run_id]
    message = runner.describe_runs_ahead(runner.runs_ahead())
    assert f"Lauf {queued.run_id[:8]}" in message and "Sensor landing_sensor" in message
    assert "in der Warteschlange" in message


def test_a_build_a_sensor_tick_has_just_created_counts_before_it_is_queued(instance, monkeypatch):
    """A sensor's tick creates a run and then hands it to the queue: a `zi build` deciding in between once built
    the delivery itself, and the sensor's build built it again."""
    created = _add_run(instance, DagsterRunStatus.NOT_STARTED)
    assert created.status == DagsterRunStatus.NOT_STARTED
    assert runner.runs_ahead() == []  # no daemon: nobody will queue it
    _queue_heartbeat(instance)
    assert [run.run_id for run in runner.runs_ahead()] == [created.run_id]
    assert "wird eingereiht" in runner.describe_runs_ahead(runner.runs_ahead())
    monkeypatch.setattr(runner, "UNSUBMITTED_SECONDS", 0)
    assert runner.runs_ahead() == []  # left behind by a tick that failed: nobody will queue it


def test_a_running_build_counts_while_its_process_lives(instance):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    _add_run(instance, DagsterRunStatus.STARTED, {RUN_PID_TAG: gone.stdout.strip(), RUN_HOST_TAG: host})
    assert runner.runs_ahead() == []  # killed: run monitoring marks it failed, nobody waits for it
    alive = _add_run(instance, DagsterRunStatus.STARTED, {RUN_PID_TAG: str(os.getpid()), RUN_HOST_TAG: host})
    assert [run.run_id for run in runner.runs_ahead()] == [alive.run_id]


def test_zi_build_waits_until_the_runs_ahead_finished_or_its_time_is_up(instance):
    _queue_heartbeat(instance)
    queued = _add_run(instance, DagsterRunStatus.QUEUED)
    with pytest.raises(runner.RunsAhead) as busy:
        runner.wait_for_runs_ahead(deadline=time.monotonic() + 0.5, poll_seconds=0.1)
    assert queued.run_id[:8] in str(busy.value) and busy.value.runs[0].run_id == queued.run_id

    def finish() -> None:
        time.sleep(1.0)
        instance.report_run_canceled(instance.get_run_by_id(queued.run_id))

    finisher = threading.Thread(target=finish)
    finisher.start()
    started = time.monotonic()
    runner.wait_for_runs_ahead(deadline=time.monotonic() + 60, poll_seconds=0.1)
    finisher.join()
    assert 0.9 <= time.monotonic() - started < 30
