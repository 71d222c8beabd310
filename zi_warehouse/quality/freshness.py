"""Freshness: is each source's latest delivery there, per municipality where the source is per municipality?

What belongs here: the delivery rules and the query that applies them. "Today" is a parameter (tests
pass a fixed date); the rules come from the environment:

- forecasts (per municipality): the forecast for a quarter is due ``ZI_FORECAST_DUE_DAYS`` days after
  the quarter ends (default 45). The quarter checked is the latest whose due date has passed. A
  municipality is expected to report from its first submission on (municipalities join the programme
  over time); it fails when that quarter's forecast is missing or was submitted after the due date.
- funding (region-wide, one extract for all municipalities): an extract is due daily; the latest must be
  at most ``ZI_FUNDING_MAX_AGE_DAYS`` days old (default 1). Its date is the date in the extract's name
  (``zi_foerderung_<seq>_<kind>_<YYYYMMDD>``), else the day it was loaded.
- climate (per municipality, through its assigned DWD station): data is fetched monthly; the latest
  complete day must be at most ``ZI_CLIMATE_MAX_AGE_DAYS`` days old (default 45: one month plus the
  delivery margin).

All freshness checks warn: late data makes figures older, not wrong, so publishing goes ahead and the
report shows who is overdue.
"""

from __future__ import annotations

import datetime as dt
import os
import re

import duckdb

from zi_warehouse.quality.results import CheckResult
from zi_warehouse.warehouse import rows as _rows

DEFAULT_FORECAST_DUE_DAYS = 45
DEFAULT_FUNDING_MAX_AGE_DAYS = 1
DEFAULT_CLIMATE_MAX_AGE_DAYS = 45
#: The freshness rules (all warn), as shown in Dagster.
CATALOGUE = {
    "forecasts_due": "Quartalsprognose jeder meldenden Kommune fristgerecht (ZI_FORECAST_DUE_DAYS nach Quartalsende).",
    "funding_extract_daily": "Förderdaten-Extrakt täglich (ZI_FUNDING_MAX_AGE_DAYS).",
    "climate_monthly": "Klimadaten der zugeordneten Station monatlich (ZI_CLIMATE_MAX_AGE_DAYS).",
}
_EXTRACT_DATE = re.compile(r"_(\d{8})$")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def forecast_due_days() -> int:
    return _env_int("ZI_FORECAST_DUE_DAYS", DEFAULT_FORECAST_DUE_DAYS)


def quarter_end(year: int, quarter: int) -> dt.date:
    return dt.date(year + (quarter == 4), (quarter % 4) * 3 + 1, 1) - dt.timedelta(days=1)


def due_date(year: int, quarter: int, due_days: int) -> dt.date:
    return quarter_end(year, quarter) + dt.timedelta(days=due_days)


def latest_due_quarter(today: dt.date, due_days: int) -> tuple[int, int]:
    """The latest quarter whose forecast was due on or before ``today``."""
    year, quarter = today.year, (today.month - 1) // 3 + 1
    while due_date(year, quarter, due_days) > today:
        year, quarter = (year, quarter - 1) if quarter > 1 else (year - 1, 4)
    return year, quarter


def forecasts_due(con: duckdb.DuckDBPyConnection, today: dt.date, due_days: int | None = None) -> list[CheckResult]:
    due_days = forecast_due_days() if due_days is None else due_days
    year, quarter = latest_due_quarter(today, due_days)
    period, due_on = f"{year}-Q{quarter}", due_date(year, quarter, due_days)
    rows = _rows(
        con,
        """
        with s as (select * from staging.stg_forecasts__submissions)
        select m.municipality_key,
               (select min(submitted_on) from s where s.municipality_key = m.municipality_key
                                                and s.reporting_period = ?) as submitted_on
        from marts.dim_municipality m
        where exists (select 1 from s where s.municipality_key = m.municipality_key and s.reporting_period <= ?)
        order by 1""",
        [period, period],
    )
    out = []
    for r in rows:
        submitted = r["submitted_on"]
        if submitted is None:
            message = f"Prognose {period} fehlt (fällig am {due_on:%d.%m.%Y})."
        elif submitted > due_on:
            message = f"Prognose {period} verspätet eingereicht am {submitted:%d.%m.%Y} (fällig am {due_on:%d.%m.%Y})."
        else:
            message = f"Prognose {period} fristgerecht am {submitted:%d.%m.%Y} eingereicht."
        failed = submitted is None or submitted > due_on
        out.append(
            CheckResult(
                "freshness",
                "forecasts",
                "freshness.forecasts_due",
                "warn",
                f"Quartalsprognose fristgerecht: spätestens {due_days} Tage nach Quartalsende.",
                1,
                int(failed),
                municipality_key=r["municipality_key"],
                examples=[
                    {
                        "period": period,
                        "due_on": due_on.isoformat(),
                        "submitted_on": submitted.isoformat() if submitted else None,
                    }
                ]
                if failed
                else [],
                message_de=message,
            )
        )
    return out


def funding_extract_fresh(con: duckdb.DuckDBPyConnection, today: dt.date) -> list[CheckResult]:
    max_age = _env_int("ZI_FUNDING_MAX_AGE_DAYS", DEFAULT_FUNDING_MAX_AGE_DAYS)
    rows = _rows(
        con,
        """
        select period, loaded_at from raw.ingestion_files
        where source_family = 'funding' and outcome in ('loaded', 'partially_loaded')""",
    )
    dates = []
    for r in rows:
        m = _EXTRACT_DATE.search(r["period"] or "")
        if m:
            dates.append(dt.datetime.strptime(m[1], "%Y%m%d").date())
        elif r["loaded_at"] is not None:
            dates.append(r["loaded_at"].date())
    latest = max(dates) if dates else None
    failed = latest is None or (today - latest).days > max_age
    message = (
        "Kein Förderdaten-Extrakt geladen."
        if latest is None
        else f"Letzter Förderdaten-Extrakt vom {latest:%d.%m.%Y} ({(today - latest).days} Tage alt)."
    )
    return [
        CheckResult(
            "freshness",
            "funding",
            "freshness.funding_extract_daily",
            "warn",
            f"Förderdaten-Extrakt täglich: der letzte ist höchstens {max_age} Tag(e) alt.",
            1,
            int(failed),
            examples=[{"latest_extract_on": latest.isoformat() if latest else None}] if failed else [],
            message_de=message,
        )
    ]


def climate_monthly(con: duckdb.DuckDBPyConnection, today: dt.date) -> list[CheckResult]:
    max_age = _env_int("ZI_CLIMATE_MAX_AGE_DAYS", DEFAULT_CLIMATE_MAX_AGE_DAYS)
    rows = _rows(
        con,
        """
        with latest as (select station_id, max(measured_on) as latest_on from staging.stg_climate__daily group by 1)
        select m.municipality_key, m.climate_station_id, l.latest_on
        from marts.dim_municipality m left join latest l on l.station_id = m.climate_station_id
        order by 1""",
    )
    out = []
    for r in rows:
        latest = r["latest_on"]
        failed = latest is None or (today - latest).days > max_age
        message = (
            f"Keine Klimadaten der Station {r['climate_station_id']}."
            if latest is None
            else f"Klimadaten der Station {r['climate_station_id']} bis {latest:%d.%m.%Y}."
        )
        out.append(
            CheckResult(
                "freshness",
                "climate",
                "freshness.climate_monthly",
                "warn",
                f"Klimadaten monatlich: der letzte Tag der zugeordneten Station ist höchstens {max_age} Tage alt.",
                1,
                int(failed),
                municipality_key=r["municipality_key"],
                examples=[{"station_id": r["climate_station_id"], "latest_on": latest.isoformat() if latest else None}]
                if failed
                else [],
                message_de=message,
            )
        )
    return out


def run_freshness(con: duckdb.DuckDBPyConnection, today: dt.date | None = None) -> list[CheckResult]:
    today = today or dt.date.today()
    return [*forecasts_due(con, today), *funding_extract_fresh(con, today), *climate_monthly(con, today)]
