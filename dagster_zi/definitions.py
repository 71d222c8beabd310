"""The one Dagster entry point: assembles assets, checks, sensors, schedules and resources.

Per-family wiring lives in the sibling modules (``forecasts``, ``funding``, ``climate``,
``trees_surfaces``); each exports ``assets``, ``asset_checks``, ``sensors``, ``schedules`` and ``jobs``.
"""

from __future__ import annotations

from dagster import AssetSelection, Definitions, ScheduleDefinition, define_asset_job

from dagster_zi import climate, forecasts, funding, publish, quality, reports, serving, sources, trees_surfaces
from dagster_zi.dbt import dbt_resource, zi_dbt_assets

#: Modules exporting assets, asset_checks, sensors, schedules and jobs.
FAMILY_MODULES = (forecasts, funding, climate, trees_surfaces, quality, serving, reports)

#: Everything from landing files to the published warehouse.
build_all_job = define_asset_job(
    "build_warehouse",
    selection=AssetSelection.all(),
    description="Alle Quellen laden, dbt bauen und prüfen, veröffentlichen.",
)

daily_build_schedule = ScheduleDefinition(
    name="daily_warehouse_build",
    job=build_all_job,
    cron_schedule="0 6 * * *",
    execution_timezone="Europe/Berlin",
    description="Täglicher Gesamtlauf um 06:00 (Förderdaten-Extrakt kommt täglich).",
)


def build_definitions() -> Definitions:
    return Definitions(
        assets=[
            *sources.assets,
            zi_dbt_assets,
            *publish.assets,
            *(a for m in FAMILY_MODULES for a in m.assets),
        ],
        asset_checks=[*sources.asset_checks, *(c for m in FAMILY_MODULES for c in m.asset_checks)],
        jobs=[build_all_job, *(j for m in FAMILY_MODULES for j in m.jobs)],
        schedules=[daily_build_schedule, *(s for m in FAMILY_MODULES for s in m.schedules)],
        sensors=[s for m in FAMILY_MODULES for s in m.sensors],
        resources={"dbt": dbt_resource},
    )


defs = build_definitions()
