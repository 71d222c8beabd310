"""Run the whole build in-process (what ``zi build`` and ``make run`` do) and report what happened.

In-process execution: one Python process, the warehouse opened by one step at a time, no executor
start-up cost per step. The data team's scheduled runs use the same job through ``dagster dev``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import uuid

from dagster import DagsterEventType, DagsterInstance


@dataclass
class BuildReport:
    success: bool
    run_id: str
    failed_steps: list[str] = field(default_factory=list)
    published_steps: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    checks_warned: list[str] = field(default_factory=list)


def run_build(progress: Callable[[str], None] = lambda _m: None) -> BuildReport:
    from dagster_zi.definitions import defs  # imported here: the CLI must start fast without Dagster

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
        result = job.execute_in_process(instance=instance, run_id=run_id, raise_on_error=False)
    finally:
        done.set()
        watcher.join()
    report = BuildReport(success=result.success, run_id=run_id)
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
