"""Dagster asset keys of dbt models, for checks and assets defined outside the dbt assets.

Belongs here: turning a dbt model name into the key the dbt assets give it (``dagster_zi/dbt.py``). The
keys of raw tables come from ``dagster_zi.sources.raw_asset_keys``.
"""

from __future__ import annotations

from dagster import AssetKey

#: The schema dagster-dbt puts first in a model's key, by the model's name prefix (dbt_project.yml).
_SCHEMA_BY_PREFIX = {"stg_": "staging", "int_": "intermediate"}


def dbt_model_key(model: str) -> AssetKey:
    """The Dagster key of dbt model ``model``, as the dbt assets define it (``[schema, model]``)."""
    try:
        from dagster_dbt import get_asset_key_for_model

        from dagster_zi.dbt import zi_dbt_assets

        return get_asset_key_for_model([zi_dbt_assets], model)
    except Exception:  # noqa: BLE001 - no manifest yet (fresh clone before `make setup`): dagster-dbt's default key
        schema = next((s for p, s in _SCHEMA_BY_PREFIX.items() if model.startswith(p)), "marts")
        return AssetKey([schema, model])
