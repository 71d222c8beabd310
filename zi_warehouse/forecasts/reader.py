"""Reading one forecast workbook as people send it: find the sheet, the header row and the version, parse rows.

Handles: header not in the first row, merged title rows, hidden or extra sheets, blank rows and columns,
a totals row, notes under the table, trailing spaces, German text numbers/dates/quarters, municipality
aliases, a municipality in the file differing from the file name, duplicate project ids, corrupt or
password-protected files, .csv/.xls/.ods instead of .xlsx. Validation across fields is not done here but
in ``validation.py`` (one Great Expectations run over a batch of files).
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from zi_warehouse.accounting import Rejection
from zi_warehouse.forecasts import parsing as p
from zi_warehouse.forecasts.template import (
    BLOCK_LABELS,
    COLUMN_ORDER,
    PAYMENT_COLUMN,
    PROJECT_SHEET,
    REQUIRED_COLUMNS,
    SURFACE_TYPES,
    header_maps,
    measure_type_labels,
    normalise_header,
    payment_pattern,
    status_labels,
)
from zi_warehouse.reference import match_municipality, municipality_by_key, normalise_name

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")
CSV_SUFFIXES = (".csv", ".txt")
#: A row is taken as the header row when at least this many cells are known header texts.
MIN_HEADER_MATCHES = 4
HEADER_SEARCH_ROWS = 40
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_TOTALS = ("summe", "gesamt", "insgesamt", "total", "zwischensumme")
_NOTE_START = ("hinweis", "anmerkung", "bemerkung", "*", "quelle", "stand", "achtung", "bitte")

def column_label(canonical: str) -> str:
    """German column name for messages: the header of the current template, else the 2020 one."""
    maps = header_maps()
    return maps["2021"].get(canonical) or maps["2020"].get(canonical) or canonical


class FileFailure(Exception):
    """The whole file cannot be read (message in German, stable rule name)."""

    def __init__(self, message_de: str, rule: str):
        super().__init__(message_de)
        self.message_de = message_de
        self.rule = rule


@dataclass
class ParsedRow:
    row_number: int
    values: dict  # canonical -> typed value (unknown labels kept as text for validation to reject)
    payments: dict  # 'YYYY-Qn' -> amount
    errors: list[Rejection] = field(default_factory=list)


@dataclass
class ParsedFile:
    source_file: str
    sheet: str | None
    template_version: str
    municipality_key: str
    reporting_year: int
    reporting_quarter: int
    submitted_on: dt.date | None
    revision: int
    rows: list[ParsedRow]
    file_notices: list[Rejection] = field(default_factory=list)
    municipality_in_file_name: str | None = None
    period_in_file_name: str | None = None

    @property
    def reporting_period(self) -> str:
        return p.quarter_label(self.reporting_year, self.reporting_quarter)


# --- lookups of labels to keys ---------------------------------------------------------------------
def _label_index(labels: dict[str, str]) -> dict[str, str]:
    index = {}
    for key, label in labels.items():
        index[normalise_name(label)] = key
        index[normalise_name(key)] = key
    return index


_MEASURES = _label_index(measure_type_labels())
_STATUSES = _label_index(status_labels())
_SURFACES = _label_index(SURFACE_TYPES)


def lookup(value: object, index: dict[str, str]) -> str | None:
    """The key for a label or key as typed; unknown text is returned trimmed so validation can show it."""
    text = p.parse_text(value)
    if text is None:
        return None
    return index.get(normalise_name(text), text)


# --- grid reading ----------------------------------------------------------------------------------
def _read_csv(path: Path) -> list[tuple[str, list[list], bool]]:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):  # Excel's "CSV" is cp1252; latin-1 never fails
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if "\x00" in text:
        raise FileFailure("Die Datei ist keine lesbare CSV-Datei (Binärinhalt).", "file_unreadable")
    head = "\n".join(text.splitlines()[:30])
    delimiter = max((";", ",", "\t"), key=head.count)
    rows = [list(r) for r in csv.reader(io.StringIO(text), delimiter=delimiter)]
    return [(None, rows, True)]


def _read_workbook(path: Path) -> list[tuple[str, list[list], bool]]:
    import python_calamine as pc

    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == _OLE_MAGIC and path.suffix.lower() != ".xls":
        data = path.read_bytes()
        if "EncryptedPackage".encode("utf-16-le") in data or b"EncryptionInfo" in data or \
                "EncryptionInfo".encode("utf-16-le") in data:
            raise FileFailure(
                "Die Datei ist passwortgeschützt. Bitte ohne Kennwort erneut senden.", "file_password_protected"
            )
    try:
        wb = pc.CalamineWorkbook.from_path(str(path))
    except pc.PasswordError:
        raise FileFailure(
            "Die Datei ist passwortgeschützt. Bitte ohne Kennwort erneut senden.", "file_password_protected"
        ) from None
    except Exception as exc:  # calamine raises several types for broken zips/xml/ole
        raise FileFailure(
            f"Die Datei ist beschädigt oder kein Excel-Format ({type(exc).__name__}). Bitte erneut senden.",
            "file_corrupt",
        ) from None
    sheets = []
    try:
        for meta in wb.sheets_metadata:
            if meta.typ != pc.SheetTypeEnum.WorkSheet:  # chart sheets, macro sheets: no table
                continue
            visible = meta.visible == pc.SheetVisibleEnum.Visible
            grid = wb.get_sheet_by_name(meta.name).to_python(skip_empty_area=False)
            sheets.append((meta.name, grid, visible))
    except BaseException as exc:
        # calamine (Rust) panics on some cells, e.g. a date-formatted number past the year 9999; pyo3 raises
        # PanicException, a BaseException: uncaught it would stop the whole family's ingest, not this file.
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        raise FileFailure(
            f"Die Datei ist beschädigt ({type(exc).__name__}). Bitte erneut senden.", "file_corrupt"
        ) from None
    finally:
        wb.close()
    return sheets


def read_grids(path: Path) -> list[tuple[str | None, list[list], bool]]:
    """(sheet name, rows of cell values from A1, is visible) for every worksheet, or a FileFailure."""
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise FileFailure("Die Datei ist leer (0 Byte). Bitte erneut senden.", "file_corrupt")
    if suffix in CSV_SUFFIXES:
        return _read_csv(path)
    if suffix in WORKBOOK_SUFFIXES:
        return _read_workbook(path)
    raise FileFailure(
        f"Dateityp '{suffix or path.name}' wird nicht gelesen. Bitte die Vorlage als .xlsx senden.",
        "file_type_unsupported",
    )


# --- header detection ------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _known_headers() -> dict[str, dict[str, str]]:
    """version -> {normalised header text: canonical}. Cached: it was rebuilt for every cell row of every
    workbook (about half of the reader's time in ``make bench``); the header maps are read once as well."""
    return {v: {normalise_header(h): c for c, h in m.items() if c != PAYMENT_COLUMN} for v, m in header_maps().items()}


def _score_normalised(headers: list[str], version: str) -> int:
    known = _known_headers()[version]
    pattern = payment_pattern(version)
    return sum(1 for h in headers if h and (h in known or pattern.match(h)))


def _header_score(cells: list, version: str) -> int:
    return _score_normalised([normalise_header(c) for c in cells], version)


def find_header(grid: list[list]) -> tuple[int, str, int] | None:
    """(row index, version, matches) of the first row that looks like a header row."""
    for i, row in enumerate(grid[:HEADER_SEARCH_ROWS]):
        headers = [normalise_header(c) for c in row]  # once per row, not once per template version
        scores = {v: _score_normalised(headers, v) for v in header_maps()}
        best = max(scores, key=lambda v: (scores[v], v))
        if scores[best] >= MIN_HEADER_MATCHES:
            return i, best, scores[best]
    return None


def map_headers(row: list, version: str) -> tuple[dict[int, str], dict[int, str], list[str], list[str]]:
    """(column index -> canonical, column index -> payment period, unknown headers, missing headers)."""
    known = _known_headers()[version]
    pattern = payment_pattern(version)
    columns, payments, unknown, seen = {}, {}, [], set()
    for j, cell in enumerate(row):
        h = normalise_header(cell)
        if not h:
            continue
        if h in known and known[h] not in seen:
            columns[j] = known[h]
            seen.add(known[h])
            continue
        m = pattern.match(h)
        quarter = p.parse_quarter_text(m.group("quarter")) if m else None
        if quarter:
            payments[j] = p.quarter_label(*quarter)
            continue
        unknown.append(p.parse_text(cell))
    expected = header_maps()[version]
    missing = [expected[c] for c in COLUMN_ORDER[version] if c not in seen]
    return columns, payments, unknown, missing


def header_failure_message(version: str, found: list[str], unknown: list[str], missing: list[str]) -> str:
    expected = [header_maps()[version][c] for c in COLUMN_ORDER[version]]
    parts = [f"Kopfzeile passt nicht zur Vorlage (Version {version})."]
    if unknown:
        parts.append("Unbekannte Spalten: " + ", ".join(f"'{u}'" for u in unknown) + ".")
    if missing:
        parts.append("Fehlende Spalten: " + ", ".join(f"'{m}'" for m in missing) + ".")
    parts.append("Erwartet: " + " | ".join(expected) + f" | {header_maps()[version][PAYMENT_COLUMN]}.")
    parts.append("Gefunden: " + " | ".join(found) + ".")
    inverse = {h: c for c, h in header_maps()[version].items()}
    proposals = []
    for u in unknown:
        close = difflib.get_close_matches(u, missing, n=1, cutoff=0.3)
        canonical = inverse[close[0]] if close else "<kanonischer_name>"
        proposals.append(f"{canonical} -> Spalte {version}: \"{u}\"")
    if proposals:
        parts.append("Vorschlag für header_maps.csv (nach Prüfung eintragen): " + "; ".join(proposals) + ".")
    return " ".join(parts)


# --- identity of the submission --------------------------------------------------------------------
def municipality_from_name(text: str) -> str | None:
    """The municipality a file name mentions (longest alias match over word windows)."""
    words = normalise_name(text).split()
    for n in range(min(5, len(words)), 0, -1):
        for i in range(len(words) - n + 1):
            key = match_municipality(" ".join(words[i : i + n]))
            if key:
                return key
    return None


def period_from_name(text: str) -> tuple[int, int] | None:
    s = text.casefold()
    m = re.search(r"(20\d\d)[ _\-.]*q([1-4])", s) or re.search(r"q([1-4])[ _\-./]*(20\d\d)", s)
    if m:
        a, b = m.groups()
        return (int(a), int(b)) if len(a) == 4 else (int(b), int(a))
    m = re.search(r"([1-4])[ _\-.]*quartal[ _\-.]*(20\d\d)", s)
    if m:
        return int(m.group(2)), int(m.group(1))
    return None


def revision_from_name(text: str) -> int:
    """Corrections are named '..._korrektur2', '..._v2', '..._korrigiert': higher revision wins."""
    s = text.casefold()
    m = re.search(r"(?:korrektur|korr|version|rev|_v)[ _\-.]?(\d+)", s)
    if m:
        return int(m.group(1))
    return 1 if re.search(r"korrektur|korrigiert|berichtigt|neu\b", s) else 0


def _block_values(grid: list[list], header_index: int) -> dict[str, object]:
    labels = {normalise_header(v): k for k, v in BLOCK_LABELS.items()}
    labels.update({"kommune": "municipality", "quartal": "period", "berichtszeitraum": "period", "datum": "submitted_on"})
    found = {}
    for row in grid[:header_index]:
        for j, cell in enumerate(row):
            key = labels.get(normalise_header(cell)) if isinstance(cell, str) else None
            if key and key not in found:
                found[key] = next((v for v in row[j + 1 :] if not p.is_blank(v)), None)
    return found


# --- rows --------------------------------------------------------------------------------------------
_NUMBER_COLUMNS = ("total_cost_eur", "requested_funding_eur", "expected_disconnected_area_m2", "surface_change_m2")


def _is_note_or_total(cells: dict[int, object], columns: dict[int, str]) -> bool:
    """True for a totals row or a note under the table: neither carries a project."""
    texts = [v for v in cells.values() if isinstance(v, str)]
    id_col = next((j for j, c in columns.items() if c == "project_id"), None)
    first = normalise_header(next(iter(cells.values())))
    project_id = p.parse_text(cells.get(id_col)) if id_col is not None else None
    if any(first.startswith(t) for t in _TOTALS) and (project_id is None or normalise_header(project_id).startswith(_TOTALS)):
        return True
    if len(cells) == 1 and texts:
        # A lone text is a note if it says so, or if it is a sentence in the leftmost column; a lone
        # title or amount elsewhere is a half-filled project row and must be rejected, not skipped.
        t = normalise_header(texts[0])
        leftmost = next(iter(cells)) <= min(columns)
        return t.startswith(_NOTE_START) or (leftmost and len(t.split()) >= 4)
    return False


def parse_row(row_number: int, cells: dict[int, object], columns: dict[int, str], payment_cols: dict[int, str],
              sheet: str | None) -> ParsedRow:
    raw = {c: cells.get(j) for j, c in columns.items()}
    values, errors = {}, []

    def err(column: str, value: object, rule: str, message: str) -> None:
        errors.append(Rejection(row_number, column, value, rule, message, sheet))

    for canonical, value in raw.items():
        try:
            if canonical in _NUMBER_COLUMNS:
                values[canonical] = p.parse_number(value)
            elif canonical == "expected_trees":
                values[canonical] = p.parse_integer(value)
            elif canonical == "funding_rate":
                values[canonical] = p.parse_percent_or_fraction(value)
            elif canonical == "planned_application_period":
                values[canonical] = p.parse_quarter(value)
            elif canonical == "planned_start_date":
                values[canonical] = p.parse_date(value, anchor="start")
            elif canonical == "planned_completion_date":
                values[canonical] = p.parse_date(value, anchor="end")
            elif canonical == "is_in_designated_area":
                values[canonical] = p.parse_yes_no(value)
            elif canonical == "municipality":
                text = p.parse_text(value)
                values["municipality_name_found"] = text
                values["municipality_key"] = (match_municipality(text) or text) if text else None
            elif canonical == "measure_type":
                values["measure_type_key"] = lookup(value, _MEASURES)
            elif canonical == "status":
                values["status_key"] = lookup(value, _STATUSES)
            elif canonical == "affected_surface_type":
                values["affected_surface_type"] = lookup(value, _SURFACES)
            else:
                values[canonical] = p.parse_text(value)
        except p.ParseError as exc:
            values[canonical] = None
            err(canonical, value, exc.rule, f"{column_label(canonical)}: {exc.message_de}")
    for canonical in REQUIRED_COLUMNS:
        key = {"municipality": "municipality_key", "measure_type": "measure_type_key", "status": "status_key"}.get(
            canonical, canonical)
        if values.get(key) is None and not any(e.column == canonical for e in errors):
            err(canonical, raw.get(canonical), "required",
                f"{column_label(canonical)} fehlt; diese Angabe ist Pflicht.")
    # Rate and requested amount determine each other; fill the one left empty (not a correction).
    cost, requested, rate = values.get("total_cost_eur"), values.get("requested_funding_eur"), values.get("funding_rate")
    if requested is None and cost and rate is not None:
        values["requested_funding_eur"] = round(cost * rate, 2)
    if rate is None and cost and requested is not None:
        values["funding_rate"] = round(requested / cost, 6)
    payments = {}
    for j, period in payment_cols.items():
        try:
            amount = p.parse_number(cells.get(j))
        except p.ParseError as exc:
            err(PAYMENT_COLUMN, cells.get(j), exc.rule, f"Mittelabruf {period}: {exc.message_de}")
            continue
        if amount is not None:
            payments[period] = amount
    return ParsedRow(row_number, values, payments, errors)


def read_file(path: Path, source_file: str) -> ParsedFile:
    """Read and parse one delivered file, or raise FileFailure (unreadable, no/unknown header, no period)."""
    grids = read_grids(path)
    candidates = []
    for name, grid, visible in grids:
        found = find_header(grid)
        if found:
            candidates.append((visible, name == PROJECT_SHEET, found[2], name, grid, found))
    if not candidates:
        seen = [n for n, _, _ in grids if n]
        raise FileFailure(
            "Keine Projekttabelle gefunden: keine Zeile mit den Kopfzeilen der Vorlage"
            + (f" in den Blättern {', '.join(seen)}" if seen else "")
            + ". Bitte die Vorlage verwenden.",
            "header_not_found",
        )
    # Visible sheets first (a hidden sheet is often an old copy), then the template's sheet name.
    candidates.sort(key=lambda c: (not c[0], not c[1], -c[2]))
    _, _, _, sheet, grid, (header_index, version, _) = candidates[0]
    block = _block_values(grid, header_index)
    if block.get("version") is not None and str(p.parse_text(block["version"])) in header_maps():
        declared = str(p.parse_text(block["version"]))
        if _header_score(grid[header_index], declared) >= _header_score(grid[header_index], version):
            version = declared
    header_row = grid[header_index]
    columns, payment_cols, unknown, missing = map_headers(header_row, version)
    if unknown or missing:
        found = [p.parse_text(c) for c in header_row if p.parse_text(c)]
        raise FileFailure(header_failure_message(version, found, unknown, missing), "header_mismatch")

    file_name = Path(source_file).name
    name_key = municipality_from_name(Path(file_name).stem)
    name_period = period_from_name(Path(file_name).stem)
    block_key = match_municipality(block.get("municipality")) if block.get("municipality") else None
    period = None
    if block.get("period") is not None:
        try:
            q = p.parse_quarter(block["period"])
            period = (int(q[:4]), int(q[-1])) if q else None
        except p.ParseError:
            period = None
    period = period or name_period
    if period is None:
        raise FileFailure(
            "Berichtsquartal fehlt: weder im Feld 'Berichtsquartal:' noch im Dateinamen (z. B. 2022-Q3).",
            "period_missing",
        )
    submitted_on = None
    if block.get("submitted_on") is not None:
        try:
            submitted_on = p.parse_date(block["submitted_on"])
        except p.ParseError:
            submitted_on = None

    rows: list[ParsedRow] = []
    used_cols = set(columns) | set(payment_cols)
    for i in range(header_index + 1, len(grid)):
        cells = {j: v for j, v in enumerate(grid[i]) if j in used_cols and not p.is_blank(v)
                 and not (isinstance(v, str) and not v.strip())}
        if not cells:
            continue
        if _is_note_or_total(cells, columns):
            continue
        rows.append(parse_row(i + 1, cells, columns, payment_cols, sheet))

    row_keys = [r.values.get("municipality_key") for r in rows]
    known_keys = set(municipality_by_key())
    majority = max((k for k in row_keys if k in known_keys), key=row_keys.count, default=None)
    municipality_key = block_key or majority or name_key
    if municipality_key is None:
        raise FileFailure(
            "Kommune nicht erkennbar: weder im Feld 'Kommune:', in den Zeilen noch im Dateinamen.",
            "municipality_missing",
        )
    notices = []
    if name_key and name_key != municipality_key:
        names = municipality_by_key()
        notices.append(Rejection(
            None, "Dateiname", file_name, "file_name_municipality_mismatch",
            f"Der Dateiname nennt {names[name_key].name}, die Arbeitsmappe aber {names[municipality_key].name}. "
            f"Die Datei wurde als Meldung von {names[municipality_key].name} geladen; bitte Dateinamen prüfen.",
            None,
        ))
    if name_period and name_period != period:
        notices.append(Rejection(
            None, "Dateiname", file_name, "file_name_period_mismatch",
            f"Der Dateiname nennt {p.quarter_label(*name_period)}, das Feld 'Berichtsquartal' "
            f"{p.quarter_label(*period)}. Geladen als {p.quarter_label(*period)}; bitte prüfen.",
            None,
        ))
    # Duplicate project ids: the first row counts, later ones are rejected (the sender decides which is right).
    first_row: dict[str, int] = {}
    for r in rows:
        pid = r.values.get("project_id")
        if pid is None:
            continue
        if pid in first_row:
            r.errors.append(Rejection(
                r.row_number, "project_id", pid, "duplicate_project_id",
                f"Projekt-ID {pid} steht mehrfach in dieser Datei (zuerst in Zeile {first_row[pid]}); "
                "nur die erste Zeile wurde übernommen.", sheet,
            ))
        else:
            first_row[pid] = r.row_number
    return ParsedFile(
        source_file=source_file, sheet=sheet, template_version=version, municipality_key=municipality_key,
        reporting_year=period[0], reporting_quarter=period[1], submitted_on=submitted_on,
        revision=revision_from_name(Path(file_name).stem), rows=rows, file_notices=notices,
        municipality_in_file_name=name_key,
        period_in_file_name=p.quarter_label(*name_period) if name_period else None,
    )
