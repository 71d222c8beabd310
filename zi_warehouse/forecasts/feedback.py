"""Feedback workbooks for the coordinators: per municipality and submission, the rejected rows and why.

Written from ``raw.ingestion_files`` and ``raw.rejected_rows`` (never from the landing files, so the
feedback shows exactly what the warehouse recorded) into ``<feedback>/forecasts/<municipality>/``. One
workbook per delivered file that has rejected rows, a whole-file failure or a notice about the file. A file
rejected as a whole is filed under the municipality and quarter it names (``reader.Sender``); only a file that
says nothing about its sender goes to ``<feedback>/forecasts/nicht-zugeordnet/``, which the quality report
lists for the data team.

What a coordinator reads is German: each rule by its label and explanation from ``seeds/rule_texts.csv``
(``reference.rule_text``), never by its key. The workbooks print on A4 (print areas, the wide table
landscape, fitted to the page width, its header row repeated on every page).

Rewriting is idempotent: the folder is made to hold exactly the current set of workbooks. A workbook
whose content is unchanged since the last run (fingerprint stored as a document property) is not
written again, so a build after one new delivery writes one workbook, not all of them.

Feedback during a build (:func:`write_feedback_from_landing`): a workbook dropped while a build holds the
warehouse is read and checked outside the warehouse file, and its feedback workbook written at once from that
result: the workbook its own build writes later (same content, so that build does not write it again). It
carries the delivery it was written for (file and content hash, a document property), so that the build in
progress, which does not know the file yet, neither removes it nor overwrites it with an older version's.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from zi_warehouse import warehouse
from zi_warehouse.accounting import PROJECT_PREFIX, FileResult
from zi_warehouse.forecasts.printing import row_height, setup_page
from zi_warehouse.forecasts.reader import column_label, period_from_name, revision_from_name
from zi_warehouse.german import format_quarter
from zi_warehouse.landing import LandedFile, file_sha256
from zi_warehouse.reference import municipality_by_key, rule_text

FAMILY = "forecasts"
#: Folder of the workbooks whose sender could not be identified (listed in the quality report).
UNASSIGNED = "nicht-zugeordnet"
#: File name part of a workbook whose quarter is unknown.
NO_PERIOD = "ohne-Quartal"
OUTCOME_DE = {
    "loaded": "vollständig übernommen",
    "partially_loaded": "teilweise übernommen",
    "rejected": "alle Zeilen abgewiesen",
    "failed": "Datei abgewiesen",
    "blocked": "zurückgestellt",
    "duplicate": "bereits geliefert, nicht noch einmal geladen",
}


SUFFIX = "_Rueckmeldung.xlsx"


def feedback_dir(root: Path) -> Path:
    return Path(root) / FAMILY


def unassigned_dir(root: Path) -> Path:
    return feedback_dir(root) / UNASSIGNED


def workbook_path(root: Path, ledger_row: dict) -> Path:
    """Where the feedback workbook of a forecast file (its ``raw.ingestion_files`` row) is written."""
    muni = ledger_row["municipality_key"] or UNASSIGNED
    period = ledger_row["period"] or NO_PERIOD
    stem = Path(ledger_row["file_name"]).stem
    return feedback_dir(root) / muni / f"{period}_{stem}{SUFFIX}"


@dataclass(frozen=True)
class RuleShown:
    """A rule as a coordinator reads it."""

    label: str
    explanation: str


def rule_shown(rule: str, family: str = FAMILY) -> RuleShown:
    """German label and explanation of a rejection rule (a key without a text shows as a plain sentence, never
    as the key: tests/test_rule_texts.py keeps every emitted key in the table)."""
    text = rule_text(rule, "rejection", family)
    if text is None:
        return RuleShown("Sonstiger Grund", "Siehe Hinweis in der Zeile.")
    return RuleShown(text.label_de, text.explanation_de)


def next_correction_suffix(source_file: str) -> str:
    """The name ending the sender's corrected file should carry: one revision above this file's."""
    return f"_korrektur{revision_from_name(Path(source_file).stem) + 1}"


#: A rejection as the feedback workbook lists it: sheet, row number, column, value found, rule, message, project.
_REJECTION_FIELDS = ("sheet", "row_number", "column_name", "value_found", "rule", "message_de", "project_id")


def _in_order(records: list[dict]) -> list[tuple]:
    """The rejections of one file in the workbook's order: the file's own notices first, then by row, column,
    rule, message and value (fully ordered: two reasons on one cell must not swap and rewrite the workbook)."""
    rows = [tuple(r[f] for f in _REJECTION_FIELDS) for r in records]
    return sorted(
        rows,
        key=lambda x: (x[1] is not None, x[1] or 0, x[2] is None, x[2] or "", x[4], x[5], x[3] is None, x[3] or ""),
    )


def write_feedback(con, root: Path, landing_dir: Path | None = None) -> list[Path]:
    """Write one feedback workbook per forecast file with rejections; returns the paths written.

    ``landing_dir``: where deliveries wait, so that the feedback of a file delivered after this build
    started is kept (without it, the folder holds exactly what the warehouse knows)."""
    ledger = warehouse.rows(
        con, "select * from raw.ingestion_files where source_family = ? order by source_file", [FAMILY]
    )
    rejections: dict[str, list[dict]] = {}
    for r in warehouse.rows(con, "select * from raw.rejected_rows where source_family = ?", [FAMILY]):
        rejections.setdefault(r["source_file"], []).append(r)
    out_dir = feedback_dir(root)
    written = []
    for entry in ledger:
        rows = _in_order(rejections.get(entry["source_file"], []))
        if not rows:
            continue
        path = workbook_path(root, entry)
        digest = _content_digest(entry, rows)
        shown = _properties(path)
        # An unchanged workbook is kept as it is (a new delivery: one write); so is the feedback of a newer version
        # of this file, written from the landing area while this build ran (the newer version's build comes next).
        if shown.get(_DIGEST_PROPERTY) != digest and not _newer_delivery_waiting(shown, entry, landing_dir):
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_workbook(path, entry, rows, digest)
        written.append(path)
    keep = {p.resolve() for p in written}
    if out_dir.exists():  # feedback for files no longer in the warehouse (or now clean) is stale
        for old in out_dir.rglob(f"*{SUFFIX}"):
            if old.resolve() not in keep and not _delivery_waiting(_properties(old), landing_dir):
                old.unlink()
        for folder in out_dir.iterdir():
            if folder.is_dir() and not any(folder.iterdir()):
                with contextlib.suppress(OSError):  # the feedback during a build may just be writing into it
                    folder.rmdir()
    return written


def write_feedback_from_landing(landing_dir: Path, source_files: list[str], root: Path) -> list[Path]:
    """Read and check the forecast files ``source_files`` (relative to ``landing_dir``) outside the warehouse
    and write the feedback workbook of each one with rejections; returns the paths written.

    For files dropped while a build holds the warehouse file: their feedback does not wait for that build. The
    caller leaves out byte-identical copies of other files (whether a copy is refused as a repeated delivery
    depends on what the warehouse has loaded); a file without rejections gets no workbook here, and the build
    removes the workbook of an earlier version of it."""
    from zi_warehouse.ingest import IngestContext
    from zi_warehouse.sources import forecasts

    files = [
        LandedFile(path, name, file_sha256(path), path.stat().st_size)
        for name in source_files
        if (path := landing_dir / name).is_file()
    ]
    context = IngestContext(landing_dir=landing_dir, all_files=files, ledger={}, log=lambda _m: None)
    written = []
    for result in forecasts.read_files(files, context):
        rows = _in_order(result.rejection_records())
        if not rows:
            continue
        entry = result.ledger_record()
        path = workbook_path(root, entry)
        digest = _content_digest(entry, rows)
        if _properties(path).get(_DIGEST_PROPERTY) != digest:
            for attempt in (1, 2):  # the build's feedback step removes folders it finds empty
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    _write_workbook(path, entry, rows, digest, delivery=_delivery_mark(result))
                    break
                except FileNotFoundError:
                    if attempt == 2:
                        raise
        written.append(path)
    return written


def _delivery_mark(result: FileResult) -> str:
    return f"{result.source_file}|{result.file_hash}"


def _delivery_waiting(shown: dict[str, str], landing_dir: Path | None) -> str | None:
    """The content hash of the delivery a workbook was written for from the landing area, if that delivery still
    waits there as it was (the file there, with the same content); else None."""
    mark = shown.get(_DELIVERY_PROPERTY)
    if not mark or landing_dir is None:
        return None
    source_file, _, file_hash = mark.rpartition("|")
    path = landing_dir / source_file
    try:
        return file_hash if path.is_file() and file_sha256(path) == file_hash else None
    except OSError:
        return None


def _newer_delivery_waiting(shown: dict[str, str], entry: dict, landing_dir: Path | None) -> bool:
    waiting = _delivery_waiting(shown, landing_dir)
    return (
        waiting is not None
        and shown[_DELIVERY_PROPERTY].rpartition("|")[0] == entry["source_file"]
        and waiting != entry["file_hash"]
    )


#: Raise when the layout of the feedback workbook changes, so existing workbooks are written anew.
LAYOUT_VERSION = "5"
_DIGEST_PROPERTY = "zi_inhalt"
#: Document property of a workbook written from the landing area: the delivery (file and content hash) it is for.
_DELIVERY_PROPERTY = "zi_lieferung"


def _content_digest(entry: dict, rows: list[tuple]) -> str:
    """A fingerprint of everything the workbook shows (facts, labels, rejections) and of its layout."""
    muni = municipality_by_key().get(entry["municipality_key"] or "")
    shown = [
        LAYOUT_VERSION,
        muni.name if muni else None,
        entry["municipality_key"],
        entry["period"],
        entry["file_name"],
        OUTCOME_DE[entry["outcome"]],
        entry["rows_read"],
        entry["rows_loaded"],
        entry["rows_rejected"],
    ]
    shown += [(r, column_label(r[2]) if r[2] else "", rule_shown(r[4])) for r in rows]
    return hashlib.sha256(repr(shown).encode("utf-8")).hexdigest()


def _properties(path: Path) -> dict[str, str]:
    """This project's document properties of an existing feedback workbook (empty if none or unreadable)."""
    try:
        with zipfile.ZipFile(path) as zf:
            xml = zf.read("docProps/custom.xml").decode("utf-8")
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError):
        return {}
    return {
        m.group(1): html.unescape(m.group(2))
        for m in re.finditer(r'name="(zi_[a-z]+)"[^>]*>\s*<vt:lpwstr>([^<]*)</vt:lpwstr>', xml)
    }


#: Columns of the sheet of rejected rows: (header, width in characters). Sized so that the table fits the
#: width of an A4 page in landscape at about 85 % (fit_to_pages shrinks it to the page width in any case).
ROW_COLUMNS = (
    ("Zeile", 7),
    ("Projekt-ID", 14),
    ("Blatt", 12),
    ("Spalte", 22),
    ("Gefundener Wert", 22),
    ("Grund", 24),
    ("Hinweis", 58),
)
#: Columns of the summary sheet (label, count, what to do), in characters: fits A4 portrait at about 80 %.
SUMMARY_WIDTHS = (30, 13, 62)
SUMMARY_SHEET = "Zusammenfassung"
TITLE = "Zukunftsinitiative Klima.Werk – Rückmeldung zur Quartalsprognose"
ROWS_SHEET = "Abgewiesene Zeilen"


def _write_workbook(
    path: Path, entry: dict, rows: list[tuple], digest: str | None = None, delivery: str | None = None
) -> None:
    import xlsxwriter

    # Written beside and renamed into place: a build and the feedback during a build may write the same workbook.
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    wb = xlsxwriter.Workbook(
        str(partial), {"in_memory": True, "strings_to_numbers": False, "strings_to_formulas": False}
    )
    if digest:
        wb.set_custom_property(_DIGEST_PROPERTY, digest)
    if delivery:
        wb.set_custom_property(_DELIVERY_PROPERTY, delivery)
    bold = wb.add_format({"bold": True, "valign": "top"})
    title = wb.add_format({"bold": True, "font_size": 14})
    head = wb.add_format({"bold": True, "bg_color": "#DCE6F1", "border": 1, "text_wrap": True, "valign": "top"})
    cell = wb.add_format({"text_wrap": True, "valign": "top", "border": 1})
    plain = wb.add_format({"valign": "top", "text_wrap": True})
    number = wb.add_format({"valign": "top", "border": 1, "align": "left"})
    fact = wb.add_format({"align": "left", "valign": "top"})
    muni = municipality_by_key().get(entry["municipality_key"] or "")
    muni_name = muni.name if muni else (entry["municipality_key"] or "nicht erkannt")
    ws = wb.add_worksheet(SUMMARY_SHEET)
    widths = SUMMARY_WIDTHS
    for j, width in enumerate(widths):
        ws.set_column(j, j, width)
    ws.merge_range(0, 0, 0, len(widths) - 1, "Rückmeldung zur Quartalsprognose", title)
    facts = [
        ("Kommune", muni_name),
        ("Berichtsquartal", format_quarter(entry["period"]) if entry["period"] else "nicht erkannt"),
        ("Datei", entry["file_name"]),
        ("Ergebnis", OUTCOME_DE[entry["outcome"]]),
    ]
    if entry["outcome"] not in ("failed", "duplicate"):  # a file refused as a whole was not read row by row
        facts += [
            ("Zeilen gelesen", entry["rows_read"]),
            ("Zeilen übernommen", entry["rows_loaded"]),
            ("Zeilen abgewiesen", entry["rows_rejected"]),
        ]
    for i, (k, v) in enumerate(facts, start=2):
        ws.write(i, 0, k, bold)
        ws.merge_range(i, 1, i, 2, v, fact)
    r = len(facts) + 3
    file_level = [x for x in rows if x[1] is None]
    if file_level:
        ws.write(r, 0, "Hinweise zur Datei", bold)
        r += 1
        for x in file_level:
            shown = rule_shown(x[4])
            ws.write(r, 0, shown.label, bold)
            ws.merge_range(r, 1, r, 2, x[5], plain)
            ws.set_row(r, row_height([(shown.label, widths[0]), (x[5], widths[1] + widths[2])]))
            r += 1
        r += 1
    row_level = [x for x in rows if x[1] is not None]
    if row_level:
        ws.write(r, 0, "Gründe", head)
        ws.write(r, 1, "Anzahl Zeilen", head)
        ws.write(r, 2, "Was zu tun ist", head)
        counts: dict[str, set] = {}
        for x in row_level:
            counts.setdefault(x[4], set()).add((x[0], x[1]))
        for rule, found in sorted(counts.items(), key=lambda kv: (-len(kv[1]), rule_shown(kv[0]).label)):
            r += 1
            shown = rule_shown(rule)
            ws.write(r, 0, shown.label, cell)
            ws.write_number(r, 1, len(found), number)
            ws.write(r, 2, shown.explanation, cell)
            ws.set_row(r, row_height([(shown.label, widths[0]), (shown.explanation, widths[2])]))
        r += 2
        closing = (
            f"Bitte die abgewiesenen Zeilen (Blatt „{ROWS_SHEET}“) korrigieren und die Datei als Korrektur "
            f"erneut senden (Dateiname mit „{next_correction_suffix(entry['source_file'])}“). Bis dahin zählen die "
            "abgewiesenen Projekte für dieses Quartal als nicht gemeldet, auch wenn sie in einer früheren Fassung "
            "richtig standen."
        )
        if sum(len(found) for found in counts.values()) > len({(x[0], x[1]) for x in row_level}):
            # "Anzahl Zeilen" adds up to more than the rows rejected: say why before anyone recounts
            closing = "Manche Zeilen wurden aus mehreren Gründen abgewiesen und zählen bei jedem Grund. " + closing
        if meaning := _mismatch_meaning({x[4] for x in file_level}):
            closing = f"{closing} {meaning}"
    elif entry["outcome"] == "duplicate":
        closing = "Für diese Datei ist nichts weiter zu tun."  # a copy of a delivery already loaded
        named = period_from_name(Path(entry["file_name"]).stem)
        if named and entry["period"] and f"{named[0]}-Q{named[1]}" != entry["period"]:
            # e.g. last quarter's workbook sent again under this quarter's name: this quarter is still unreported
            quarter = format_quarter(f"{named[0]}-Q{named[1]}")
            closing = (
                f"Der Dateiname nennt {quarter}, die Datei ist aber die Meldung für {format_quarter(entry['period'])}: "
                f"für {quarter} liegt damit noch keine Meldung vor. Bitte die Meldung für {quarter} in der Vorlage "
                "dieses Quartals senden."
            )
    elif entry["outcome"] == "failed":
        closing = (
            "Bitte die Datei wie beschrieben korrigieren und erneut senden "
            f"(Dateiname mit „{next_correction_suffix(entry['source_file'])}“)."
        )
    else:
        closing = _closing_after_notices({x[4] for x in file_level})
    ws.merge_range(r, 0, r, 2, closing, plain)
    ws.set_row(r, row_height([(closing, sum(widths))]))
    setup_page(
        ws,
        landscape=False,
        area=(0, 0, r, len(widths) - 1),
        header=f"Rückmeldung {muni_name}, {entry['file_name']}",
        footer_left=TITLE,
    )

    if row_level:  # a file rejected as a whole has no rows to list
        _write_rows_sheet(wb, row_level, f"Abgewiesene Zeilen {muni_name}, {entry['file_name']}", head, cell, number)
    wb.close()
    os.replace(partial, path)


#: What a file name naming another quarter or municipality than the workbook means for the sender's reporting.
_MISMATCH_MEANING = {
    "file_name_period_mismatch": (
        "Geladen wurde die Meldung für das Berichtsquartal der Arbeitsmappe. War das Quartal im Dateinamen gemeint, "
        "bitte das Feld „Berichtsquartal“ korrigieren und die Datei erneut senden: bis dahin liegt für jenes "
        "Quartal keine Meldung vor."
    ),
    "file_name_municipality_mismatch": (
        "Geladen wurde die Meldung der Kommune in der Arbeitsmappe. War die Kommune im Dateinamen gemeint, bitte "
        "das Feld „Kommune:“ korrigieren und die Datei erneut senden: bis dahin liegt für jene Kommune keine "
        "Meldung vor."
    ),
}


def _mismatch_meaning(rules: set[str]) -> str:
    """What the file's notices mean for the sender's reporting (a file name naming another quarter leaves that
    quarter unreported), or "" when it has none of them."""
    return " ".join(text for rule, text in _MISMATCH_MEANING.items() if rule in rules)


def _closing_after_notices(rules: set[str]) -> str:
    """The closing line of a file taken over as a whole: what its notices mean, not just "next time"."""
    meaning = _mismatch_meaning(rules)
    if meaning:
        return f"Die Datei wurde übernommen. {meaning} Stimmt die Arbeitsmappe, ist nichts weiter zu tun."
    return "Die Datei wurde übernommen; bitte die Hinweise beim nächsten Mal beachten."


def _write_rows_sheet(wb, row_level: list[tuple], title: str, head, cell, number) -> None:
    ws = wb.add_worksheet(ROWS_SHEET)
    for j, (h, width) in enumerate(ROW_COLUMNS):
        ws.write(0, j, h, head)
        ws.set_column(j, j, width)
    ws.set_row(0, row_height([(h, width) for h, width in ROW_COLUMNS]))
    for i, (sheet, row_number, column, value, rule, message, project_id) in enumerate(row_level, start=1):
        if project_id:  # the project has its own column (to filter by): the message need not name it again
            message = message.removeprefix(PROJECT_PREFIX.format(project_id))
        texts = [
            row_number,
            project_id or "",
            sheet or "",
            column_label(column) if column else "",
            "" if value is None else str(value),
            rule_shown(rule).label,
            message,
        ]
        ws.write_number(i, 0, row_number, number)
        for j in range(1, len(texts)):
            ws.write_string(i, j, texts[j], cell)
        ws.set_row(i, row_height([(x, width) for x, (_, width) in zip(texts, ROW_COLUMNS)]))
    last_col = len(ROW_COLUMNS) - 1
    ws.autofilter(0, 0, max(1, len(row_level)), last_col)
    ws.freeze_panes(1, 0)
    setup_page(ws, landscape=True, area=(0, 0, len(row_level), last_col), repeat_row=0, header=title, footer_left=TITLE)
