"""The controlling layer: data-quality suites on every public mart, cross-source reconciliations,
freshness of the deliveries, and the history table they append to (``raw.data_quality_results``).

``run_all`` runs every check once over the working warehouse and returns the result records; the
Dagster asset ``data_quality_results`` (dagster_zi/quality.py) and the tests call it. The asset passes a
plan (``reuse.py``) so that the suites of marts unchanged since their last validation are not run again.
"""

from __future__ import annotations

import datetime as dt

import duckdb


def run_all(con: duckdb.DuckDBPyConnection, today: dt.date | None = None, suite_plan=None) -> list:
    """Every suite, reconciliation and freshness check over the working warehouse (after ``dbt build``).

    With ``suite_plan`` (``reuse.plan``) only its suites run; the unchanged marts' last records are added."""
    from zi_warehouse.quality.freshness import run_freshness
    from zi_warehouse.quality.reconciliations import run_reconciliations
    from zi_warehouse.quality.suites import run_suites

    if suite_plan is None:
        suite_records = run_suites(con)
    else:
        suite_records = [*run_suites(con, tuple(suite_plan.to_run)), *suite_plan.reused]
    return [*suite_records, *run_reconciliations(con), *run_freshness(con, today)]
