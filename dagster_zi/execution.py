"""How every run of this code location executes: one process, one writer at a time, the build recorded.

What belongs here: the executor all jobs use (``Definitions(executor=...)``), whoever launches the run — the
daemon for the schedule or a sensor, the UI, ``dagster job execute`` or ``zi build``:

- **In process.** Dagster's default multiprocess executor starts one process per step and each imports the
  whole code location again (about 9 s per step here; a demo build took 10 minutes from the UI). The steps
  that touch the working DuckDB file run one after another anyway (one writer per file), so one process
  runs them all, as ``zi build`` always did.
- **One writer per data directory.** A run with a step in the ``zi_warehouse`` pool holds the writer lock
  (``zi_warehouse.writer_lock``) for its whole execution. Dagster's run queue (pools with run granularity,
  ``dagster.yaml``) keeps the daemon from starting a second such run while one is in progress; the lock
  covers what the queue cannot see (a ``zi build`` started by hand, a run launched at the same moment): the
  later run waits, and says in its log which build it waits for.
- **A rebuild on request.** A whole build tagged ``zi/rebuild=true`` starts from a new working file that keeps
  only the old one's histories (``zi_warehouse.rebuild``); the old file comes back if the run ends without
  publishing.
- **The build recorded.** A complete build (the whole ``build_warehouse`` job, or the families a landing
  sensor or ``zi build`` chose) that succeeds records what it was built from (``zi_warehouse.build_state``),
  so that the next ``zi build`` or sensor tick knows what is new.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

from dagster import DagsterEvent, DagsterEventType, executor
from dagster._core.definitions.executor_definition import IN_PROC_CONFIG
from dagster._core.events import EngineEventData
from dagster._core.execution.retries import RetryMode
from dagster._core.execution.step_dependency_config import StepDependencyConfig
from dagster._core.executor.in_process import InProcessExecutor

from dagster_zi.constants import (
    BUILD_JOB,
    FAMILIES_TAG,
    LAUNCHED_BY_TAG,
    REBUILD_TAG,
    RUN_HOST_TAG,
    RUN_PID_TAG,
    WAREHOUSE_POOL,
)
from zi_warehouse import build_state, config, rebuild, writer_lock

#: The step whose success means a release was published from this run's working file.
PUBLISH_STEP = "published_warehouse"


def launched_by_de(tags: dict[str, str]) -> str:
    """Who started a run, in German, from its tags (for the lock file, alerts and messages)."""
    if tags.get(LAUNCHED_BY_TAG):
        return tags[LAUNCHED_BY_TAG]
    if tags.get("dagster/schedule_name"):
        return f"Zeitplan {tags['dagster/schedule_name']}"
    if tags.get("dagster/sensor_name"):
        return f"Sensor {tags['dagster/sensor_name']}"
    if tags.get("dagster/backfill"):
        return f"Nachlauf (Backfill) {tags['dagster/backfill']}"
    return "Dagster-UI"


def records_build_state(job_name: str, asset_selection, tags: dict[str, str], check_selection=None) -> bool:
    """A run describes the whole warehouse when it is the families a build chose, or the whole build job or
    every asset of the code location in any job (the UI's "Materialize all"), with every check (the UI can
    leave the checks out: such a run published unchecked marts and is no build to skip the next one for)."""
    if job_name == BUILD_JOB and asset_selection and tags.get(FAMILIES_TAG):
        return True
    from dagster_zi.definitions import defs  # this module is part of the definitions

    graph = defs.resolve_asset_graph()
    if check_selection is not None and not set(check_selection) >= set(graph.asset_check_keys):
        return False
    if job_name == BUILD_JOB and not asset_selection:
        return True
    return bool(asset_selection) and set(asset_selection) >= set(graph.materializable_asset_keys)


class WarehouseWriterExecutor(InProcessExecutor):
    """Dagster's in-process executor, holding the data directory's writer lock while warehouse steps run."""

    def execute(self, plan_context, execution_plan) -> Iterator[DagsterEvent]:
        tags = {RUN_PID_TAG: str(os.getpid()), RUN_HOST_TAG: socket.gethostname()}
        if not plan_context.dagster_run.tags.get(LAUNCHED_BY_TAG):  # a run from the UI or a schedule: the run
            tags[LAUNCHED_BY_TAG] = launched_by_de(plan_context.dagster_run.tags)  # list says who, as for the others
        plan_context.instance.add_run_tags(plan_context.dagster_run.run_id, tags)
        steps = [execution_plan.get_step_by_key(key) for key in execution_plan.step_keys_to_execute]
        if not any(step.pool == WAREHOUSE_POOL for step in steps):
            yield from super().execute(plan_context, execution_plan)
            return
        run = plan_context.dagster_run
        paths = config.paths().ensure()
        holder = writer_lock.current_holder(paths.warehouse_dir)
        if holder is not None and holder.pid != os.getpid():
            yield DagsterEvent.engine_event(
                plan_context, f"Wartet, bis der laufende Build fertig ist: {holder.describe_de()}.", EngineEventData()
            )
        with writer_lock.hold(paths.warehouse_dir, run.run_id, launched_by_de(run.tags)):
            writer_lock.set_run_id(paths.warehouse_dir, run.run_id)
            recording = records_build_state(run.job_name, run.asset_selection, run.tags, run.asset_check_selection)
            rebuilding = run.tags.get(REBUILD_TAG) == "true"
            if rebuilding and (not recording or run.tags.get(FAMILIES_TAG)):
                rebuilding = False
                yield DagsterEvent.engine_event(
                    plan_context,
                    f"{REBUILD_TAG}=true gilt nur für den ganzen Build (alle Assets und Prüfungen): kein Neuaufbau.",
                    EngineEventData(),
                )
            if recording:  # a failed or interrupted build leaves no record
                started_from, previous = build_state.start_recording(paths)
            if rebuilding:
                kept = rebuild.start_over(paths.warehouse)
                yield DagsterEvent.engine_event(plan_context, rebuild.started_de(kept), EngineEventData())
            failed = published = False
            checks: dict[str, str] = {}  # check -> outcome in this run
            try:
                for event in super().execute(plan_context, execution_plan):
                    if event.event_type == DagsterEventType.STEP_FAILURE:
                        failed = True
                    elif event.event_type == DagsterEventType.STEP_SUCCESS and event.step_key == PUBLISH_STEP:
                        published = True
                    elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
                        evaluation = event.event_specific_data
                        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
                        checks[name] = (
                            "passed"
                            if evaluation.passed
                            else "warned"
                            if evaluation.severity.value == "WARN"
                            else "failed"
                        )
                    yield event
            finally:  # also when the run is stopped: a rebuild that did not publish is undone
                if rebuilding:
                    rebuild.finish(paths.warehouse, published)
            if rebuilding and not published:
                yield DagsterEvent.engine_event(plan_context, rebuild.UNDONE_DE, EngineEventData())
            if recording and not failed:
                build_state.record(
                    paths,
                    build_state.as_built(started_from, previous),  # the landing as each family's ingest read it
                    {
                        "run_id": run.run_id,
                        **build_state.checks_after(previous, checks, partial=bool(run.tags.get(FAMILIES_TAG))),
                        "finished_at": build_state.now_text(),
                    },
                )


@executor(name="zi_in_process", config_schema=IN_PROC_CONFIG)
def warehouse_executor(init_context) -> WarehouseWriterExecutor:
    """In-process execution holding the data directory's writer lock (see the module docstring)."""
    executor_config = init_context.executor_config
    return WarehouseWriterExecutor(
        retries=RetryMode.from_config(executor_config["retries"]),
        step_dependency_config=StepDependencyConfig.from_config(executor_config.get("step_dependency_config")),
    )
