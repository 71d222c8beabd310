"""The one Dagster entry point: assembles assets, checks, sensors, schedules, resources and the executor.

Per-family wiring lives in the sibling modules (``forecasts``, ``funding``, ``climate``,
``trees_surfaces``); each exports ``assets``, ``asset_checks``, ``sensors``, ``schedules`` and ``jobs``.
How runs execute (one process, one writer per data directory) is ``execution.py``.
"""

from __future__ import annotations

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    JobDefinition,
    ScheduleDefinition,
)

from dagster_zi import (
    alerts,
    climate,
    forecasts,
    funding,
    housekeeping,
    landing,
    publish,
    quality,
    reports,
    serving,
    sources,
    trees_surfaces,
)
from dagster_zi.constants import BUILD_JOB
from dagster_zi.dbt import dbt_resource, zi_dbt_assets
from dagster_zi.execution import warehouse_executor
from dagster_zi.jobs import build_all_job
from zi_warehouse.german import LOCAL_TIME_ZONE

#: Modules exporting assets, asset_checks, sensors, schedules and jobs.
FAMILY_MODULES = (forecasts, funding, climate, trees_surfaces, quality, serving, reports)

daily_build_schedule = ScheduleDefinition(
    name="daily_warehouse_build",
    job=build_all_job,
    cron_schedule="0 6 * * *",
    execution_timezone=LOCAL_TIME_ZONE.key,
    default_status=DefaultScheduleStatus.RUNNING,
    description=(
        "Täglicher Gesamtlauf um 06:00: alle Quellen, auch die Förderdatenbank (Extrakt kommt täglich), "
        "dbt mit Tests, Prüfungen, Veröffentlichung, Berichte."
    ),
)


def family_selection(families: list[str]) -> AssetSelection:
    """The assets a delivery to ``families`` affects: their raw tables and everything downstream."""
    return AssetSelection.groups(*families).downstream()


def build_definitions() -> Definitions:
    return Definitions(
        assets=[
            *sources.assets,
            zi_dbt_assets,
            *publish.assets,
            *(a for m in FAMILY_MODULES for a in m.assets),
        ],
        asset_checks=[*sources.asset_checks, *(c for m in FAMILY_MODULES for c in m.asset_checks)],
        jobs=[build_all_job, *housekeeping.jobs, *(j for m in FAMILY_MODULES for j in m.jobs)],
        schedules=[daily_build_schedule, *housekeeping.schedules, *(s for m in FAMILY_MODULES for s in m.schedules)],
        sensors=[*landing.sensors, *alerts.sensors, *(s for m in FAMILY_MODULES for s in m.sensors)],
        resources={"dbt": dbt_resource},
        executor=warehouse_executor,
    )


defs = build_definitions()


def build_job() -> JobDefinition:
    """The build job, by a name ``zi build`` can reconstruct it from (``dagster.reconstructable``)."""
    return defs.resolve_job_def(BUILD_JOB)
