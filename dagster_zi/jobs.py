"""The build job: a home of its own because both the definitions and the landing sensor (which targets it and
the job of the feedback during a build) need the object."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from dagster_zi.constants import BUILD_JOB

#: Everything from landing files to the published warehouse.
build_all_job = define_asset_job(
    BUILD_JOB,
    selection=AssetSelection.all(),
    description="Alle Quellen laden, dbt bauen und prüfen, veröffentlichen.",
)
