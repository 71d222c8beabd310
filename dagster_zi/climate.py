"""Dagster wiring of the climate family: the climate checks.

Belongs here: the asset checks with their severities. A DWD archive dropped into ``landing/climate/`` is
built by the landing sensor (``dagster_zi/landing.py``). The ingest asset ``raw_climate`` itself
comes from ``dagster_zi.sources``; reading lives in ``zi_warehouse.sources.climate``. The check logic is
in plain functions over a DuckDB connection in ``zi_warehouse.sources.climate`` (no Dagster there).

Checks:
- ``climate_station_list_parses`` (raw_climate/climate__stations, ERROR, blocking): a station list is loaded, none failed,
  no row of it was rejected, and every station with daily values is in it (otherwise no station name,
  no location, no municipality assignment);
- ``climate_daily_values_plausible`` (raw_climate/climate__daily, WARN): daily values inside physical ranges;
- ``climate_no_duplicate_days`` (int_climate__daily, ERROR, blocking): one row per station and day
  after the overlap of historical and recent archives is resolved;
- ``climate_data_current`` (raw_climate/climate__daily, WARN): the newest day of the active stations is at most
  62 days old (a monthly run should have brought a newer recent archive).
"""

from __future__ import annotations

import datetime as dt

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    asset_check,
)

from dagster_zi.constants import WAREHOUSE_POOL
from dagster_zi.keys import dbt_model_key
from zi_warehouse import config, warehouse
from zi_warehouse.sources.climate import (
    data_age_days,
    duplicate_days,
    implausible_daily_values,
    station_list_problems,
)

#: The raw tables as Dagster assets (dagster_zi.sources: one key per raw table, the same key dagster-dbt
#: gives the dbt source raw_climate.<table>).
RAW_DAILY = AssetKey(["raw_climate", "climate__daily"])
RAW_STATIONS = AssetKey(["raw_climate", "climate__stations"])

MAX_DATA_AGE_DAYS = 62


@asset_check(
    asset=RAW_STATIONS,
    blocking=True,
    pool=WAREHOUSE_POOL,
    description="DWD-Stationsliste geladen, ohne abgewiesene Zeilen, mit jeder Station der Tageswerte (blockierend).",
)
def climate_station_list_parses() -> AssetCheckResult:
    with warehouse.connect(config.paths().warehouse) as con:
        problems = station_list_problems(con)
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={"problems": len(problems), "details": "\n".join(problems[:20]) or "–"},
    )


@asset_check(
    asset=RAW_DAILY,
    blocking=False,
    pool=WAREHOUSE_POOL,
    description="Tageswerte in plausiblen Bereichen (TXK, TNK, TMK, RSK; TNK <= TXK); Warnung.",
)
def climate_daily_values_plausible() -> AssetCheckResult:
    with warehouse.connect(config.paths().warehouse) as con:
        count, examples = implausible_daily_values(con)
    return AssetCheckResult(
        passed=count == 0,
        severity=AssetCheckSeverity.WARN,
        metadata={"implausible_days": count, "examples": str(examples[:10])},
    )


@asset_check(
    asset=dbt_model_key("int_climate__daily"),
    blocking=True,
    pool=WAREHOUSE_POOL,
    description="Nach Auflösung der Überlappung genau ein Tageswert je Station und Tag (blockierend).",
)
def climate_no_duplicate_days() -> AssetCheckResult:
    with warehouse.connect(config.paths().warehouse) as con:
        count, examples = duplicate_days(con)
    return AssetCheckResult(
        passed=count == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"duplicate_station_days": count, "examples": str(examples)},
    )


@asset_check(
    asset=RAW_DAILY,
    blocking=False,
    pool=WAREHOUSE_POOL,
    description=f"Jüngster Tageswert höchstens {MAX_DATA_AGE_DAYS} Tage alt (neues aktuelles DWD-Archiv geliefert?); Warnung.",
)
def climate_data_current() -> AssetCheckResult:
    with warehouse.connect(config.paths().warehouse) as con:
        age = data_age_days(con, dt.date.today())
    return AssetCheckResult(
        passed=age is not None and age <= MAX_DATA_AGE_DAYS,
        severity=AssetCheckSeverity.WARN,
        metadata={"data_age_days": -1 if age is None else age},
    )


assets = []
asset_checks = [
    climate_station_list_parses,
    climate_daily_values_plausible,
    climate_no_duplicate_days,
    climate_data_current,
]
sensors = []
schedules = []
jobs = []
