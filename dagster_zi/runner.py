"""Run the whole build in-process (what ``zi build`` and ``make run`` do) and report what happened.

In-process execution: one Python process, the warehouse opened by one step at a time, no executor
start-up cost per step. The data team's scheduled runs use the same job through ``dagster dev``.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass, field
from typing import Callable

import uuid

from pathlib import Path

from dagster import DagsterEventType, DagsterInstance

from zi_warehouse import config

PARTIAL_PARSE = "partial_parse.msgpack"


@dataclass
class BuildReport:
    success: bool
    run_id: str
    failed_steps: list[str] = field(default_factory=list)
    published_steps: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    checks_warned: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)  # step key -> wall time (start to end)
    definitions_seconds: float = 0.0  # importing the Dagster definitions (dbt manifest, GX, all modules)


def run_build(progress: Callable[[str], None] = lambda _m: None, families: list[str] | None = None) -> BuildReport:
    """Run the build job; with ``families``, only those families' assets and everything downstream of them
    (the caller, ``zi build``, has established that nothing else changed since the last successful build)."""
    import time

    target = _dbt_target_path()
    started = time.perf_counter()
    from dagster_zi.definitions import defs  # imported here: the CLI must start fast without Dagster

    definitions_seconds = time.perf_counter() - started

    job = defs.resolve_job_def("build_warehouse")
    instance = DagsterInstance.ephemeral()
    run_id = str(uuid.uuid4())
    done = threading.Event()

    def watch() -> None:
        seen = set()
        while not done.wait(0.5):
            try:
                records = instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
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
        selection = None
        if families:
            from dagster import AssetSelection

            selection = list(AssetSelection.groups(*families).downstream().resolve(defs.resolve_asset_graph()))
        result = job.execute_in_process(instance=instance, run_id=run_id, raise_on_error=False,
                                        asset_selection=selection)
    finally:
        done.set()
        watcher.join()
    report = BuildReport(success=result.success, run_id=run_id, definitions_seconds=round(definitions_seconds, 3))
    if target is not None:
        _keep_partial_parse(target)
    report.step_seconds = _step_seconds(instance, run_id)
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE:
            report.failed_steps.append(event.step_key or "?")
        elif event.event_type == DagsterEventType.STEP_SUCCESS and event.step_key in ("published_warehouse", "published_postgres"):
            report.published_steps.append(event.step_key)
    for evaluation in result.get_asset_check_evaluations():
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        if evaluation.passed:
            report.checks_passed += 1
        elif evaluation.severity.value == "WARN":
            report.checks_warned.append(name)
        else:
            report.checks_failed.append(name)
    return report


#: dbt run folders kept per data directory (artefacts: run_results.json, compiled SQL, logs).
KEEP_DBT_RUNS = 3


def _dbt_target_path() -> Path | None:
    """dbt's target folder for this data directory (unless DBT_TARGET_PATH is set already).

    dbt re-parses the whole project when the profile differs from the one its partial-parse file was
    written with, and the profile contains the warehouse path under ZI_DATA_DIR. dagster-dbt starts every
    invocation from ``$DBT_TARGET_PATH/partial_parse.msgpack``, so one such file per data directory, kept
    current after each build (``_keep_partial_parse``), lets every later build parse only what changed.
    """
    if os.environ.get("DBT_TARGET_PATH"):
        return None
    target = config.paths().warehouse_dir / "dbt_target"
    try:
        target.mkdir(parents=True, exist_ok=True)
        seed = config.REPO_ROOT / "target" / PARTIAL_PARSE
        if not (target / PARTIAL_PARSE).exists() and seed.exists():
            shutil.copyfile(seed, target / PARTIAL_PARSE)  # first build: valid if the profile is the same
    except OSError:
        return None  # e.g. a read-only data directory: the build fails in its steps and says so in German
    os.environ["DBT_TARGET_PATH"] = str(target)
    return target


def _keep_partial_parse(target: Path) -> None:
    """Keep the newest run's partial-parse file for the next build; drop all but the newest run folders."""
    try:
        _rotate(target)
    except OSError:
        pass  # only a speed-up for the next build


def _rotate(target: Path) -> None:
    runs = sorted((d for d in target.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime, reverse=True)
    for run in runs:
        newest = run / PARTIAL_PARSE
        if newest.exists():
            tmp = target / (PARTIAL_PARSE + ".tmp")
            shutil.copyfile(newest, tmp)
            os.replace(tmp, target / PARTIAL_PARSE)
            break
    for old in runs[KEEP_DBT_RUNS:]:
        shutil.rmtree(old, ignore_errors=True)


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
