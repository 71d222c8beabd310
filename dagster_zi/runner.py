"""Run the build job from the command line (what ``zi build`` and ``make run`` do) and report what happened.

The run goes into the data directory's Dagster instance like every scheduled, sensor or UI run, and
executes in this process with the same executor (``dagster_zi.execution``): one process, one writer.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance

from zi_warehouse import config, dbt_server, writer_lock
from zi_warehouse.dbt_launcher import target_folder

#: The terminal shows progress and a German summary; Dagster's event log (in the UI) has every detail,
#: errors are still printed.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
#: Finds the run this process started (execute_job chooses the run id).
LAUNCH_ID_TAG = "zi/launch_id"


@dataclass
class BuildReport:
    success: bool
    run_id: str
    failed_steps: list[str] = field(default_factory=list)
    failure_reasons: dict[str, str] = field(default_factory=dict)  # step key -> the error that failed it
    published_steps: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    checks_warned: list[str] = field(default_factory=list)
    #: failed check (as in ``checks_failed``) -> its German description (what failed, e.g. the missing files)
    check_descriptions: dict[str, str] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)  # step key -> wall time (start to end)
    definitions_seconds: float = 0.0  # importing the Dagster definitions (dbt manifest, GX, all modules)
    alert: str = ""  # failed run: what became of its alert e-mail (German, dagster_zi/alerts.py)
    #: The PostgreSQL publish, when one ran: its German status line and its findings (e.g. a reader password
    #: the publishing account may not set), which would otherwise only be in the steps' log.
    postgres: str = ""
    postgres_findings: list[str] = field(default_factory=list)
    rebuild_note: str = ""  # a rebuild: what it took over from the previous working file (the executor's log line)


def open_instance() -> DagsterInstance:
    """The data directory's Dagster instance (written first if missing), for ``runs_ahead`` and ``run_build``.

    ``zi build`` opens it (with Dagster's import, ~2 s together) before it takes the writer lock, so that a run
    queued behind the lock or a colleague's build does not wait for that."""
    from dagster_zi.instance import ensure_instance

    ensure_instance()
    return DagsterInstance.get()


def run_build(
    progress: Callable[[str], None] = lambda _m: None,
    families: list[str] | None = None,
    launched_by: str = "zi build",
    instance: DagsterInstance | None = None,
    rebuild: bool = False,
) -> BuildReport:
    """Run the build job in this process, in the data directory's Dagster instance (so the UI shows it);
    with ``families``, only those families' assets and everything downstream of them (the caller has
    established that nothing else changed since the last successful build); ``rebuild``: a whole build from a
    new working file that keeps the histories (``REBUILD_TAG``, done by the executor).

    The job's executor (``dagster_zi.execution``) holds the writer lock and records the build state; the
    caller normally holds the lock already (``zi build`` waits for it before deciding what to build).
    """

    from dagster import RunsFilter, execute_job, reconstructable

    from dagster_zi.constants import FAMILIES_TAG, LAUNCHED_BY_TAG, REBUILD_TAG

    instance = instance or open_instance()
    dbt = _warm_dbt()
    started = time.perf_counter()
    from dagster_zi.definitions import build_job, defs, family_selection  # the CLI must start fast without Dagster

    definitions_seconds = time.perf_counter() - started
    launch_id = str(uuid.uuid4())
    tags = {LAUNCHED_BY_TAG: launched_by, LAUNCH_ID_TAG: launch_id}
    selection = None
    if rebuild:
        tags[REBUILD_TAG] = "true"
    if families:
        tags[FAMILIES_TAG] = ",".join(families)
        selection = sorted(family_selection(families).resolve(defs.resolve_asset_graph()))
    done = threading.Event()
    found: dict[str, str] = {}

    def watch() -> None:
        seen = set()
        while not done.wait(0.5):
            try:
                if "run_id" not in found:
                    runs = instance.get_runs(filters=RunsFilter(tags={LAUNCH_ID_TAG: launch_id}), limit=1)
                    if not runs:
                        continue
                    found["run_id"] = runs[0].run_id
                    progress(f"Lauf {found['run_id'][:8]}")
                records = instance.all_logs(found["run_id"], of_type=DagsterEventType.STEP_START)
            except Exception:  # noqa: BLE001 - progress display only
                continue
            for record in records:
                step = record.step_key
                if step and step not in seen:
                    seen.add(step)
                    progress(f"läuft: {step}")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with execute_job(
            reconstructable(build_job),
            instance=instance,
            tags=tags,
            asset_selection=selection,
            run_config=QUIET_CONSOLE,
        ) as result:
            report = _report(instance, result, definitions_seconds)
    finally:
        done.set()
        watcher.join()
        if dbt is not None:
            dbt_server.stop(*dbt)
            os.environ.pop(dbt_server.SOCKET_ENV, None)
    if not report.success:
        report.alert = _alert(instance, report.run_id)
    return report


#: Seconds without a heartbeat after which the daemon's queue is taken for stopped (it beats every 30 s):
#: a queued run then starts when someone starts ``zi serve`` again, and is not waited for.
QUEUE_SILENT_SECONDS = 60
#: A run a sensor tick or the UI has created but not yet handed to the queue (a few milliseconds, normally; longer
#: when the daemon is slow) counts for this long after its creation; an older one was left by a tick that failed.
UNSUBMITTED_SECONDS = 30


class RunsAhead(writer_lock.WriterBusy):
    """Runs of the deployment that will write the warehouse have not finished (``zi build`` did not wait, or
    waited in vain): busy like a held writer lock, named by the runs."""

    def __init__(self, runs: list):
        self.runs = runs
        self.holder, self.waited_seconds = None, 0.0
        Exception.__init__(self, describe_runs_ahead(runs))


def runs_ahead(instance: DagsterInstance | None = None) -> list:
    """Runs of the data directory's Dagster instance that will write the warehouse and have not finished.

    Queued or being launched while the daemon is alive (or just created by a sensor's tick or the UI, about to
    be queued), or running in a process that is alive: a landing sensor's build queued behind its feedback run,
    the scheduled build. ``zi build`` waits for them rather
    than building the same delivery first and leaving them to build it a second time. A run whose process
    is gone, or that waits for a daemon that is not running, is not waited for (run monitoring marks the
    first failed; the second starts when ``zi serve`` runs again).
    """
    from dagster import DagsterRunStatus, RunsFilter
    from dagster._core.storage.tags import POOL_TAG_PREFIX
    from dagster._daemon.controller import get_daemon_statuses

    from dagster_zi.constants import RUN_HOST_TAG, RUN_PID_TAG, WAREHOUSE_POOL
    from dagster_zi.run_worker import process_alive

    instance = instance or open_instance()
    statuses = [
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
    ]
    records = instance.get_run_records(
        RunsFilter(statuses=statuses, tags={f"{POOL_TAG_PREFIX}{WAREHOUSE_POOL}": "true"})
    )
    if not records:
        return []
    queue = get_daemon_statuses(
        instance,
        ["QUEUED_RUN_COORDINATOR"],
        ignore_errors=True,
        heartbeat_interval_seconds=0,
        heartbeat_tolerance_seconds=QUEUE_SILENT_SECONDS,
    )["QUEUED_RUN_COORDINATOR"]
    ahead = []
    for record in reversed(records):  # oldest first: the order they will run in
        run = record.dagster_run
        pid, host = run.tags.get(RUN_PID_TAG), run.tags.get(RUN_HOST_TAG)
        if run.status == DagsterRunStatus.STARTED and pid:  # its executor runs (or ran) in that process
            coming = host != socket.gethostname() or process_alive(int(pid))
        elif run.status == DagsterRunStatus.NOT_STARTED:  # created, about to be queued
            coming = bool(queue.healthy) and time.time() - record.create_timestamp.timestamp() < UNSUBMITTED_SECONDS
        else:  # queued or being launched: only the daemon moves it on
            coming = bool(queue.healthy)
        if coming:
            ahead.append(run)
    return ahead


_STATUS_DE = {
    "NOT_STARTED": "wird eingereiht",
    "QUEUED": "in der Warteschlange",
    "STARTING": "startet",
    "STARTED": "läuft",
}


def describe_runs_ahead(runs: list) -> str:
    """German: which runs of the deployment are still to come, e.g. for ``zi build`` waiting for them."""
    from dagster_zi.execution import launched_by_de

    parts = [
        f"Lauf {run.run_id[:8]} ({launched_by_de(run.tags)}, {_STATUS_DE.get(run.status.value, run.status.value)})"
        for run in runs[:3]
    ]
    more = f" und {len(runs) - 3} weitere" if len(runs) > 3 else ""
    return "Im Dagster-Betrieb steht schon ein Build an: " + "; ".join(parts) + more + "."


def wait_for_runs_ahead(deadline: float, poll_seconds: float = 1.0) -> None:
    """Return once no run is ahead (:func:`runs_ahead`); ``RunsAhead`` if some still are at ``deadline``
    (``time.monotonic()``)."""
    while True:
        ahead = runs_ahead()
        if not ahead:
            return
        if time.monotonic() >= deadline:
            raise RunsAhead(ahead)
        time.sleep(poll_seconds)


def _warm_dbt() -> tuple[int, Path] | None:
    """A dbt server for this build's dbt commands, importing dbt and parsing the project in a child process
    while this one imports Dagster (zi_warehouse/dbt_server.py). Inside a run the run worker started, its
    warm dbt is already there."""
    if os.environ.get(dbt_server.SOCKET_ENV):
        return None
    target = target_folder()
    if target is None:
        return None
    pid, path = dbt_server.serve_for_this_process(config.paths().data_dir, config.REPO_ROOT, target)
    os.environ[dbt_server.SOCKET_ENV] = str(path)
    return pid, path


def _alert(instance: DagsterInstance, run_id: str) -> str:
    """Report the failed run now: the daemon's failure sensor may not be running (it stays silent if it was first)."""
    from dagster_zi.alerts import alert_failed_run

    try:
        return alert_failed_run(instance, run_id, "zi build")
    except Exception as exc:  # noqa: BLE001 - the build's own outcome must still be printed
        return f"Benachrichtigung fehlgeschlagen: {exc}"


#: The steps that publish; a build that skipped one of them did not publish and has failed.
PUBLISH_STEPS = ("published_warehouse", "published_postgres")


def _report(instance: DagsterInstance, result, definitions_seconds: float) -> BuildReport:
    from dagster_zi.alerts import step_failure_text

    report = BuildReport(
        success=result.success, run_id=result.run_id, definitions_seconds=round(definitions_seconds, 3)
    )
    report.step_seconds = _step_seconds(instance, result.run_id)
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE:
            report.failed_steps.append(event.step_key or "?")
            report.failure_reasons[event.step_key or "?"] = step_failure_text(event)
        elif event.event_type == DagsterEventType.STEP_SUCCESS and event.step_key in PUBLISH_STEPS:
            report.published_steps.append(event.step_key)
        elif event.event_type == DagsterEventType.ENGINE_EVENT and (event.message or "").startswith("Neuaufbau:"):
            report.rebuild_note = event.message
        elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION and event.step_key == "published_postgres":
            _report_postgres(report, event.step_materialization_data.materialization.metadata)
        elif event.event_type == DagsterEventType.STEP_SKIPPED and event.step_key in PUBLISH_STEPS:
            # Dagster skips a step whose inputs were not produced (a dbt model without its event): the run
            # itself succeeds, but nothing was published, and that is a failed build.
            report.success = False
            report.failed_steps.append(f"{event.step_key} (übersprungen: vorgelagerte Ergebnisse fehlen)")
    for evaluation in result.get_asset_check_evaluations():
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        if evaluation.passed:
            report.checks_passed += 1
        elif evaluation.severity.value == "WARN":
            report.checks_warned.append(name)
        else:
            report.checks_failed.append(name)
            if evaluation.description:
                report.check_descriptions[name] = evaluation.description
    return report


def _report_postgres(report: BuildReport, metadata: dict) -> None:
    """The PostgreSQL publish's outcome from its materialization (dagster_zi/serving.py); nothing when skipped."""
    value = {name: getattr(v, "value", v) for name, v in metadata.items()}
    if value.get("status") != "veröffentlicht":
        return
    written = [m for m in str(value.get("marts_written", "")).split(", ") if m and m != "keine"]
    report.postgres = (
        f"PostgreSQL {value.get('server')}: Schema {value.get('schema')}, {len(written)} von {value.get('marts')} "
        f"Marts geschrieben, Leserolle {value.get('reader_role')}"
    )
    report.postgres_findings = [
        line[2:] for line in str(value.get("findings", "")).splitlines() if line.startswith("- ")
    ]


def _step_seconds(instance: DagsterInstance, run_id: str) -> dict[str, float]:
    """Wall time of each step from the event log (start to success/failure); for the benchmark."""
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    ends = (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE)
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not record.step_key:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            started[record.step_key] = record.timestamp
        elif event.event_type in ends and record.step_key in started:
            seconds[record.step_key] = round(record.timestamp - started[record.step_key], 3)
    return seconds
