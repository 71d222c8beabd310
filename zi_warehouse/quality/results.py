"""Result records of the controlling layer and their history table ``raw.data_quality_results``.

What belongs here: the record (one per run, source, municipality and check), its table schema, and
appending a run to the history. The dbt model ``marts.mart_data_quality`` reads this table; its staging
view creates the table when it is missing (same columns as ``RESULTS_SCHEMA``; a test keeps them equal).

Example values are a few values that failed, as text, never from personal columns (``contact_*``):
the marts hold no personal data and the reconciliations only select keys and amounts.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from zi_warehouse.warehouse import RAW_SCHEMA, rows

RESULTS_TABLE = "data_quality_results"
#: Fully qualified name of the history table in the working warehouse.
RESULTS_QUALIFIED = f"{RAW_SCHEMA}.{RESULTS_TABLE}"
#: At most this many example values are kept per record (enough to find the rows, small enough to read).
MAX_EXAMPLES = 5
#: Columns whose values must never appear as examples.
PERSONAL_COLUMN_PREFIXES = ("contact_",)

SEVERITIES = ("error", "warn")
OUTCOMES = ("passed", "failed")
CHECK_KINDS = ("suite", "reconciliation", "freshness")

RESULTS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("run_started_at", pa.timestamp("us", tz="UTC")),
        pa.field("check_kind", pa.string()),
        pa.field("source", pa.string()),
        pa.field("municipality_key", pa.string()),
        pa.field("check_name", pa.string()),
        pa.field("description_de", pa.string()),
        pa.field("severity", pa.string()),
        pa.field("rows_evaluated", pa.int64()),
        pa.field("rows_failed", pa.int64()),
        pa.field("outcome", pa.string()),
        pa.field("example_values", pa.string()),
        pa.field("message_de", pa.string()),
    ]
)


@dataclass
class CheckResult:
    """One check's result for one source and one municipality (``municipality_key`` None = region-wide)."""

    check_kind: str
    source: str
    check_name: str
    severity: str
    description_de: str
    rows_evaluated: int
    rows_failed: int
    municipality_key: str | None = None
    examples: list = field(default_factory=list)
    message_de: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}: {self.severity}")
        if self.check_kind not in CHECK_KINDS:
            raise ValueError(f"check_kind must be one of {CHECK_KINDS}: {self.check_kind}")

    @property
    def passed(self) -> bool:
        return self.rows_failed == 0

    @property
    def outcome(self) -> str:
        return "passed" if self.passed else "failed"

    def record(self, run_id: str, run_started_at: dt.datetime) -> dict:
        examples = [_example_text(v) for v in self.examples[:MAX_EXAMPLES]]
        return {
            "run_id": run_id,
            "run_started_at": run_started_at,
            "check_kind": self.check_kind,
            "source": self.source,
            "municipality_key": self.municipality_key,
            "check_name": self.check_name,
            "description_de": self.description_de,
            "severity": self.severity,
            "rows_evaluated": int(self.rows_evaluated),
            "rows_failed": int(self.rows_failed),
            "outcome": self.outcome,
            "example_values": json.dumps(examples, ensure_ascii=False) if examples else None,
            "message_de": self.message_de or None,
        }


def _example_text(value) -> str:
    if isinstance(value, dict):
        value = ", ".join(f"{k}={v}" for k, v in value.items() if not str(k).startswith(PERSONAL_COLUMN_PREFIXES))
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."


def new_run_id() -> str:
    return uuid.uuid4().hex


def ensure_results_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {RAW_SCHEMA}")
    empty = RESULTS_SCHEMA.empty_table()  # noqa: F841 - referenced by name in SQL
    con.execute(f"create table if not exists {RESULTS_QUALIFIED} as select * from empty")


def append_results(
    con: duckdb.DuckDBPyConnection,
    results: list[CheckResult],
    run_id: str | None = None,
    run_started_at: dt.datetime | None = None,
) -> str:
    """Append one run's records to the history (earlier runs stay); returns the run id."""
    run_id = run_id or new_run_id()
    run_started_at = run_started_at or dt.datetime.now(dt.UTC)
    ensure_results_table(con)
    if con.execute(f"select count(*) from {RESULTS_QUALIFIED} where run_id = ?", [run_id]).fetchone()[0]:
        # A retried step of the same run replaces its own records instead of doubling them.
        con.execute(f"delete from {RESULTS_QUALIFIED} where run_id = ?", [run_id])
    batch = pa.Table.from_pylist([r.record(run_id, run_started_at) for r in results], schema=RESULTS_SCHEMA)  # noqa: F841
    con.execute(f"insert into {RESULTS_QUALIFIED} by name select * from batch")
    return run_id


def run_records(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict]:
    return rows(
        con, f"select * from {RESULTS_QUALIFIED} where run_id = ? order by check_name, municipality_key", [run_id]
    )


def latest_run_id(con: duckdb.DuckDBPyConnection) -> str | None:
    row = con.execute(f"select run_id from {RESULTS_QUALIFIED} order by run_started_at desc, run_id limit 1").fetchone()
    return row[0] if row else None
