"""The climate family's Dagster wiring: checks with their severities (DWD archives arrive via the landing sensor)."""

from __future__ import annotations

from dagster import AssetKey

from dagster_zi import climate


def test_checks_and_severities():
    specs = {spec.name: spec for check in climate.asset_checks for spec in check.check_specs}
    assert set(specs) == {
        "climate_station_list_parses",
        "climate_daily_values_plausible",
        "climate_no_duplicate_days",
        "climate_data_current",
    }
    assert specs["climate_station_list_parses"].blocking and specs["climate_no_duplicate_days"].blocking
    assert not specs["climate_daily_values_plausible"].blocking and not specs["climate_data_current"].blocking
    assert specs["climate_station_list_parses"].asset_key == AssetKey(["raw_climate", "climate__stations"])
    assert specs["climate_daily_values_plausible"].asset_key == AssetKey(["raw_climate", "climate__daily"])
    assert specs["climate_no_duplicate_days"].asset_key.path[-1] == "int_climate__daily"
    assert climate.assets == [] and climate.sensors == [] and climate.schedules == [] and climate.jobs == []
