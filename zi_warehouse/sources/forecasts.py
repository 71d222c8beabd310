"""Forecast workbooks: the municipalities' quarterly project forecasts (landing/forecasts/, .xlsx as sent).

Source contract (docs/architecture.md): reads every new or changed file with ``forecasts.reader``,
checks all parsed rows of the batch at once with the vectorised row rules (``forecasts.validation``), and
returns one FileResult per file: good rows in ``forecasts__projects`` (the primary table: one row per
project row) with their per-quarter payments in ``forecasts__payment_forecasts`` and one row per file in
``forecasts__submissions``; every bad row as rejections with file, sheet, row, column, value, rule and a
German message. A byte-identical copy of a file already delivered is refused as ``duplicate_delivery``.
A file rejected as a whole still carries the municipality and quarter it names (``reader.Sender``; a copy:
those of the delivery it repeats), so its feedback is filed with its sender's.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pyarrow as pa

from zi_warehouse.accounting import PROJECT_PREFIX, FileResult, Rejection
from zi_warehouse.forecasts import parsing as p
from zi_warehouse.forecasts import validation
from zi_warehouse.forecasts.reader import FileFailure, ParsedFile, Sender, read_file
from zi_warehouse.landing import LandedFile

SOURCE_FAMILY = "forecasts"

PROJECTS = "forecasts__projects"
PAYMENTS = "forecasts__payment_forecasts"
SUBMISSIONS = "forecasts__submissions"

RAW_TABLES = {
    PROJECTS: pa.schema(
        [
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
        ]
    ),
    PAYMENTS: pa.schema(
        [
            pa.field("submission_id", pa.string()),
            pa.field("project_id", pa.string()),
            pa.field("payment_period", pa.string()),  # 'YYYY-Qn'
            pa.field("forecast_payment_eur", pa.float64()),
        ]
    ),
    SUBMISSIONS: pa.schema(
        [
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
        ]
    ),
}

_STATE = {"loaded", "partially_loaded", "rejected"}


def submission_id(parsed: ParsedFile, file_hash: str) -> str:
    """Stable per delivered content: municipality, period and the first 12 hex digits of the file hash."""
    return f"{parsed.municipality_key}_{parsed.reporting_period}_{file_hash[:12]}"


def _duplicate_of(f: LandedFile, same_hash: dict[str, list[LandedFile]], ledger: dict[str, dict]) -> str | None:
    """The file this one is a byte-identical copy of, if that one counts as the delivery."""
    same = same_hash.get(f.file_hash, ())
    if len(same) < 2:
        return None

    def rank(g: LandedFile):
        entry = ledger.get(g.source_file)
        loaded = entry is not None and entry["file_hash"] == g.file_hash and entry["outcome"] in _STATE
        return (0 if loaded else 1, g.source_file)

    primary = min(same, key=rank)
    return None if primary.source_file == f.source_file else primary.source_file


def read_files(files: list[LandedFile], context) -> Iterable[FileResult]:
    # Reading creates millions of short-lived cells but no reference cycles; the cyclic garbage collector
    # would otherwise scan every live object of the process (Dagster, pandas) again and again while we
    # read (about a fifth of the reader's time at scale 1). Paused only while this batch is read.
    enabled = gc.isenabled()
    gc.disable()
    try:
        results = _read_batch(files, context)
    finally:
        if enabled:
            gc.enable()
    yield from results


def _read_batch(files: list[LandedFile], context) -> list[FileResult]:
    parsed: list[tuple[LandedFile, FileResult, ParsedFile | None]] = []
    same_hash: dict[str, list[LandedFile]] = {}
    for g in context.all_files:
        same_hash.setdefault(g.file_hash, []).append(g)
    duplicates: dict[str, str] = {}  # copy -> the delivery it repeats
    for f in files:
        result = FileResult(
            SOURCE_FAMILY, f.source_file, f.file_hash, file_size_bytes=f.size_bytes, primary_tables=(PROJECTS,)
        )
        duplicate = _duplicate_of(f, same_hash, context.ledger)
        if duplicate:
            result.fail(
                f"Diese Datei ist identisch mit der bereits gelieferten Datei „{Path(duplicate).name}“; "
                "sie wurde nicht noch einmal geladen (keine Änderung).",
                rule="duplicate_delivery",
            )
            duplicates[f.source_file] = duplicate
            parsed.append((f, result, None))
            continue
        try:
            pf = read_file(f.path, f.source_file)
        except FileFailure as exc:
            result.fail(exc.message_de, rule=exc.rule)
            # Filed under the municipality and quarter the file names, so the feedback reaches its sender.
            result.municipality_key, result.period = exc.municipality_key, exc.period
            result.data_team_note = exc.data_team_note
            if exc.data_team_note:
                context.log(f"{f.source_file}: {exc.data_team_note}")
            parsed.append((f, result, None))
            continue
        result.municipality_key = pf.municipality_key
        result.period = pf.reporting_period
        result.rows_read = pf.rows_read
        parsed.append((f, result, pf))
    # A copy belongs to whoever sent the delivery it repeats (read in this batch or loaded before).
    by_file = {result.source_file: result for _, result, _ in parsed}
    for copy, original in duplicates.items():
        known = by_file.get(original)
        entry = (
            {"municipality_key": known.municipality_key, "period": known.period}
            if known
            else context.ledger.get(original) or {}
        )
        key, period = entry.get("municipality_key"), entry.get("period")
        if key is None:  # the original is not identified either: what the copy's own name says
            sender = Sender(Path(copy).name)
            key, quarter = sender.municipality_key(), sender.period()
            period = p.quarter_label(*quarter) if quarter else None
        by_file[copy].municipality_key, by_file[copy].period = key, period

    # The row rules once for the whole batch, on the columns of all parsed files one after another; the
    # position in the batch attributes each failure to its file and row.
    files_ok = [pf for _, _, pf in parsed if pf is not None]
    columns: dict[str, list] = {c: [] for c in validation.COLUMNS}
    columns["_min_payment_eur"] = []
    owners: list[tuple[ParsedFile, int]] = []
    for pf in files_ok:
        n = pf.rows_read
        for c in validation.COLUMNS:
            columns[c].extend([pf.municipality_key] * n if c == "submission_municipality_key" else pf.column(c))
        columns["_min_payment_eur"].extend(None if not pay else min(pay.values()) for pay in pf.payments)
        owners.extend((pf, k) for k in range(n))
    for failure in validation.validate(columns):
        pf, k = owners[failure.index]
        pf.errors.setdefault(k, []).append(
            Rejection(pf.row_numbers[k], failure.column, failure.value, failure.rule, failure.message_de, pf.sheet)
        )

    tables = _assemble(parsed)
    for _f, result, pf in parsed:
        if pf is not None:
            result.tables.update(tables.pop(result.source_file))
            result.rejections.extend(_rejections(pf))
    return [result for _, result, _ in parsed]


def _rejections(pf: ParsedFile) -> list[Rejection]:
    """Every rejected row's reasons, in row order, then the notices about the file itself."""
    out = []
    project_ids = pf.column("project_id")
    for k in sorted(pf.errors):
        pid = project_ids[k]
        for e in pf.errors[k]:
            if pid:  # the sender finds the row by its project id faster than by its number
                e = replace(e, message_de=PROJECT_PREFIX.format(pid) + e.message_de, project_id=pid)
            out.append(e)
    out.extend(pf.file_notices)
    return out


def _assemble(parsed: list[tuple[LandedFile, FileResult, ParsedFile | None]]) -> dict[str, dict[str, pa.Table]]:
    """The good rows of all files as three Arrow tables built column by column, sliced per file (no copy).

    Returns source_file -> {table: that file's rows}; the submission row only for a file with a loaded row.
    """
    project_cols: dict[str, list] = {c: [] for c in _PROJECT_SCHEMA.names}
    payment_cols: dict[str, list] = {c: [] for c in _PAYMENT_SCHEMA.names}
    submission_cols: dict[str, list] = {c: [] for c in _SUBMISSION_SCHEMA.names}
    spans: list[tuple[str, int, int, int, int, bool]] = []  # file, project start/count, payment start/count
    for _, result, pf in parsed:
        if pf is None:
            continue
        sid = submission_id(pf, result.file_hash)
        good = [k for k in range(pf.rows_read) if k not in pf.errors]
        n = len(good)
        p_start, pay_start = len(project_cols["_row_number"]), len(payment_cols["_row_number"])
        constants = {
            "submission_id": sid,
            "municipality_key": pf.municipality_key,
            "reporting_period": pf.reporting_period,
            "reporting_year": pf.reporting_year,
            "reporting_quarter": pf.reporting_quarter,
            "template_version": pf.template_version,
            "_source_file": pf.source_file,
            "_sheet": pf.sheet,
        }
        all_good = n == pf.rows_read
        for c, out in project_cols.items():
            if c in constants:
                out.extend([constants[c]] * n)
            elif c == "_row_number":
                out.extend(pf.row_numbers if all_good else [pf.row_numbers[k] for k in good])
            else:
                values = pf.column(c)
                out.extend(values if all_good else [values[k] for k in good])
        project_ids = pf.column("project_id")
        for k in good:
            pay = pf.payments[k]
            if not pay:
                continue
            for period, amount in sorted(pay.items()):
                payment_cols["project_id"].append(project_ids[k])
                payment_cols["payment_period"].append(period)
                payment_cols["forecast_payment_eur"].append(amount)
                payment_cols["_row_number"].append(pf.row_numbers[k])
        m = len(payment_cols["_row_number"]) - pay_start
        for c in ("submission_id", "_source_file", "_sheet"):
            payment_cols[c].extend([constants[c]] * m)
        if n:
            for c, value in {
                **constants,
                "submitted_on": pf.submitted_on,
                "revision": pf.revision,
                "file_hash": result.file_hash,
                "municipality_in_file_name": pf.municipality_in_file_name,
                "period_in_file_name": pf.period_in_file_name,
                "_row_number": None,
            }.items():
                if c in submission_cols:
                    submission_cols[c].append(value)
        spans.append((result.source_file, p_start, n, pay_start, m, bool(n)))
    trees = project_cols["expected_trees"]
    project_cols["expected_trees"] = [None if t is None else int(t) for t in trees]
    projects = _table(project_cols, _PROJECT_SCHEMA)
    payments = _table(payment_cols, _PAYMENT_SCHEMA)
    submissions = _table(submission_cols, _SUBMISSION_SCHEMA)
    out, s_index = {}, 0
    for source_file, p_start, n, pay_start, m, has_submission in spans:
        tables = {PROJECTS: projects.slice(p_start, n), PAYMENTS: payments.slice(pay_start, m)}
        if has_submission:
            tables[SUBMISSIONS] = submissions.slice(s_index, 1)
            s_index += 1
        out[source_file] = tables
    return out


def _table(columns: dict[str, list], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays([pa.array(columns[f.name], f.type) for f in schema], schema=schema)


def _with_lineage(schema: pa.Schema) -> pa.Schema:
    from zi_warehouse.warehouse import with_lineage

    return with_lineage(schema)


_PROJECT_SCHEMA = _with_lineage(RAW_TABLES[PROJECTS])
_PAYMENT_SCHEMA = _with_lineage(RAW_TABLES[PAYMENTS])
_SUBMISSION_SCHEMA = _with_lineage(RAW_TABLES[SUBMISSIONS])
