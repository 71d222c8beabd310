"""The controlling layer: data-quality suites on every public mart, cross-source reconciliations,
freshness of the deliveries, and the history table they append to (``raw.data_quality_results``).

``run_all`` runs every check once over the working warehouse and returns the result records; the
Dagster asset ``data_quality_results`` (dagster_zi/quality.py) and the tests call it.
"""

from __future__ import annotations

import datetime as dt

import duckdb


def run_all(con: duckdb.DuckDBPyConnection, today: dt.date | None = None) -> list:
    """Every suite, reconciliation and freshness check over the working warehouse (after ``dbt build``)."""
    from zi_warehouse.quality.freshness import run_freshness
    from zi_warehouse.quality.reconciliations import run_reconciliations
    from zi_warehouse.quality.suites import run_suites

    return [*run_suites(con), *run_reconciliations(con), *run_freshness(con, today)]
