"""The quality report: one self-contained German HTML page per quality run (no internet needed).

What belongs here: collecting the report's figures from the working warehouse (``report_data``) and
writing ``$ZI_DATA_DIR/reports/quality/<run>/index.html`` plus a stable copy ``reports/quality/latest/``.
The figures come from the run's records in ``raw.data_quality_results`` (exactly what
``marts.mart_data_quality`` holds for the run; the report is written even when a blocking check stops the
mart's downstream), the rejected rows from ``marts.mart_rejected_rows`` and the feedback workbooks from
``$ZI_DATA_DIR/feedback/forecasts/<municipality>/``. The template is
``templates/quality_report.html.j2`` (inline CSS, no scripts, no external fonts), rendered through the
shared Jinja set-up of ``rendering.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import duckdb

from zi_warehouse import config, reference, warehouse
from zi_warehouse.quality import results as qr
from zi_warehouse.reports.rendering import environment

TEMPLATE = "quality_report.html.j2"
FAMILY_LABELS = {"forecasts": "Prognose", "funding": "Förderdaten", "climate": "Klima", "trees": "Bäume",
                 "surfaces": "Flächen"}


@dataclass
class QualityReport:
    run_id: str
    index_path: Path
    latest_path: Path
    checks_failed: int


def _examples(text: str | None) -> list[str]:
    return json.loads(text) if text else []


def run_dir_name(run_id: str, started: dt.datetime) -> str:
    """Folder of a run: sortable start time (UTC) and the start of the run id."""
    return f"{started.astimezone(dt.timezone.utc):%Y%m%dT%H%M%SZ}_{run_id[:8]}"


def report_data(con: duckdb.DuckDBPyConnection, paths: config.Paths, run_id: str | None = None) -> dict:
    """Everything the report shows, as plain data (the template only formats it)."""
    run_id = run_id or qr.latest_run_id(con)
    records = qr.run_records(con, run_id) if run_id else []
    if not records:
        if run_id is not None and (latest := qr.latest_run_id(con)):
            run_id, records = latest, qr.run_records(con, latest)
        if not records:
            raise LookupError("Es gibt noch keine Prüfergebnisse (raw.data_quality_results ist leer).")
    started = records[0]["run_started_at"]
    failed = [r for r in records if r["outcome"] == "failed"]
    for r in records:
        r["examples"] = _examples(r["example_values"])
    run_dir = paths.reports / "quality" / run_dir_name(run_id, started)
    return {
        "run_id": run_id,
        "run_dir": run_dir,
        "run_started_at": started,
        "results": len(records),
        "failed_error": sum(r["severity"] == "error" for r in failed),
        "failed_warn": sum(r["severity"] == "warn" for r in failed),
        "is_publishing_blocked": any(r["severity"] == "error" for r in failed),
        "scorecard": _scorecard(records, _rejected_by_municipality(con), paths.feedback / "forecasts", run_dir),
        "reconciliations": _summarise(records, "reconciliation"),
        "suites": _summarise(records, "suite"),
        "freshness": _summarise(records, "freshness"),
        "failed": sorted(failed, key=lambda r: (r["severity"] != "error", r["check_name"],
                                                r["municipality_key"] or "")),
        "municipality_names": {m.key: m.name for m in reference.municipalities()},
        "data_team": _for_the_data_team(con, paths.feedback, run_dir),
    }


def _for_the_data_team(con: duckdb.DuckDBPyConnection, feedback_root: Path, run_dir: Path) -> dict:
    """Feedback whose sender no file told (``feedback/forecasts/nicht-zugeordnet/``) and the notes readers leave
    for the data team (e.g. a proposed header map entry), from ``marts.mart_ingestion_files``."""
    from zi_warehouse.forecasts.feedback import unassigned_dir

    folder = unassigned_dir(feedback_root)
    unassigned = [{"name": p.name, "href": os.path.relpath(p, run_dir).replace(os.sep, "/")}
                  for p in sorted(folder.glob("*.xlsx"))] if folder.is_dir() else []
    notes = []
    if warehouse.table_exists(con, "marts", "mart_ingestion_files") and con.execute(
            "select count(*) from information_schema.columns where table_schema = 'marts' "
            "and table_name = 'mart_ingestion_files' and column_name = 'data_team_note'").fetchone()[0]:
        notes = warehouse.rows(con, "select source_family, file_name, municipality_name, data_team_note "
                                    "from marts.mart_ingestion_files where data_team_note is not null "
                                    "order by source_family, file_name")
    return {"unassigned": unassigned, "notes": notes}


def _rejected_by_municipality(con: duckdb.DuckDBPyConnection) -> dict[str, Counter]:
    """Rejected rows per municipality, counted by "<source label>: <rule>" (none before the mart exists)."""
    rejected: dict[str, Counter] = defaultdict(Counter)
    if warehouse.table_exists(con, "marts", "mart_rejected_rows"):
        for r in warehouse.rows(con, "select municipality_key, source_family, rule, count(*) as n "
                                     "from marts.mart_rejected_rows where municipality_key is not null group by all"):
            label = f"{FAMILY_LABELS.get(r['source_family'], r['source_family'])}: {r['rule']}"
            rejected[r["municipality_key"]][label] = r["n"]
    return rejected


def _scorecard(records: list[dict], rejected: dict[str, Counter], feedback_root: Path, run_dir: Path) -> list[dict]:
    """One row per municipality: forecast delivery, rejected rows by rule, failed checks, feedback workbooks."""
    by_muni_failed: dict[str | None, Counter] = defaultdict(Counter)
    for r in records:
        if r["outcome"] == "failed":
            by_muni_failed[r["municipality_key"]][r["severity"]] += 1
    forecast_status = {r["municipality_key"]: r for r in records if r["check_name"] == "freshness.forecasts_due"}
    scorecard = []
    for m in reference.municipalities():
        status = forecast_status.get(m.key)
        if status is None:
            forecast = ("not_reporting", "meldet (noch) nicht")
        elif status["outcome"] == "passed":
            forecast = ("on_time", status["message_de"])
        else:
            forecast = ("late" if "verspätet" in (status["message_de"] or "") else "missing", status["message_de"])
        workbooks = sorted((feedback_root / m.key).glob("*.xlsx")) if (feedback_root / m.key).is_dir() else []
        scorecard.append({
            "municipality_key": m.key,
            "municipality_name": m.name,
            "forecast_state": forecast[0],
            "forecast_text": forecast[1],
            "rejected_by_rule": sorted(rejected[m.key].items(), key=lambda kv: (-kv[1], kv[0])),
            "rejected_total": sum(rejected[m.key].values()),
            "checks_failed_error": by_muni_failed[m.key]["error"],
            "checks_failed_warn": by_muni_failed[m.key]["warn"],
            "feedback": [{"name": p.name, "href": os.path.relpath(p, run_dir).replace(os.sep, "/")}
                         for p in workbooks],
        })
    return scorecard


def _summarise(records: list[dict], kind: str) -> list[dict]:
    """The checks of one kind (reconciliation, suite, freshness), each summed over its municipalities."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r["check_kind"] == kind:
            groups[r["check_name"]].append(r)
    out = []
    for name, rows in sorted(groups.items()):
        bad = [r for r in rows if r["outcome"] == "failed"]
        out.append({
            "check_name": name,
            "description_de": rows[0]["description_de"],
            "severity": rows[0]["severity"],
            "outcome": "failed" if bad else "passed",
            "rows_evaluated": sum(r["rows_evaluated"] for r in rows),
            "rows_failed": sum(r["rows_failed"] for r in rows),
            "municipalities_failed": sorted(r["municipality_key"] or "Region" for r in bad),
            "examples": [e for r in bad for e in r["examples"]][:5],
        })
    return out


def render(data: dict) -> str:
    return environment().get_template(TEMPLATE).render(**data, generated_at=dt.datetime.now(dt.timezone.utc))


def write_report(con: duckdb.DuckDBPyConnection, paths: config.Paths, run_id: str | None = None) -> QualityReport:
    """Write the run's report and replace ``latest/`` with a copy of it."""
    data = report_data(con, paths, run_id)
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
    return QualityReport(data["run_id"], index, latest, data["failed_error"] + data["failed_warn"])


def quality_report_command(run_id: str | None = None) -> QualityReport:
    """For ``zi quality-report``: the report of a run (default: the latest) from the working warehouse."""
    paths = config.paths().ensure()
    if not paths.warehouse.exists():
        raise FileNotFoundError(f"Kein Warehouse unter {paths.warehouse}: zuerst `zi build`.")
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        return write_report(con, paths, run_id)
    finally:
        con.close()
