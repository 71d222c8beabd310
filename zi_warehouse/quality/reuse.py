"""The marts' suites run only on marts that changed: an unchanged mart keeps its last results.

What belongs here: the content hash of each mart a suite validates, the table that records which hash (and
which code) each mart's last validation saw (``raw.data_quality_suite_inputs``), and turning the last run's
records of an unchanged mart into this run's records.

Why it is exact: a suite's result depends only on the mart's rows and on the code and reference data that
define the suite. When the mart's content hash (``warehouse.content_hash``: columns and an order-independent
hash of every row) and the code fingerprint (``build_state.code_fingerprint``: Python code and the dbt
project with its seeds) are both the ones of the last validation, validating again would give the same
records, so they are copied into this run instead (a one-workbook delivery changes a few marts; the other
suites cost nothing). Reconciliations and freshness always run: they read raw tables and the clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb

from zi_warehouse import warehouse
from zi_warehouse.quality.results import RESULTS_QUALIFIED, CheckResult, ensure_results_table
from zi_warehouse.quality.suites import MARTS_SCHEMA, MartSuite, existing_marts

INPUTS_TABLE = f"{warehouse.RAW_SCHEMA}.data_quality_suite_inputs"


@dataclass
class SuitePlan:
    """Which suites run now and which keep their last results, and the inputs to record after the run."""

    to_run: list[MartSuite]
    reused: list[CheckResult] = field(default_factory=list)
    reused_marts: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)  # mart -> fingerprint of what its suite saw


def fingerprint(con: duckdb.DuckDBPyConnection, mart: str, code: dict) -> str:
    rows, columns, total = warehouse.content_hash(con, f"{MARTS_SCHEMA}.{warehouse.quote_ident(mart)}")
    return json.dumps([rows, columns, total, code.get("code"), code.get("dbt")])


def plan(con: duckdb.DuckDBPyConnection, specs: tuple[MartSuite, ...]) -> SuitePlan:
    """Split ``specs`` into the suites to run and the records of unchanged marts' last validation."""
    from zi_warehouse.build_state import code_fingerprint

    code = code_fingerprint()
    present = existing_marts(con)
    result = SuitePlan(to_run=[])
    last = _last_inputs(con)
    for spec in specs:
        if spec.mart not in present:
            result.to_run.append(spec)  # run_suites reports the missing mart
            continue
        now = fingerprint(con, spec.mart, code)
        result.inputs[spec.mart] = now
        seen = last.get(spec.mart)
        records = _records(con, seen[1], spec.mart) if seen and seen[0] == now else []
        if records:
            result.reused.extend(records)
            result.reused_marts.append(spec.mart)
        else:
            result.to_run.append(spec)
    return result


def remember(con: duckdb.DuckDBPyConnection, suite_plan: SuitePlan, run_id: str) -> None:
    """Record what each suite of run ``run_id`` saw (call after its records are appended)."""
    _ensure_inputs_table(con)
    con.execute(f"delete from {INPUTS_TABLE}")
    if suite_plan.inputs:
        con.executemany(
            f"insert into {INPUTS_TABLE} values (?, ?, ?)",
            [[mart, fp, run_id] for mart, fp in sorted(suite_plan.inputs.items())],
        )


def _ensure_inputs_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {warehouse.RAW_SCHEMA}")
    con.execute(f"create table if not exists {INPUTS_TABLE} (mart varchar, fingerprint varchar, run_id varchar)")


def _last_inputs(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str]]:
    if not warehouse.table_exists(con, warehouse.RAW_SCHEMA, INPUTS_TABLE.split(".")[1]):
        return {}
    return {
        r["mart"]: (r["fingerprint"], r["run_id"])
        for r in warehouse.rows(con, f"select mart, fingerprint, run_id from {INPUTS_TABLE}")
    }


def _records(con: duckdb.DuckDBPyConnection, run_id: str, mart: str) -> list[CheckResult]:
    """The suite records of ``mart`` in run ``run_id``, as results to append to this run."""
    ensure_results_table(con)
    found = warehouse.rows(
        con,
        f"select * from {RESULTS_QUALIFIED} where run_id = ? and check_kind = 'suite' "
        "and source = ? order by check_name, municipality_key",
        [run_id, mart],
    )
    return [
        CheckResult(
            check_kind=r["check_kind"],
            source=r["source"],
            check_name=r["check_name"],
            severity=r["severity"],
            description_de=r["description_de"],
            rows_evaluated=r["rows_evaluated"],
            rows_failed=r["rows_failed"],
            municipality_key=r["municipality_key"],
            examples=json.loads(r["example_values"]) if r["example_values"] else [],
            message_de=r["message_de"] or "",
        )
        for r in found
    ]
