"""Section 9 of the quarterly report, "Änderungen gegenüber dem Berichtsstand <Quartal>": the figures that
changed since the last frozen quarter, old and new value, and the deliveries that explain them.

What belongs here: the summary per municipality and the list of changed figures from
``marts.mart_restatements`` (built when publishing, ``zi_warehouse/restatements.py``), labelled with the
German column descriptions of the marts. Which Berichtsstand the release compares with comes from the
mart's rows, or, when nothing changed, from the manifest of the release being reported on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from zi_warehouse import warehouse
from zi_warehouse.reports.quarterly.figures import DataTable, Figure, Section, mart_number

TABLE = "mart_restatements"
#: Rows listed in the report; the rest are in the mart (the note says how to query them).
MAX_LISTED = 400
MART_LABELS = {
    "mart_kpi_municipality_year": "KPI",
    "mart_budget_municipality_year": "Mittelverwendung",
    "mart_trees_municipality_year": "Bäume",
    "mart_pipeline_municipality_quarter": "Projektpipeline",
}
CHANGE_KINDS = {"files_added": "neu", "files_replaced": "ersetzt", "files_removed": "entfernt"}


def section_restatements(con, frozen: bool = False) -> Section:
    quarter = _reporting_quarter(con)
    title = (
        f"Änderungen gegenüber dem Berichtsstand {quarter}"
        if quarter
        else "Änderungen gegenüber dem letzten Berichtsstand"
    )
    section = Section(
        "restatements",
        title,
        intro=(
            "Kennzahlen je Kommune und Zeitraum (KPI, Mittelverwendung, Bäume, Projektpipeline), deren Wert sich "
            "seit dem eingefrorenen Berichtsstand geändert hat: Wert damals, Wert jetzt, Differenz und die seither "
            "neuen, ersetzten oder entfernten Dateien, die die Änderung erklären (Dateien, deren Zeilen die "
            "Kommune betreffen und in die Kennzahl eingehen). Quelle: marts.mart_restatements."
        ),
    )
    if not warehouse.table_exists(con, "marts", TABLE):
        section.notes.append("Dieser Stand enthält noch keine Änderungsliste (veröffentlicht vor den Berichtsständen).")
        return section
    if quarter is None:
        section.notes.append(
            "Dies ist der erste eingefrorene Berichtsstand: Die Berichte danach listen hier, was sich gegenüber "
            "diesem Stand geändert hat."
            if frozen
            else "Kein früherer Berichtsstand zum Vergleich: Änderungen werden ab dem ersten eingefrorenen "
            "Berichtsstand gelistet (das Datenteam friert den Stand eines Quartals nach dessen Ende mit "
            "„zi report --quarter JJJJ-Qn“ ein)."
        )
        return section
    rows = warehouse.rows(
        con, f"select * from marts.{TABLE} order by mart, municipality_name, period, breakdown, figure"
    )
    if not rows:
        section.notes.append(f"Keine Kennzahl hat sich seit dem Berichtsstand {quarter} geändert.")
        return section
    labels = _figure_labels(con)
    summary = DataTable(
        ["Kommune", "geänderte Kennzahlen", "Zeiträume", "erklärende Dateien"],
        [],
        key="restatements_summary",
        caption="Änderungen je Kommune",
    )
    per_municipality: dict[str, list[dict]] = {}
    for r in rows:
        per_municipality.setdefault(r["municipality_name"] or r["municipality_key"], []).append(r)
    for name, changes in sorted(per_municipality.items()):
        files = sorted({f for r in changes for column in CHANGE_KINDS for f in _files(r[column])})
        periods = sorted({r["period"] for r in changes})
        summary.rows.append(
            [
                name,
                Figure(f"restatements_count_{changes[0]['municipality_key']}", len(changes)),
                _span(periods),
                "; ".join(files) or "keine (Code oder Referenzdaten geändert)",
            ]
        )
    section.figures = [
        Figure("restatements_total", len(rows)),
        Figure("restatements_municipalities", len(per_municipality)),
    ]
    detail = DataTable(
        ["Kommune", "Zeitraum", "Bereich", "Kennzahl", "Berichtsstand", "jetzt", "Differenz", "erklärt durch"],
        [],
        key="restatements_detail",
        caption="Geänderte Kennzahlen",
    )
    listed = sorted(rows, key=_weight, reverse=True)[:MAX_LISTED]
    listed.sort(key=lambda r: (r["municipality_name"] or "", r["period"], r["mart"], r["breakdown"] or "", r["figure"]))
    for r in listed:
        key = _key(r)
        decimals = 0 if all(v is None or float(v).is_integer() for v in (r["old_value"], r["new_value"])) else 2
        area = MART_LABELS.get(r["mart"], r["mart"]) + (f" ({r['breakdown']})" if r["breakdown"] else "")
        detail.rows.append(
            [
                r["municipality_name"] or r["municipality_key"],
                r["period"],
                area,
                labels.get((r["mart"], r["figure"]), r["figure"]),
                Figure(f"{key}_old", mart_number(r["old_value"]), decimals),
                Figure(f"{key}_new", mart_number(r["new_value"]), decimals),
                Figure(f"{key}_difference", mart_number(r["difference"]), decimals),
                _explanation(r),
            ]
        )
    section.tables = [summary, detail]
    if len(rows) > len(listed):
        section.notes.append(
            f"Aufgeführt sind die {len(listed)} größten von {len(rows)} Änderungen (nach relativer Differenz). "
            f'Alle: zi sql "select * from marts.{TABLE}" (oder --out aenderungen.xlsx).'
        )
    if any(r["code_changed"] for r in rows):
        section.notes.append(
            "Seit dem Berichtsstand wurde auch der Code oder das dbt-Projekt geändert: eine Änderung "
            "ohne erklärende Datei kommt von dort (Berechnung, Referenzdaten)."
        )
    return section


def _reporting_quarter(con) -> str | None:
    """The Berichtsstand compared with: from the mart, else from the manifest beside the database file."""
    if warehouse.table_exists(con, "marts", TABLE):
        row = con.execute(f"select any_value(reporting_quarter) from marts.{TABLE}").fetchone()
        if row and row[0]:
            return row[0]
    path = con.execute("select path from duckdb_databases() where database_name = current_database()").fetchone()
    if not path or not path[0]:
        return None
    try:
        manifest = json.loads((Path(path[0]).resolve().parent / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (manifest.get("reporting_release") or {}).get("quarter")


def _figure_labels(con) -> dict[tuple[str, str], str]:
    """German column descriptions of the compared marts, shortened to their first clause."""
    out = {}
    for table, column, comment in con.execute(
        "select table_name, column_name, comment from duckdb_columns() where schema_name = 'marts' "
        "and comment is not null and database_name = current_database()"
    ).fetchall():
        out[(table, column)] = " ".join(comment.split())
    return out


def _files(value: str | None) -> list[str]:
    return [f for f in (value or "").split("; ") if f]


def _explanation(row: dict) -> str:
    parts = [f"{label}: {'; '.join(_files(row[column]))}" for column, label in CHANGE_KINDS.items() if row[column]]
    return " · ".join(parts) or ("keine Datei (Code geändert)" if row["code_changed"] else "keine Datei")


def _weight(row: dict) -> float:
    old, new = row["old_value"], row["new_value"]
    if old is None or new is None:
        return float("inf")
    return abs(new - old) / max(abs(old), abs(new), 1e-9)


def _key(row: dict) -> str:
    parts = ["restatement", row["mart"], row["figure"], row["municipality_key"] or "", row["period"] or ""]
    if row["breakdown"]:
        parts.append(row["breakdown"])
    return re.sub(r"[^0-9A-Za-z_-]+", "_", "_".join(parts)).strip("_")


def _span(periods: list[str]) -> str:
    return periods[0] if len(periods) == 1 else f"{periods[0]} bis {periods[-1]}"
