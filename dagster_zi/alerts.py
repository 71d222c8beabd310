"""Alerts in Dagster: what a failed run's event log says, and the sensor that reports failed runs.

What belongs here: reading a failed run from the instance (failed steps with their errors, failed checks with
their German descriptions, whether the build published) into ``zi_warehouse.alerts.RunFailure``, and the
run-failure sensor. Message, sending and the once-per-run record are in ``zi_warehouse/alerts.py``.

Who reports which run:
- The sensor ``run_failure_alert`` (running by default) watches every run in the instance. Its option
  ``monitor_all_code_locations`` matters: without it Dagster's run-status sensors skip runs that carry no
  code-location origin, and runs executed by ``zi build`` (``execute_job`` in the command's own process) carry
  none; with it the sensor also reports a ``zi build`` that was killed before it could report itself.
- ``zi build`` reports its own failed run at once (``dagster_zi.runner``): on a laptop no daemon runs.
The first of the two to claim the run sends; the other one finds the claim and stays silent.
"""

from __future__ import annotations

import re
from pathlib import Path

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    RunFailureSensorContext,
    run_failure_sensor,
)

from dagster_zi.constants import BUILD_JOB
from dagster_zi.execution import launched_by_de
from zi_warehouse import alerts, config

SENSOR_NAME = "run_failure_alert"
#: Run tag set once the alert e-mail went out (the UI's run list shows it).
ALERT_TAG = "zi/alert"
#: The step whose success means the build changed the published copy.
PUBLISH_STEP = "published_warehouse"
#: Characters of a check's metadata value quoted in the mail.
DETAIL_CHARS = 600


def record_dir(instance: DagsterInstance) -> Path:
    """Where the once-per-run records live: next to the instance's ``dagster.yaml``."""
    return Path(instance.root_directory) / "alerts"


def _root_error(error) -> str:
    """The step's own error: Dagster wraps it in its execution error; an error the step raised in German about a
    library's English one (``raise ... from``) is shown, not the library's."""
    while error is not None and getattr(error, "cause", None) is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    if error is None:
        return ""
    # Python's "module.ClassName: " in front of the message says nothing to the person who reads it.
    return (
        re.sub(rf"^(?:\w+\.)*{re.escape(error.cls_name)}: ", "", error.message.strip())
        if error.cls_name
        else error.message.strip()
    )


def step_failure_text(event) -> str:
    """Why a step failed (its STEP_FAILURE event), as the alert and ``zi build`` show it: the error that started
    it; empty for a step stopped by its blocking check, whose findings say why."""
    error = event.event_specific_data.error
    return "" if error is not None and error.cls_name == "DagsterAssetCheckFailedError" else _root_error(error)


def _check_description(asset_graph, check_key) -> str:
    try:
        return asset_graph.get_check_spec(check_key).description or ""
    except Exception:  # noqa: BLE001 - a check renamed since the run: the mail still names it
        return ""


def run_failure(instance: DagsterInstance, run_id: str) -> alerts.RunFailure:
    """The facts of a failed run, from the instance's event log and the definitions' check descriptions."""
    from dagster_zi.definitions import defs  # the code location (already loaded where this runs)

    record = instance.get_run_record_by_id(run_id)
    if record is None:
        raise ValueError(f"Lauf {run_id} nicht in der Dagster-Instanz")
    run = record.dagster_run
    asset_graph = defs.resolve_asset_graph()
    failure = alerts.RunFailure(
        run_id=run_id,
        job_name=run.job_name,
        launched_by=launched_by_de(run.tags),
        data_dir=config.paths().data_dir,
        run_url=config.run_url(run_id),
        started_at=_moment(record.start_time),
        ended_at=_moment(record.end_time),
        published=False if run.job_name == BUILD_JOB else None,
    )
    wanted = {
        DagsterEventType.STEP_FAILURE,
        DagsterEventType.ASSET_CHECK_EVALUATION,
        DagsterEventType.RUN_FAILURE,
        DagsterEventType.STEP_SUCCESS,
    }
    for entry in instance.all_logs(run_id, of_type=wanted):
        event = entry.dagster_event
        if event.event_type == DagsterEventType.STEP_FAILURE:
            failure.failed_steps.append(alerts.FailedStep(event.step_key or "?", step_failure_text(event)))
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if evaluation.passed or evaluation.severity.value != "ERROR":
                continue
            failure.failed_checks.append(
                alerts.FailedCheck(
                    asset=evaluation.asset_key.to_user_string(),
                    name=evaluation.check_name,
                    description=_check_description(asset_graph, evaluation.asset_check_key),
                    blocking=bool(evaluation.blocking),
                    details={key: str(value.value)[:DETAIL_CHARS] for key, value in evaluation.metadata.items()},
                )
            )
        elif event.event_type == DagsterEventType.RUN_FAILURE:
            error = getattr(event.event_specific_data, "error", None)
            failure.run_error = _root_error(error) if error else (event.message or "")
        elif event.event_type == DagsterEventType.STEP_SUCCESS and event.step_key == PUBLISH_STEP:
            failure.published = True
    return failure


def _moment(timestamp: float | None):
    import datetime as dt

    return dt.datetime.fromtimestamp(timestamp, dt.UTC) if timestamp else None


def alert_failed_run(instance: DagsterInstance, run_id: str, by: str) -> str:
    """Report a failed run once (e-mail when configured); a German sentence saying what happened.

    Raises ``zi_warehouse.alerts.AlertConfigError`` on incomplete settings and ``RuntimeError`` when the mail
    server refused; the callers show that (sensor tick error, build summary).
    """
    settings = alerts.SmtpSettings.from_env()
    if settings is None:
        return alerts.NOT_CONFIGURED
    outcome = alerts.notify(run_failure(instance, run_id), record_dir(instance), by, settings)
    done = alerts.read_record(record_dir(instance), run_id) or {}
    if done.get("status") == "sent" and done.get("by") == by:
        instance.add_run_tags(run_id, {ALERT_TAG: f"E-Mail gesendet ({by})"})
    return outcome


@run_failure_sensor(
    name=SENSOR_NAME,
    monitor_all_code_locations=True,
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Benachrichtigt das Datenteam per E-Mail (ZI_ALERT_SMTP_HOST …), wenn ein Lauf fehlschlägt oder eine "
        "blockierende Prüfung ihn anhält: Schritt oder Prüfung, Datenverzeichnis, Link zum Lauf. Einmal je Lauf, "
        "auch für Läufe von zi build."
    ),
)
def run_failure_alert(context: RunFailureSensorContext) -> None:
    # Returning nothing lets the sensor handle every failed run of this tick (a return value ends the tick).
    outcome = alert_failed_run(context.instance, context.dagster_run.run_id, f"Sensor {SENSOR_NAME}")
    context.log.info(outcome)


sensors = [run_failure_alert]
