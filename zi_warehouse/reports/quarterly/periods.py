"""The reporting quarter: parsing ``JJJJ-Qn``, ordering quarters, and which quarters the marts cover.

What belongs here: everything about choosing and checking the quarter a report is for (docs/report.md,
"The reporting quarter"). Sections filter their marts with :func:`period_index`.
"""

from __future__ import annotations

import re

import duckdb

PERIOD_PATTERN = re.compile(r"^(\d{4})-Q([1-4])$")


def parse_period(period: str) -> tuple[int, int]:
    match = PERIOD_PATTERN.match(period.strip())
    if not match:
        raise ValueError(f"Ungültiges Quartal {period!r}: Format JJJJ-Qn, z. B. 2026-Q3")
    return int(match.group(1)), int(match.group(2))


def period_index(period: str) -> int:
    """A running number of the quarter (``year * 4 + quarter - 1``), the same expression the sections' SQL uses."""
    year, quarter = parse_period(period)
    return year * 4 + quarter - 1


def available_periods(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Quarters the marts cover (the pipeline mart's calendar runs to the latest data of any source)."""
    rows = con.execute(
        "select distinct period, year, quarter from marts.mart_pipeline_municipality_quarter order by year, quarter"
    ).fetchall()
    return [r[0] for r in rows]


def resolve_period(con: duckdb.DuckDBPyConnection, period: str | None) -> str:
    """``period`` checked against the marts' calendar; without one, the latest quarter with data."""
    periods = available_periods(con)
    if not periods:
        raise ValueError("Das veröffentlichte Warehouse enthält noch keine Quartale (Pipeline-Mart ist leer).")
    if period is None:
        return periods[-1]
    parse_period(period)
    if period not in periods:
        raise ValueError(f"Für {period} liegen keine Daten vor; verfügbar: {periods[0]} bis {periods[-1]}")
    return period
