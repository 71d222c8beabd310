"""Feedback workbooks for the coordinators: per municipality and submission, the rejected rows and why.

Written from ``raw.ingestion_files`` and ``raw.rejected_rows`` (never from the landing files, so the
feedback shows exactly what the warehouse recorded) into ``<feedback>/forecasts/<municipality>/``. One
workbook per delivered file that has rejected rows, a whole-file failure or a notice about the file.
Rewriting is idempotent: the folder is made to hold exactly the current set of workbooks. A workbook
whose content is unchanged since the last run (fingerprint stored as a document property) is not
written again, so a build after one new delivery writes one workbook, not all of them.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

from zi_warehouse.forecasts.reader import column_label
from zi_warehouse.reference import municipality_by_key

FAMILY = "forecasts"
OUTCOME_DE = {
    "loaded": "vollständig übernommen",
    "partially_loaded": "teilweise übernommen",
    "rejected": "alle Zeilen abgewiesen",
    "failed": "Datei abgewiesen",
    "blocked": "zurückgestellt",
}
RULE_DE = {
    "required": "Pflichtangabe fehlt",
    "type": "Wert nicht lesbar",
    "duplicate_project_id": "Projekt-ID doppelt",
    "known_municipality": "Kommune unbekannt",
    "municipality_matches_submission": "andere Kommune als die Meldung",
    "known_measure_type": "Maßnahmentyp unbekannt",
    "known_status": "Status unbekannt",
    "known_surface_type": "Oberfläche unbekannt",
    "total_cost_range": "Gesamtkosten unplausibel",
    "requested_funding_non_negative": "Förderung negativ",
    "requested_le_total_cost": "Förderung höher als Gesamtkosten",
    "funding_rate_within_limits": "Förderquote außerhalb der Grenzen",
    "completion_after_start": "Fertigstellung vor Baubeginn",
    "date_plausible": "Datum unplausibel",
    "area_non_negative": "Fläche negativ",
    "trees_non_negative": "Baumanzahl negativ",
    "trees_whole_number": "Baumanzahl keine ganze Zahl",
    "payment_non_negative": "Mittelabruf negativ",
    "contact_email_format": "E-Mail ungültig",
    "duplicate_delivery": "Datei doppelt geliefert",
    "file_corrupt": "Datei beschädigt",
    "file_password_protected": "Datei passwortgeschützt",
    "file_type_unsupported": "Dateityp nicht unterstützt",
    "header_mismatch": "Kopfzeile passt nicht zur Vorlage",
    "header_not_found": "keine Projekttabelle gefunden",
    "period_missing": "Berichtsquartal fehlt",
    "municipality_missing": "Kommune fehlt",
    "file_name_municipality_mismatch": "Dateiname nennt andere Kommune",
    "file_name_period_mismatch": "Dateiname nennt anderes Quartal",
}


def feedback_dir(root: Path) -> Path:
    return Path(root) / FAMILY


def _file_name(ledger_row: dict) -> Path:
    muni = ledger_row["municipality_key"] or "unbekannt"
    period = ledger_row["period"] or "ohne-Quartal"
    stem = Path(ledger_row["file_name"]).stem
    return Path(muni) / f"{period}_{stem}_Rueckmeldung.xlsx"


def write_feedback(con, root: Path) -> list[Path]:
    """Write one feedback workbook per forecast file with rejections; returns the paths written."""
    cur = con.execute("select * from raw.ingestion_files where source_family = ? order by source_file", [FAMILY])
    cols = [d[0] for d in cur.description]
    ledger = [dict(zip(cols, r)) for r in cur.fetchall()]
    cur = con.execute(
        "select source_file, sheet, row_number, column_name, value_found, rule, message_de "
        "from raw.rejected_rows where source_family = ? order by source_file, row_number nulls first, column_name",
        [FAMILY],
    )
    rejections: dict[str, list[tuple]] = {}
    for r in cur.fetchall():
        rejections.setdefault(r[0], []).append(r[1:])
    out_dir = feedback_dir(root)
    written = []
    for entry in ledger:
        rows = rejections.get(entry["source_file"], [])
        if not rows:
            continue
        path = out_dir / _file_name(entry)
        digest = _content_digest(entry, rows)
        if _digest_of(path) != digest:  # an unchanged workbook is kept as it is (a new delivery: one write)
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_workbook(path, entry, rows, digest)
        written.append(path)
    keep = {p.resolve() for p in written}
    if out_dir.exists():  # feedback for files no longer in the warehouse (or now clean) is stale
        for old in out_dir.rglob("*_Rueckmeldung.xlsx"):
            if old.resolve() not in keep:
                old.unlink()
    return written


#: Raise when the layout of the feedback workbook changes, so existing workbooks are written anew.
LAYOUT_VERSION = "1"
_DIGEST_PROPERTY = "zi_inhalt"


def _content_digest(entry: dict, rows: list[tuple]) -> str:
    """A fingerprint of everything the workbook shows (facts, labels, rejections) and of its layout."""
    muni = municipality_by_key().get(entry["municipality_key"] or "")
    shown = [LAYOUT_VERSION, muni.name if muni else None, entry["municipality_key"], entry["period"],
             entry["file_name"], OUTCOME_DE.get(entry["outcome"], entry["outcome"]), entry["rows_read"],
             entry["rows_loaded"], entry["rows_rejected"]]
    shown += [(r, column_label(r[2]) if r[2] else "", RULE_DE.get(r[4], r[4])) for r in rows]
    return hashlib.sha256(repr(shown).encode("utf-8")).hexdigest()


def _digest_of(path: Path) -> str | None:
    """The fingerprint stored in an existing feedback workbook (document property), None if unreadable."""
    try:
        with zipfile.ZipFile(path) as zf:
            xml = zf.read("docProps/custom.xml").decode("utf-8")
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError):
        return None
    m = re.search(rf'name="{_DIGEST_PROPERTY}"[^>]*>\s*<vt:lpwstr>([0-9a-f]{{64}})</vt:lpwstr>', xml)
    return m.group(1) if m else None


def _write_workbook(path: Path, entry: dict, rows: list[tuple], digest: str | None = None) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path), {"in_memory": True, "strings_to_numbers": False,
                                         "strings_to_formulas": False})
    if digest:
        wb.set_custom_property(_DIGEST_PROPERTY, digest)
    bold = wb.add_format({"bold": True})
    title = wb.add_format({"bold": True, "font_size": 14})
    head = wb.add_format({"bold": True, "bg_color": "#DCE6F1", "border": 1, "text_wrap": True})
    wrap = wb.add_format({"text_wrap": True, "valign": "top"})
    muni = municipality_by_key().get(entry["municipality_key"] or "")
    ws = wb.add_worksheet("Zusammenfassung")
    ws.set_column(0, 0, 28)
    ws.set_column(1, 1, 90)
    ws.write(0, 0, "Rückmeldung zur Quartalsprognose", title)
    facts = [
        ("Kommune", muni.name if muni else (entry["municipality_key"] or "nicht erkannt")),
        ("Berichtsquartal", entry["period"] or "nicht erkannt"),
        ("Datei", entry["file_name"]),
        ("Ergebnis", OUTCOME_DE.get(entry["outcome"], entry["outcome"])),
        ("Zeilen gelesen", entry["rows_read"]),
        ("Zeilen übernommen", entry["rows_loaded"]),
        ("Zeilen abgewiesen", entry["rows_rejected"]),
    ]
    for i, (k, v) in enumerate(facts, start=2):
        ws.write(i, 0, k, bold)
        ws.write(i, 1, v)
    r = len(facts) + 3
    file_level = [x for x in rows if x[1] is None]
    if file_level:
        ws.write(r, 0, "Hinweise zur Datei", bold)
        for x in file_level:
            ws.write(r, 1, x[5], wrap)
            r += 1
        r += 1
    row_level = [x for x in rows if x[1] is not None]
    if row_level:
        ws.write(r, 0, "Gründe", bold)
        ws.write(r, 1, "Anzahl Zeilen", bold)
        counts: dict[str, set] = {}
        for x in row_level:
            counts.setdefault(x[4], set()).add((x[0], x[1]))
        for rule, found in sorted(counts.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            r += 1
            ws.write(r, 0, RULE_DE.get(rule, rule))
            ws.write(r, 1, len(found))
        r += 2
        ws.write(r, 0, "Bitte die abgewiesenen Zeilen (Blatt 'Abgewiesene Zeilen') korrigieren und die Datei "
                       "als Korrektur erneut senden (Dateiname mit '_korrektur1').")
    ws2 = wb.add_worksheet("Abgewiesene Zeilen")
    headers = ["Zeile", "Blatt", "Spalte", "Gefundener Wert", "Grund", "Regel", "Hinweis"]
    for j, h in enumerate(headers):
        ws2.write(0, j, h, head)
    ws2.set_column(0, 1, 10)
    ws2.set_column(2, 3, 26)
    ws2.set_column(4, 5, 28)
    ws2.set_column(6, 6, 100)
    for i, (sheet, row_number, column, value, rule, message) in enumerate(row_level, start=1):
        ws2.write_number(i, 0, row_number)
        ws2.write(i, 1, sheet or "")
        ws2.write(i, 2, column_label(column) if column else "")
        ws2.write_string(i, 3, "" if value is None else str(value))
        ws2.write(i, 4, RULE_DE.get(rule, rule))
        ws2.write(i, 5, rule)
        ws2.write(i, 6, message, wrap)
    ws2.autofilter(0, 0, max(1, len(row_level)), len(headers) - 1)
    ws2.freeze_panes(1, 0)
    wb.close()
