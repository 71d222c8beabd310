"""Forecast workbooks: the municipalities' quarterly project forecasts (landing/forecasts/, .xlsx as sent).

Source contract (docs/architecture.md): reads every new or changed file with ``forecasts.reader``,
validates all parsed rows of the batch in one Great Expectations run (``forecasts.validation``), and
returns one FileResult per file: good rows in ``forecasts__projects`` (the primary table: one row per
project row) with their per-quarter payments in ``forecasts__payment_forecasts`` and one row per file in
``forecasts__submissions``; every bad row as rejections with file, sheet, row, column, value, rule and a
German message. A byte-identical copy of a file already delivered is refused as ``duplicate_delivery``.
"""

from __future__ import annotations

from typing import Iterable

import pyarrow as pa

from zi_warehouse.accounting import FileResult, Rejection
from zi_warehouse.forecasts import validation
from zi_warehouse.forecasts.reader import FileFailure, ParsedFile, read_file
from zi_warehouse.landing import LandedFile

SOURCE_FAMILY = "forecasts"

PROJECTS = "forecasts__projects"
PAYMENTS = "forecasts__payment_forecasts"
SUBMISSIONS = "forecasts__submissions"

RAW_TABLES = {
    PROJECTS: pa.schema([
        pa.field("submission_id", pa.string()),
        pa.field("municipality_key", pa.string()),  # the submission's municipality (= the row's, validated)
        pa.field("reporting_period", pa.string()),  # 'YYYY-Qn'
        pa.field("reporting_year", pa.int64()),
        pa.field("reporting_quarter", pa.int64()),
        pa.field("template_version", pa.string()),
        pa.field("project_id", pa.string()),
        pa.field("title", pa.string()),
        pa.field("municipality_name_found", pa.string()),  # as written in the row, before alias matching
        pa.field("measure_type_key", pa.string()),
        pa.field("status_key", pa.string()),
        pa.field("total_cost_eur", pa.float64()),
        pa.field("requested_funding_eur", pa.float64()),
        pa.field("funding_rate", pa.float64()),  # fraction 0..1
        pa.field("planned_application_period", pa.string()),  # 'YYYY-Qn'
        pa.field("planned_start_date", pa.date32()),
        pa.field("planned_completion_date", pa.date32()),
        pa.field("expected_disconnected_area_m2", pa.float64()),
        pa.field("affected_surface_type", pa.string()),
        pa.field("surface_change_m2", pa.float64()),
        pa.field("expected_trees", pa.int64()),
        pa.field("is_in_designated_area", pa.bool_()),
        pa.field("designated_area_name", pa.string()),
        pa.field("contact_name", pa.string()),  # personal: raw layer only
        pa.field("contact_email", pa.string()),  # personal: raw layer only
        pa.field("remarks", pa.string()),
    ]),
    PAYMENTS: pa.schema([
        pa.field("submission_id", pa.string()),
        pa.field("project_id", pa.string()),
        pa.field("payment_period", pa.string()),  # 'YYYY-Qn'
        pa.field("forecast_payment_eur", pa.float64()),
    ]),
    SUBMISSIONS: pa.schema([
        pa.field("submission_id", pa.string()),
        pa.field("municipality_key", pa.string()),
        pa.field("reporting_period", pa.string()),
        pa.field("reporting_year", pa.int64()),
        pa.field("reporting_quarter", pa.int64()),
        pa.field("template_version", pa.string()),
        pa.field("submitted_on", pa.date32()),  # the 'Stand:' date in the workbook, if given
        pa.field("revision", pa.int64()),  # from the file name ('_korrektur2' -> 2), 0 for the first delivery
        pa.field("file_hash", pa.string()),
        pa.field("municipality_in_file_name", pa.string()),
        pa.field("period_in_file_name", pa.string()),
    ]),
}

_PROJECT_COLUMNS = [f.name for f in RAW_TABLES[PROJECTS]]
_STATE = {"loaded", "partially_loaded", "rejected"}


def submission_id(parsed: ParsedFile, file_hash: str) -> str:
    """Stable per delivered content: municipality, period and the first 12 hex digits of the file hash."""
    return f"{parsed.municipality_key}_{parsed.reporting_period}_{file_hash[:12]}"


def _duplicate_of(f: LandedFile, all_files: list[LandedFile], ledger: dict[str, dict]) -> str | None:
    """The file this one is a byte-identical copy of, if that one counts as the delivery."""
    same = [g for g in all_files if g.file_hash == f.file_hash]
    if len(same) < 2:
        return None

    def rank(g: LandedFile):
        entry = ledger.get(g.source_file)
        loaded = entry is not None and entry["file_hash"] == g.file_hash and entry["outcome"] in _STATE
        return (0 if loaded else 1, g.source_file)

    primary = min(same, key=rank)
    return None if primary.source_file == f.source_file else primary.source_file


def read_files(files: list[LandedFile], context) -> Iterable[FileResult]:
    parsed: list[tuple[LandedFile, FileResult, ParsedFile | None]] = []
    for f in files:
        result = FileResult(SOURCE_FAMILY, f.source_file, f.file_hash, file_size_bytes=f.size_bytes,
                            primary_tables=(PROJECTS,))
        duplicate = _duplicate_of(f, context.all_files, context.ledger)
        if duplicate:
            result.fail(f"Diese Datei ist identisch mit der bereits gelieferten Datei '{duplicate}'; "
                        "sie wurde nicht noch einmal geladen (keine Änderung).", rule="duplicate_delivery")
            parsed.append((f, result, None))
            continue
        try:
            pf = read_file(f.path, f.source_file)
        except FileFailure as exc:
            result.fail(exc.message_de, rule=exc.rule)
            parsed.append((f, result, None))
            continue
        result.municipality_key = pf.municipality_key
        result.period = pf.reporting_period
        result.rows_read = len(pf.rows)
        parsed.append((f, result, pf))

    # One validation run for the whole batch; lineage columns attribute each failure to its row.
    records, owners = [], []
    for _, _, pf in parsed:
        if pf is None:
            continue
        for row in pf.rows:
            v = row.values
            records.append({
                "_source_file": pf.source_file, "_row_number": row.row_number,
                "submission_municipality_key": pf.municipality_key,
                "_min_payment_eur": min(row.payments.values()) if row.payments else None,
                **{c: v.get(c) for c in validation.COLUMNS if c != "submission_municipality_key"},
            })
            owners.append((pf, row))
    for failure in validation.validate(records):
        pf, row = owners[failure.index]
        row.errors.append(Rejection(row.row_number, failure.column, failure.value, failure.rule,
                                    failure.message_de, pf.sheet))

    for f, result, pf in parsed:
        if pf is not None:
            _assemble(result, pf)
        yield result


def _assemble(result: FileResult, pf: ParsedFile) -> None:
    sid = submission_id(pf, result.file_hash)
    lineage = {"_source_file": pf.source_file, "_sheet": pf.sheet}
    projects, payments = [], []
    for row in pf.rows:
        if row.errors:
            pid = row.values.get("project_id")
            for e in row.errors:
                if pid:  # the sender finds the row by its project id faster than by its number
                    e = Rejection(e.row_number, e.column, e.value_found, e.rule, f"Projekt {pid}: {e.message_de}", e.sheet)
                result.rejections.append(e)
            continue
        v = row.values
        trees = v.get("expected_trees")
        projects.append({
            **{c: v.get(c) for c in _PROJECT_COLUMNS},
            "submission_id": sid, "municipality_key": pf.municipality_key,
            "reporting_period": pf.reporting_period, "reporting_year": pf.reporting_year,
            "reporting_quarter": pf.reporting_quarter, "template_version": pf.template_version,
            "expected_trees": None if trees is None else int(trees),
            **lineage, "_row_number": row.row_number,
        })
        for period, amount in sorted(row.payments.items()):
            payments.append({"submission_id": sid, "project_id": v["project_id"], "payment_period": period,
                             "forecast_payment_eur": amount, **lineage, "_row_number": row.row_number})
    result.rejections.extend(pf.file_notices)
    schema_p = _with_lineage(RAW_TABLES[PROJECTS])
    result.tables[PROJECTS] = pa.Table.from_pylist(projects, schema=schema_p)
    result.tables[PAYMENTS] = pa.Table.from_pylist(payments, schema=_with_lineage(RAW_TABLES[PAYMENTS]))
    if projects:
        result.tables[SUBMISSIONS] = pa.Table.from_pylist([{
            "submission_id": sid, "municipality_key": pf.municipality_key,
            "reporting_period": pf.reporting_period, "reporting_year": pf.reporting_year,
            "reporting_quarter": pf.reporting_quarter, "template_version": pf.template_version,
            "submitted_on": pf.submitted_on, "revision": pf.revision, "file_hash": result.file_hash,
            "municipality_in_file_name": pf.municipality_in_file_name,
            "period_in_file_name": pf.period_in_file_name, **lineage, "_row_number": None,
        }], schema=_with_lineage(RAW_TABLES[SUBMISSIONS]))


def _with_lineage(schema: pa.Schema) -> pa.Schema:
    from zi_warehouse.warehouse import with_lineage

    return with_lineage(schema)

