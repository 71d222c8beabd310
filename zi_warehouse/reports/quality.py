"""The quality report: one self-contained German HTML page per quality run (no internet needed).

What belongs here: collecting the report's figures from the working warehouse (``report_data``) and
writing ``$ZI_DATA_DIR/reports/quality/<run>/index.html`` plus a stable copy ``reports/quality/latest/``.
The figures come from the run's records in ``raw.data_quality_results`` (exactly what
``marts.mart_data_quality`` holds for the run; the report is written even when a blocking check stops the
mart's downstream), the rejected rows from ``marts.mart_rejected_rows`` and the feedback workbooks from
``$ZI_DATA_DIR/feedback/forecasts/<municipality>/`` (those naming no municipality, and the readers' notes for
the data team, in a section of their own). The template is
``templates/quality_report.html.j2`` (inline CSS, no scripts, no external fonts), rendered through the
shared Jinja set-up of ``rendering.py``.

The page is read top-down: what blocks publishing, what warns, which forecasts are late or missing and the
rejected rows per source (the summary), then one row per municipality, then the details of every
municipality with a finding (anchor ``#kommune-<key>``), the region-wide results and all checks of the run.
Rules, checks and sources are shown with their German labels (``labels.py``); keys stay in ``data-*``
attributes for tests and tools. It fits a 1280 px laptop window and prints on A4.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from zi_warehouse import build_state, config, reference, warehouse
from zi_warehouse.quality import results as qr
from zi_warehouse.reports.labels import (
    asset_check_explanation,
    asset_check_label,
    check_explanation,
    check_kind_label,
    check_label,
    family_label,
    rule_label,
    source_label,
)
from zi_warehouse.reports.rendering import environment

TEMPLATE = "quality_report.html.j2"


@dataclass
class QualityReport:
    run_id: str
    index_path: Path
    latest_path: Path
    checks_failed: int  # blocking ones and warnings
    checks_warned: int = 0  # of them, warnings
    blocked_by_run_id: str | None = None  # a later run stopped by a blocking check before its quality step


#: The state of a municipality's latest due forecast, as the overview shows it.
FORECAST_STATES = {
    "on_time": "fristgerecht",
    "late": "verspätet",
    "missing": "fehlt",
    "not_reporting": "meldet (noch) nicht",
}
#: Example values shown per check (the mart keeps up to five per record).
EXAMPLES_SHOWN = 3


def _examples(text: str | None) -> list[str]:
    return json.loads(text) if text else []


def run_dir_name(run_id: str, started: dt.datetime) -> str:
    """Folder of a run: sortable start time (UTC) and the start of the run id."""
    return f"{started.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}_{run_id[:8]}"


@dataclass(frozen=True)
class PipelineCheck:
    """A Dagster asset check of the pipeline (outside mart_data_quality) whose latest evaluation failed."""

    asset_key: str  # as the Dagster UI writes it, e.g. "intermediate/int_funding__approvals"
    check_name: str
    severity: str  # "error" | "warn"
    checked_at: dt.datetime
    description: str | None = None
    run_id: str | None = None  # the run that evaluated it (an earlier one if this run did not)


def _pipeline_checks(checks: Sequence[PipelineCheck], severity: str) -> list[dict]:
    """One entry per check (a check of several assets, e.g. the funding delta sequence on each of its six raw
    tables, once), with the evaluations it stands for (``evaluations``, what the counts add up), the newest one's
    time, run and description (the check's own words: which files, which rows)."""
    grouped: dict[str, list[PipelineCheck]] = defaultdict(list)
    for c in checks:
        if c.severity == severity:
            grouped[c.check_name].append(c)
    out = []
    for name, found in sorted(grouped.items(), key=lambda kv: (min(c.asset_key for c in kv[1]), kv[0])):
        newest = max(found, key=lambda c: c.checked_at)
        out.append(
            {
                "check_name": name,
                "label": asset_check_label(name, newest.description),
                "explanation": asset_check_explanation(name),
                "description": newest.description,
                "asset_keys": sorted(c.asset_key for c in found),
                "evaluations": len(found),
                "checked_at": newest.checked_at,
                "run_id": newest.run_id,
                "run_ids": {c.run_id for c in found},
            }
        )
    return out


def report_data(
    con: duckdb.DuckDBPyConnection,
    paths: config.Paths,
    run_id: str | None = None,
    pipeline_checks: Sequence[PipelineCheck] = (),
) -> dict:
    """Everything the report shows, as plain data (the template only formats it). ``pipeline_checks``: the
    failed Dagster checks outside the marts' suites (funding, trees, climate, dbt tests), which count with
    the suites' results in what blocks and what warns."""
    run_id = run_id or qr.latest_run_id(con)
    records = qr.run_records(con, run_id) if run_id else []
    if not records:
        if run_id is not None and (latest := qr.latest_run_id(con)):
            run_id, records = latest, qr.run_records(con, latest)
        if not records:
            raise LookupError("Es gibt noch keine Prüfergebnisse (raw.data_quality_results ist leer).")
    started = records[0]["run_started_at"]
    names = {m.key: m.name for m in reference.municipalities()}
    for r in records:
        r["examples"] = _examples(r["example_values"])
        r["label"] = check_label(r["check_name"], r["description_de"])
        r["where"] = names.get(r["municipality_key"], r["municipality_key"]) if r["municipality_key"] else "regionweit"
        r["source_label"] = source_label(r["source"])
    failed = [r for r in records if r["outcome"] == "failed"]
    pipeline_blocking, pipeline_warnings = (
        _pipeline_checks(pipeline_checks, "error"),
        _pipeline_checks(pipeline_checks, "warn"),
    )
    # A later run stopped by a blocking check before its quality step (``zi quality-report`` after it): the report
    # is that run's, with the marts' results of this one; it gets that run's folder, this run's stays as it was.
    blocked_by = max(
        (
            {"run_id": c["run_id"], "checked_at": c["checked_at"]}
            for c in pipeline_blocking
            if run_id not in c["run_ids"] and c["checked_at"] >= started
        ),
        key=lambda b: b["checked_at"],
        default=None,
    )
    run_dir = (
        paths.reports
        / "quality"
        / (
            run_dir_name(blocked_by["run_id"], blocked_by["checked_at"])
            if blocked_by and blocked_by["run_id"]
            else run_dir_name(run_id, started)
        )
    )
    scorecard = _scorecard(
        records,
        _rejected_by_municipality(con),
        _rejected_rows_by_municipality(con),
        paths.feedback / "forecasts",
        run_dir,
    )
    return {
        "run_id": run_id,
        "run_dir": run_dir,
        "run_started_at": started,
        "blocked_by": blocked_by,
        "results": len(records),
        "failed_error": sum(r["severity"] == "error" for r in failed)
        + sum(c["evaluations"] for c in pipeline_blocking),
        "failed_warn": sum(r["severity"] == "warn" for r in failed) + sum(c["evaluations"] for c in pipeline_warnings),
        # A blocking check stops publishing in the run that evaluated it: this one, or a later one that stopped before
        # its own checks (this report is then the latest there is, `zi quality-report`); an earlier failure is shown.
        "is_publishing_blocked": any(r["severity"] == "error" for r in failed)
        or blocked_by is not None
        or any(run_id in c["run_ids"] for c in pipeline_blocking),
        "pipeline_blocking": pipeline_blocking,
        "pipeline_warnings": pipeline_warnings,
        "blocking": _failed_by_check(failed, "error"),
        "warnings": _failed_by_check(failed, "warn"),
        "forecasts_late": [s for s in scorecard if s["forecast_state"] in ("late", "missing")],
        "forecasts_not_reporting": [s for s in scorecard if s["forecast_state"] == "not_reporting"],
        "rejected_by_family": _rejected_by_family(con),
        "files_refused": _files_refused(con),
        "scorecard": scorecard,
        "details": [s for s in scorecard if s["has_findings"]],
        "without_findings": [s for s in scorecard if not s["has_findings"]],
        "regional_failed": sorted((r for r in failed if not r["municipality_key"]), key=_failed_order),
        "reconciliations": _summarise(records, "reconciliation", names),
        "suites": _summarise(records, "suite", names),
        "freshness": _summarise(records, "freshness", names),
        "municipality_names": names,
        "data_team": _for_the_data_team(con, paths.feedback, run_dir),
    }


def _for_the_data_team(con: duckdb.DuckDBPyConnection, feedback_root: Path, run_dir: Path) -> dict:
    """Feedback whose sender no file told (``feedback/forecasts/nicht-zugeordnet/``) and the notes readers leave
    for the data team (e.g. a proposed header map entry), from ``marts.mart_ingestion_files``."""
    from zi_warehouse.forecasts.feedback import unassigned_dir

    folder = unassigned_dir(feedback_root)
    unassigned = (
        [
            {"name": p.name, "href": os.path.relpath(p, run_dir).replace(os.sep, "/")}
            for p in sorted(folder.glob("*.xlsx"))
        ]
        if folder.is_dir()
        else []
    )
    notes = []
    if (
        warehouse.table_exists(con, "marts", "mart_ingestion_files")
        and con.execute(
            "select count(*) from information_schema.columns where table_schema = 'marts' "
            "and table_name = 'mart_ingestion_files' and column_name = 'data_team_note'"
        ).fetchone()[0]
    ):
        notes = warehouse.rows(
            con,
            "select source_family, file_name, municipality_name, data_team_note "
            "from marts.mart_ingestion_files where data_team_note is not null "
            "order by source_family, file_name",
        )
    return {"unassigned": unassigned, "notes": notes}


def _failed_order(r: dict) -> tuple:
    return (r["severity"] != "error", r["label"], r["where"])


def _failed_by_check(failed: list[dict], severity: str) -> list[dict]:
    """Failed records of one severity, one entry per check with the municipalities (or 'regionweit') hit."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in failed:
        if r["severity"] == severity:
            groups[r["check_name"]].append(r)
    out = [
        {
            "check_name": name,
            "label": rows[0]["label"],
            "explanation": check_explanation(name),
            "kind": check_kind_label(rows[0]["check_kind"]),
            "where": [
                {"key": r["municipality_key"], "name": r["where"]} for r in sorted(rows, key=lambda r: r["where"])
            ],
            "rows_failed": sum(r["rows_failed"] for r in rows),
        }
        for name, rows in groups.items()
    ]
    return sorted(out, key=lambda g: (-len(g["where"]), g["label"]))


def _rejected_rows_by_municipality(con: duckdb.DuckDBPyConnection) -> dict[str, Counter]:
    """Rejected rows (each row once, however many reasons it has; file notices are no rows) per municipality
    and source family: the figure the ingestion ledger calls rows rejected."""
    counts: dict[str, Counter] = defaultdict(Counter)
    if warehouse.table_exists(con, "marts", "mart_rejected_rows"):
        for key, family, n in con.execute(
            "select municipality_key, source_family, "
            "count(distinct (source_file, sheet, row_number)) filter (where row_number is not null) "
            "from marts.mart_rejected_rows where municipality_key is not null group by all"
        ).fetchall():
            counts[key][family] = n
    return counts


def _rejected_by_municipality(con: duckdb.DuckDBPyConnection) -> dict[str, list[dict]]:
    """Rejections per municipality and rule (a row with two reasons counts under both), most frequent first
    (none before the mart exists)."""
    rejected: dict[str, list[dict]] = defaultdict(list)
    if warehouse.table_exists(con, "marts", "mart_rejected_rows"):
        for r in warehouse.rows(
            con,
            "select municipality_key, source_family, rule, count(*) as n "
            "from marts.mart_rejected_rows where municipality_key is not null "
            "group by all order by n desc, source_family, rule",
        ):
            rejected[r["municipality_key"]].append(
                {
                    "family": r["source_family"],
                    "family_label": family_label(r["source_family"]),
                    "rule": r["rule"],
                    "label": rule_label(r["source_family"], r["rule"]),
                    "n": r["n"],
                }
            )
    return rejected


def _rejected_by_family(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Rejected rows per source family (each row once), of every delivery: also those no municipality is known
    for (funding extracts, DWD files), which the per-municipality view below leaves out."""
    if not warehouse.table_exists(con, "marts", "mart_rejected_rows"):
        return []
    rows = con.execute(
        "select source_family, count(distinct (source_file, sheet, row_number)), "
        "count(distinct (source_file, sheet, row_number)) filter (where municipality_key is null) "
        "from marts.mart_rejected_rows where row_number is not null group by all order by 2 desc, 1"
    ).fetchall()
    return [{"family": f, "label": family_label(f), "n": n, "unassigned": u} for f, n, u in rows]


#: Files refused as a whole that the report names one by one (the rest: mart_ingestion_files).
FILES_REFUSED_SHOWN = 20


def _files_refused(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The deliveries refused as a whole or held back (current state), with their German reason: from the ledger
    itself, which each ingest writes, so a file refused by a run that a blocking check then stopped before dbt
    (which would have rebuilt mart_ingestion_files) is listed too."""
    if not warehouse.table_exists(con, "raw", "ingestion_files"):
        return []
    refused = warehouse.rows(
        con,
        "select source_family, file_name, outcome, error_rule from raw.ingestion_files "
        "where outcome in ('failed', 'blocked') order by source_family, file_name",
    )
    out = []
    for r in refused:
        text = reference.rule_text(r["error_rule"], "rejection", r["source_family"]) if r["error_rule"] else None
        out.append(
            {
                **r,
                "reason": text.label_de if text else r["error_rule"],
                "family_label": family_label(r["source_family"]),
            }
        )
    return out


def _forecast_state(status: dict | None) -> tuple[str, str]:
    """(state, text) of the municipality's latest due forecast from its freshness.forecasts_due record."""
    if status is None:
        return "not_reporting", "Die Kommune meldet (noch) keine Prognosen."
    if status["outcome"] == "passed":
        return "on_time", status["message_de"]
    # freshness.forecasts_due writes "verspätet eingereicht am ..." for a late one, "fehlt" for a missing one
    return ("late" if "verspätet" in (status["message_de"] or "") else "missing"), status["message_de"]


def _scorecard(
    records: list[dict],
    rejected: dict[str, list[dict]],
    rejected_rows: dict[str, Counter],
    feedback_root: Path,
    run_dir: Path,
) -> list[dict]:
    """One row per municipality: forecast delivery, rejected rows by rule, failed checks, feedback workbooks."""
    failed_by_muni: dict[str | None, list[dict]] = defaultdict(list)
    for r in records:
        if r["outcome"] == "failed":
            failed_by_muni[r["municipality_key"]].append(r)
    forecast_status = {r["municipality_key"]: r for r in records if r["check_name"] == "freshness.forecasts_due"}
    scorecard = []
    # Alphabetical (umlauts as their base letters): a reader looks a municipality up by its name.
    for m in sorted(reference.municipalities(), key=lambda m: reference.normalise_name(m.name)):
        state, text = _forecast_state(forecast_status.get(m.key))
        workbooks = sorted((feedback_root / m.key).glob("*.xlsx")) if (feedback_root / m.key).is_dir() else []
        failed = sorted(failed_by_muni[m.key], key=_failed_order)
        rules = rejected[m.key]
        scorecard.append(
            {
                "municipality_key": m.key,
                "municipality_name": m.name,
                "forecast_state": state,
                "forecast_label": FORECAST_STATES[state],
                "forecast_text": text,
                "rejected_by_rule": rules,
                "rejected_rows_by_family": rejected_rows[m.key],
                "rejected_total": sum(rejected_rows[m.key].values()),
                "failed": failed,
                "checks_failed_error": sum(r["severity"] == "error" for r in failed),
                "checks_failed_warn": sum(r["severity"] == "warn" for r in failed),
                "feedback": [
                    {"name": p.name, "href": os.path.relpath(p, run_dir).replace(os.sep, "/")} for p in workbooks
                ],
                "has_findings": bool(rules or failed or workbooks or state in ("late", "missing")),
            }
        )
    return scorecard


def _summarise(records: list[dict], kind: str, names: dict[str, str]) -> list[dict]:
    """The checks of one kind (reconciliation, suite, freshness), each summed over its municipalities."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r["check_kind"] == kind:
            groups[r["check_name"]].append(r)
    out = []
    for name, rows in groups.items():
        bad = [r for r in rows if r["outcome"] == "failed"]
        out.append(
            {
                "check_name": name,
                "label": rows[0]["label"],
                "source_label": rows[0]["source_label"],
                "severity": rows[0]["severity"],
                "outcome": "failed" if bad else "passed",
                "rows_evaluated": sum(r["rows_evaluated"] for r in rows),
                "rows_failed": sum(r["rows_failed"] for r in rows),
                "municipalities_failed": sorted(r["where"] for r in bad),
                "examples": [e for r in bad for e in r["examples"]][:EXAMPLES_SHOWN],
            }
        )
    # failed first, then by what they check
    return sorted(
        out, key=lambda c: (c["outcome"] != "failed", c["severity"] != "error", c["source_label"], c["label"])
    )


def render(data: dict) -> str:
    return (
        environment()
        .get_template(TEMPLATE)
        .render(**data, generated_at=dt.datetime.now(dt.UTC), files_refused_shown=FILES_REFUSED_SHOWN)
    )


def write_report(
    con: duckdb.DuckDBPyConnection,
    paths: config.Paths,
    run_id: str | None = None,
    pipeline_checks: Sequence[PipelineCheck] = (),
) -> QualityReport:
    """Write the run's report and replace ``latest/`` with a copy of it."""
    data = report_data(con, paths, run_id, pipeline_checks)
    run_dir: Path = data["run_dir"]
    run_dir.mkdir(parents=True, exist_ok=True)
    index = run_dir / "index.html"
    tmp = index.with_suffix(".html.tmp")
    tmp.write_text(render(data), encoding="utf-8")
    os.replace(tmp, index)
    # "latest" sits at the same depth as a run folder, so the relative links to the feedback work there too.
    latest_dir = paths.reports / "quality" / "latest"
    latest_dir.mkdir(parents=True, exist_ok=True)
    latest = latest_dir / "index.html"
    shutil.copyfile(index, latest_dir / "index.html.tmp")
    os.replace(latest_dir / "index.html.tmp", latest)
    return QualityReport(
        data["run_id"],
        index,
        latest,
        data["failed_error"] + data["failed_warn"],
        checks_warned=data["failed_warn"],
        blocked_by_run_id=(data["blocked_by"] or {}).get("run_id"),
    )


def require_warehouse(paths: config.Paths) -> config.Paths:
    """``FileNotFoundError`` (German) when there is no working warehouse to report on yet."""
    if not paths.warehouse.exists():
        raise FileNotFoundError(f"Kein Warehouse unter {paths.warehouse}: zuerst zi build ausführen.")
    return paths


def quality_report_command(run_id: str | None = None, pipeline_checks: Sequence[PipelineCheck] = ()) -> QualityReport:
    """For ``zi quality-report``: the report of a run (default: the latest) from the working warehouse."""
    paths = require_warehouse(config.paths())
    paths.ensure()
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        report = write_report(con, paths, run_id, pipeline_checks)
    finally:
        con.close()
    build_state.keep_reports_in_record(paths)  # a report written by hand is no reason to build in full
    return report
