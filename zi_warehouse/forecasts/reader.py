"""Reading one forecast workbook as people send it: find the sheet, the header row and the version, parse rows.

Why one module of ~780 lines: finding the table, recognising the template version and parsing its rows form one
pass over a workbook with shared state (header position, column map, version); the pieces that stand alone
already live beside it (``parsing.py`` values, ``columns.py`` typing, ``template.py`` the template,
``validation.py`` the rules across fields).

Handles: header not in the first row, merged title rows, hidden or extra sheets, blank rows and columns,
a totals row, notes under the table, trailing spaces, German text numbers/dates/quarters, municipality
aliases, a municipality in the file differing from the file name, duplicate project ids, corrupt or
password-protected files, .csv/.xls/.ods instead of .xlsx. Validation across fields is not done here but
in ``validation.py`` (vectorised row rules over a batch of files).
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache, lru_cache
from operator import itemgetter
from pathlib import Path

from zi_warehouse.accounting import Rejection
from zi_warehouse.forecasts import parsing as p
from zi_warehouse.forecasts.columns import lookup_typer, mask_blank, read_column
from zi_warehouse.forecasts.template import (
    BLOCK_LABELS,
    COLUMN_ORDER,
    PAYMENT_COLUMN,
    PROJECT_SHEET,
    REQUIRED_COLUMNS,
    SURFACE_TYPES,
    header_maps,
    measure_type_labels,
    next_quarters,
    normalise_header,
    payment_header_de,
    payment_pattern,
    status_labels,
)
from zi_warehouse.german import format_quarter, quoted
from zi_warehouse.reference import coded_value_spellings, match_municipality, municipality_by_key, normalise_name

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")
CSV_SUFFIXES = (".csv", ".txt")
#: A row is taken as the header row when at least this many cells are known header texts.
MIN_HEADER_MATCHES = 4
HEADER_SEARCH_ROWS = 40
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_TOTALS = ("summe", "gesamt", "insgesamt", "total", "zwischensumme")
_NOTE_START = ("hinweis", "anmerkung", "bemerkung", "*", "quelle", "stand", "achtung", "bitte")


#: The column of a notice about the file's name (not a column of the table).
FILE_NAME_COLUMN = "file_name"


def column_label(canonical: str) -> str:
    """German column name for messages: the header of the current template, else the 2020 one."""
    if canonical == FILE_NAME_COLUMN:
        return "Dateiname"
    if canonical == PAYMENT_COLUMN:  # one of the quarterly columns; the message names the quarter
        return payment_header_de("2021")
    maps = header_maps()
    return maps["2021"].get(canonical) or maps["2020"].get(canonical) or canonical


class FileFailure(Exception):
    """The whole file cannot be read (message in German, stable rule name).

    ``read_file`` fills in whom the file came from and for which quarter, as far as the file tells (see
    :class:`Sender`), so the feedback reaches the municipality; ``data_team_note`` is for the data team only
    (e.g. a proposed header map entry) and never part of the message.
    """

    def __init__(self, message_de: str, rule: str, data_team_note: str | None = None):
        super().__init__(message_de)
        self.message_de = message_de
        self.rule = rule
        self.data_team_note = data_team_note
        self.municipality_key: str | None = None
        self.period: str | None = None  # 'YYYY-Qn'


@dataclass
class ParsedRow:
    """One project row as the cell-by-cell reader saw it (built on demand from a ParsedFile's columns)."""

    row_number: int
    values: dict  # canonical -> typed value (unknown labels kept as text for validation to reject)
    payments: dict  # 'YYYY-Qn' -> amount
    errors: list[Rejection] = field(default_factory=list)


@dataclass
class ParsedFile:
    """A parsed workbook, column by column: ``values[column][k]`` belongs to the row ``row_numbers[k]``."""

    source_file: str
    sheet: str | None
    template_version: str
    municipality_key: str
    reporting_year: int
    reporting_quarter: int
    submitted_on: dt.date | None
    revision: int
    row_numbers: list[int]
    values: dict[str, list]  # output column -> typed values (unknown labels kept as text for validation)
    payments: list[dict | None]  # per row: 'YYYY-Qn' -> amount, None without any payment
    errors: dict[int, list[Rejection]] = field(default_factory=dict)  # row position -> why it is rejected
    file_notices: list[Rejection] = field(default_factory=list)
    municipality_in_file_name: str | None = None
    period_in_file_name: str | None = None

    @property
    def reporting_period(self) -> str:
        return p.quarter_label(self.reporting_year, self.reporting_quarter)

    @property
    def rows_read(self) -> int:
        return len(self.row_numbers)

    def column(self, name: str) -> list:
        """The typed values of an output column (all ``None`` if the file's template has no such column)."""
        found = self.values.get(name)
        return found if found is not None else [None] * len(self.row_numbers)

    @property
    def rows(self) -> list[ParsedRow]:
        """Row view (for inspection and tests; the ingest works on the columns)."""
        return [
            ParsedRow(
                n, {c: v[k] for c, v in self.values.items()}, dict(self.payments[k] or {}), list(self.errors.get(k, ()))
            )
            for k, n in enumerate(self.row_numbers)
        ]


# --- lookups of labels to keys ---------------------------------------------------------------------
def _label_index(labels: dict[str, str], code_list: str) -> dict[str, str]:
    """Normalised text -> key: the drop-down label, the key, and the accepted spellings of the code list
    (``seeds/coded_value_spellings.csv``), so "in Bau" finds in_construction as "Mülheim a.d. Ruhr" finds its
    municipality."""
    index = dict(coded_value_spellings()[code_list])
    for key, label in labels.items():
        index[normalise_name(label)] = key
        index[normalise_name(key)] = key
    return index


_MEASURES = _label_index(measure_type_labels(), "measure_type")
_STATUSES = _label_index(status_labels(), "status")
_SURFACES = _label_index(SURFACE_TYPES, "surface_type")


def lookup(value: object, index: dict[str, str]) -> str | None:
    """The key for a label or key as typed; unknown text is returned trimmed so validation can show it."""
    text = p.parse_text(value)
    if text is None:
        return None
    return index.get(normalise_name(text), text)


# --- grid reading ----------------------------------------------------------------------------------
_LOCKED_FILE_MESSAGE = (
    "Die Datei ist passwortgeschützt und kann nicht gelesen werden. Bitte ohne Kennwort erneut senden."
)
_CORRUPT_MESSAGE = (
    "Die Datei ist beschädigt oder keine Excel-Arbeitsmappe und lässt sich nicht öffnen. "
    "Bitte die Arbeitsmappe in Excel öffnen, als .xlsx speichern und erneut senden."
)


def _technical(exc: BaseException) -> str:
    """What the library said, for the data team's log (never in a message to the sender)."""
    return f"Lesefehler {type(exc).__name__}: {str(exc)[:300]}"


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
        if (
            "EncryptedPackage".encode("utf-16-le") in data
            or b"EncryptionInfo" in data
            or "EncryptionInfo".encode("utf-16-le") in data
        ):
            raise FileFailure(_LOCKED_FILE_MESSAGE, "file_password_protected")
    try:
        wb = pc.CalamineWorkbook.from_path(str(path))
    except pc.PasswordError:
        raise FileFailure(_LOCKED_FILE_MESSAGE, "file_password_protected") from None
    except Exception as exc:  # noqa: BLE001 - calamine raises several types for broken zips/xml/ole
        raise FileFailure(_CORRUPT_MESSAGE, "file_corrupt", _technical(exc)) from None
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
        raise FileFailure(_CORRUPT_MESSAGE, "file_corrupt", _technical(exc)) from None
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
        f"Dateityp „{suffix or path.name}“ wird nicht gelesen. Bitte die Vorlage als .xlsx senden.",
        "file_type_unsupported",
    )


# --- header detection ------------------------------------------------------------------------------
@cache
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
        if len(row) - row.count("") - row.count(None) < MIN_HEADER_MATCHES:
            continue  # too few filled cells to match enough headers (title, header block, blank rows)
        try:
            best, score = _best_version_cached(tuple(row))
        except TypeError:  # an unhashable cell value
            best, score = _best_version(row)
        if score >= MIN_HEADER_MATCHES:
            return i, best, score
    return None


@lru_cache(maxsize=4096)
def _best_version_cached(row: tuple) -> tuple[str, int]:
    # The header row of a template version recurs in every workbook of that version.
    return _best_version(row)


def _best_version(row) -> tuple[str, int]:
    """The template version whose headers the row matches best, and how many it matches."""
    headers = [normalise_header(c) for c in row]  # once per row, not once per template version
    scores = {v: _score_normalised(headers, v) for v in header_maps()}
    best = max(scores, key=lambda v: (scores[v], v))
    return best, scores[best]


def map_headers(row: list, version: str) -> tuple[dict[int, str], dict[int, str], list[str], list[str]]:
    """(column index -> canonical, column index -> payment period, unknown headers, missing headers)."""
    try:
        key = tuple(row)
        hash(key)
    except TypeError:
        return _map_headers(row, version)
    columns, payments, unknown, missing = _map_headers_cached(key, version)
    return dict(columns), dict(payments), list(unknown), list(missing)


@lru_cache(maxsize=1024)
def _map_headers_cached(row: tuple, version: str):
    # The same few dozen header rows recur in every batch (one per template version and reporting quarter).
    return _map_headers(list(row), version)


def _map_headers(row: list, version: str) -> tuple[dict[int, str], dict[int, str], list[str], list[str]]:
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


def header_failure(version: str, unknown: list[str], missing: list[str]) -> FileFailure:
    """The whole-file rejection for a header row that does not match ``version``: a short German message
    naming the unknown headers, the expected ones they replace or that are missing, and the version; the
    proposed header map entry goes to the data team (``data_team_note``), not to the sender."""
    maps = header_maps()[version]
    inverse = {h: c for c, h in maps.items()}
    # An unknown header is most likely a renamed expected one: pair it with the closest missing header.
    pairs, left = [], list(missing)
    for u in unknown:
        close = difflib.get_close_matches(u, left, n=1, cutoff=0.3)
        pairs.append((u, close[0] if close else None))
        if close:
            left.remove(close[0])
    lone = [i for i, (_, m) in enumerate(pairs) if m is None]
    if len(lone) == 1 and len(left) == 1:  # one header gone, one unknown one in its place: renamed
        pairs[lone[0]] = (pairs[lone[0]][0], left.pop())
    parts = [f"Die Kopfzeile passt nicht zur Vorlage (Version {version})."]
    renamed = [f"„{u}“ statt „{m}“" for u, m in pairs if m]
    strangers = [f"„{u}“" for u, m in pairs if not m]
    if renamed:
        parts.append("Umbenannte Spalte" + ("n" if len(renamed) > 1 else "") + ": " + ", ".join(renamed) + ".")
    if strangers:
        parts.append("Unbekannte Spalte" + ("n" if len(strangers) > 1 else "") + ": " + ", ".join(strangers) + ".")
    if left:
        parts.append("Erwartet, aber nicht gefunden: " + quoted(left) + ".")
    if strangers:
        parts.append(
            "Eigene Spalten bitte löschen; Anmerkungen gehören in die Spalte „"
            + header_maps()[version]["remarks"]
            + "“."
        )
    parts.append(
        "Bitte die Kopfzeilen der Vorlage unverändert verwenden (die Reihenfolge der Spalten ist frei; "
        "alle Kopfzeilen nennt die Vorlage der Servicestelle im Blatt „Anleitung“) und die Datei erneut senden."
    )
    proposals = [f"{inverse[m]} = „{u}“" for u, m in pairs if m]
    note = None
    if proposals or strangers:
        # the file by its name only: the quality report shows this note, and a path there reads as a key
        note = (
            f"Kopfzeilen-Vorschlag für header_maps.csv der Prognose-Vorlage, Spalte {version} (nach fachlicher "
            "Prüfung eintragen): "
            + "; ".join(proposals or ["keiner"])
            + (". Ohne Gegenstück: " + ", ".join(strangers) if strangers else "")
            + "."
        )
    return FileFailure(" ".join(parts), "header_mismatch", note)


# --- identity of the submission --------------------------------------------------------------------
def municipality_from_name(text: str) -> str | None:
    """The municipality a file name mentions (longest alias match over word windows)."""
    words = normalise_name(text).split()
    for n in range(min(5, len(words)), 0, -1):
        for i in range(len(words) - n + 1):
            key = _match_words(" ".join(words[i : i + n]))
            if key:
                return key
    return None


@lru_cache(maxsize=8192)
def _match_words(words: str) -> str | None:
    return match_municipality(words)  # file names repeat their words ('prognose', '2025 q1'): remembered


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


@lru_cache(maxsize=1)
def _block_labels() -> dict[str, str]:
    labels = {normalise_header(v): k for k, v in BLOCK_LABELS.items()}
    labels.update(
        {"kommune": "municipality", "quartal": "period", "berichtszeitraum": "period", "datum": "submitted_on"}
    )
    return labels


def _block_values(grid: list[list], header_index: int) -> dict[str, object]:
    """The header block above the table: label -> value ('Kommune:' | 'Bochum', or 'Kommune: Bochum' in one cell)."""
    found = {}
    for row in grid[:header_index]:
        try:
            pairs = _block_row_cached(tuple(row))
        except TypeError:  # an unhashable cell value
            pairs = _block_row(row)
        for key, value in pairs:
            if key not in found:
                found[key] = value
    return found


def _block_row(row) -> tuple[tuple[str, object], ...]:
    """(label key, value) for every label of the header block in one row, left to right."""
    labels = _block_labels()
    pairs = []
    for j, cell in enumerate(row):
        if not isinstance(cell, str) or not cell:
            continue
        key = labels.get(normalise_header(cell))
        if key:
            pairs.append((key, next((v for v in row[j + 1 :] if not p.is_blank(v)), None)))
            continue
        label, colon, rest = cell.partition(":")
        key = labels.get(normalise_header(label)) if colon and rest.strip() else None
        if key:
            pairs.append((key, rest.strip()))
    return tuple(pairs)


#: Rows of the header block recur across workbooks (title, 'Vorlagenversion:', blank rows).
_block_row_cached = lru_cache(maxsize=4096)(_block_row)


@dataclass
class Sender:
    """Whom a file came from and for which quarter, from everything the file offers.

    Strongest evidence first: the fields above the table ('Kommune:', 'Berichtsquartal:'), the municipality
    most rows name, the file name, the sheet names. A file rejected as a whole is identified the same way as
    far as it could be read (a corrupt file by its name), so its feedback reaches the municipality.
    """

    file_name: str
    sheet_names: list[str] = field(default_factory=list)
    block: dict[str, object] = field(default_factory=dict)
    row_keys: list[str | None] = field(default_factory=list)  # municipality keys of the rows, in row order

    @property
    def _stem(self) -> str:
        return Path(self.file_name).stem

    def block_municipality(self) -> str | None:
        value = p.parse_text(self.block.get("municipality"))
        return (match_municipality(value) or municipality_from_name(value)) if value else None

    def row_municipality(self) -> str | None:
        """The municipality most rows name (the first of the most frequent, in row order)."""
        known = municipality_by_key()
        counts = Counter(k for k in self.row_keys if k in known)
        return max(counts, key=counts.__getitem__, default=None)

    def municipality_key(self) -> str | None:
        return (
            self.block_municipality()
            or self.row_municipality()
            or municipality_from_name(self._stem)
            or next((k for k in map(municipality_from_name, self.sheet_names) if k), None)
        )

    def block_period(self) -> tuple[int, int] | None:
        if self.block.get("period") is None:
            return None
        try:
            q = p.parse_quarter(self.block["period"])
        except p.ParseError:
            return None
        return (int(q[:4]), int(q[-1])) if q else None

    def period(self) -> tuple[int, int] | None:
        return (
            self.block_period()
            or period_from_name(self._stem)
            or next((q for q in map(period_from_name, self.sheet_names) if q), None)
        )


# --- rows --------------------------------------------------------------------------------------------
_NUMBER_COLUMNS = ("total_cost_eur", "requested_funding_eur", "expected_disconnected_area_m2", "surface_change_m2")


_TOTAL_INITIALS = frozenset(t[0] for t in _TOTALS)


def _may_be_total(first: object) -> bool:
    """Whether a row's first filled cell may start a totals row (the initial is checked before normalising:
    nearly every row starts with a project id, each a new text)."""
    if first.__class__ is str and first.lstrip()[:1].casefold()[:1] not in _TOTAL_INITIALS:
        return False
    return normalise_header(first).startswith(_TOTALS)


def _is_note_or_total(cells: dict[int, object], columns: dict[int, str]) -> bool:
    """True for a totals row or a note under the table: neither carries a project."""
    texts = [v for v in cells.values() if isinstance(v, str)]
    id_col = next((j for j, c in columns.items() if c == "project_id"), None)
    first = normalise_header(next(iter(cells.values())))
    project_id = p.parse_text(cells.get(id_col)) if id_col is not None else None
    if any(first.startswith(t) for t in _TOTALS) and (
        project_id is None or normalise_header(project_id).startswith(_TOTALS)
    ):
        return True
    if len(cells) == 1 and texts:
        # A lone text is a note if it says so, or if it is a sentence in the leftmost column; a lone
        # title or amount elsewhere is a half-filled project row and must be rejected, not skipped.
        t = normalise_header(texts[0])
        leftmost = next(iter(cells)) <= min(columns)
        return t.startswith(_NOTE_START) or (leftmost and len(t.split()) >= 4)
    return False


#: Column kinds typed by ``columns.type_column`` (output column = canonical column).
_KINDS = {
    **{c: "number" for c in _NUMBER_COLUMNS},
    "expected_trees": "count",
    "funding_rate": "rate",
    "planned_application_period": "quarter",
    "planned_start_date": "date_start",
    "planned_completion_date": "date_end",
    "is_in_designated_area": "yes_no",
}


def _municipality(value: object) -> tuple[str | None, str | None]:
    text = p.parse_text(value)
    return text, ((match_municipality(text) or text) if text else None)


#: Columns whose text maps to a key: canonical -> (output column, typer remembering each distinct text).
_LOOKUPS = {
    "measure_type": ("measure_type_key", lookup_typer(lambda v: lookup(v, _MEASURES))),
    "status": ("status_key", lookup_typer(lambda v: lookup(v, _STATUSES))),
    "affected_surface_type": ("affected_surface_type", lookup_typer(lambda v: lookup(v, _SURFACES))),
}
_MUNICIPALITY_TYPER = lookup_typer(_municipality)
_REQUIRED_KEY = {"municipality": "municipality_key", "measure_type": "measure_type_key", "status": "status_key"}


def parse_rows(
    grid: list[list], header_index: int, columns: dict[int, str], payment_cols: dict[int, str], sheet: str | None
) -> tuple[list[int], dict[str, list], list[dict | None], dict[int, list[Rejection]]]:
    """The project rows below the header, typed column by column.

    Returns (row numbers, output column -> typed values, payments per row, row position -> rejections).
    Blank rows, totals rows and notes under the table are skipped; a cell that cannot be read is ``None``
    with a rejection naming its column (the same values and messages as the former cell-by-cell reader).
    """
    used = sorted(set(columns) | set(payment_cols))
    width = used[-1] + 1
    data = grid[header_index + 1 :]
    if any(len(r) < width for r in data):  # CSV rows end at their last value
        data = [list(r) + [""] * (width - len(r)) if len(r) < width else r for r in data]
    pick = itemgetter(*used)

    # Which rows carry a project: not blank, not a totals row, not a note under the table. Decided on the first
    # two columns for nearly every row; only the kept rows are then cut into columns.
    keep = []
    n_used = len(used)
    first_col = mask_blank([r[used[0]] for r in data])
    second_col = mask_blank([r[used[1]] for r in data]) if n_used > 1 else [None] * len(data)
    for i in range(len(data)):
        first = first_col[i]
        if first is not None and second_col[i] is not None and not _may_be_total(first):
            keep.append(i)  # a project row as nearly all are: two cells filled, the first no total
            continue
        cells_t = mask_blank(pick(data[i]))
        present = n_used - cells_t.count(None)
        if not present:
            continue
        first = next(v for v in cells_t if v is not None)
        if present == 1 or _may_be_total(first):
            cells = {j: v for j, v in zip(used, cells_t) if v is not None}
            if _is_note_or_total(cells, columns):
                continue
        keep.append(i)
    if len(keep) != len(data):
        data = [data[i] for i in keep]
    by_col = dict(zip(used, zip(*map(pick, data)))) if data else {j: () for j in used}
    row_numbers = [header_index + 2 + i for i in keep]

    values: dict[str, list] = {}
    errors: dict[int, list[Rejection]] = {}

    def err(k: int, column: str, value: object, rule: str, message: str) -> None:
        errors.setdefault(k, []).append(Rejection(row_numbers[k], column, value, rule, message, sheet))

    failed: dict[str, set[int]] = {}  # canonical -> row positions with a parse error
    raw_of: dict[str, list] = {}  # canonical -> its cells, blanks as None
    for j, canonical in columns.items():  # in column order, so a row lists its errors left to right
        if canonical == "municipality" or canonical in _LOOKUPS:
            raw = raw_of[canonical] = mask_blank(by_col[j])
            if canonical == "municipality":
                pairs, _ = _MUNICIPALITY_TYPER(raw)
                values["municipality_name_found"] = [None if x is None else x[0] for x in pairs]
                values["municipality_key"] = [None if x is None else x[1] for x in pairs]
            else:
                out, typer = _LOOKUPS[canonical]
                values[out], _ = typer(raw)
            continue
        raw, typed, bad = read_column(_KINDS.get(canonical, "text"), by_col[j])
        raw_of[canonical] = raw
        values[canonical] = typed
        if bad:
            label = column_label(canonical)
            failed[canonical] = {k for k, _ in bad}
            for k, exc in bad:
                err(k, canonical, raw[k], exc.rule, f"{label}: {exc.message_de}")
    for canonical in REQUIRED_COLUMNS:
        key = _REQUIRED_KEY.get(canonical, canonical)
        typed = values.get(key)
        raw = raw_of.get(canonical)
        bad = failed.get(canonical, ())
        empty = range(len(row_numbers)) if typed is None else [k for k, v in enumerate(typed) if v is None]
        for k in empty:
            if k not in bad:
                err(
                    k,
                    canonical,
                    None if raw is None else raw[k],
                    "required",
                    f"{column_label(canonical)} fehlt; diese Angabe ist Pflicht.",
                )
    # Rate and requested amount determine each other; fill the one left empty (not a correction). Only from a
    # value the rules accept (a share of the cost above 0 and at most 100 %): otherwise the filled-in cell would
    # be rejected too, as if the sender had typed it, beside the rejection of the value they did type.
    cost, requested, rate = (
        values.get("total_cost_eur"),
        values.get("requested_funding_eur"),
        values.get("funding_rate"),
    )
    if cost is not None and requested is not None and rate is not None:
        for k in range(len(row_numbers)):
            c, q, r = cost[k], requested[k], rate[k]
            if q is None and c and r is not None and 0 < r <= 1:
                requested[k] = q = round(c * r, 2)
            if r is None and c and q is not None and 0 < q <= c:
                rate[k] = round(q / c, 6)
    payments: list[dict | None] = [None] * len(row_numbers)
    for j, period in payment_cols.items():
        raw, amounts, bad = read_column("number", by_col[j])
        if bad:
            header = " ".join(str(grid[header_index][j]).split())  # as the file writes it: 'Mittelabruf Q2/2027 in EUR'
            for k, exc in bad:
                err(k, PAYMENT_COLUMN, raw[k], exc.rule, f"{header}: {exc.message_de}")
        for k, amount in enumerate(amounts):
            if amount is not None:
                if payments[k] is None:
                    payments[k] = {}
                payments[k][period] = amount
    return row_numbers, values, payments, errors


def read_file(path: Path, source_file: str) -> ParsedFile:
    """Read and parse one delivered file, or raise FileFailure (unreadable, no/unknown header, no period).

    A FileFailure says whom the file came from as far as the file tells (``Sender``), so a file rejected as
    a whole is filed under its municipality and quarter like every other feedback.
    """
    sender = Sender(Path(source_file).name)
    try:
        return _read_file(path, source_file, sender)
    except FileFailure as exc:
        exc.municipality_key = sender.municipality_key()
        period = sender.period()
        exc.period = p.quarter_label(*period) if period else None
        raise


def _column_keys(grid: list[list], header_index: int, columns: dict[int, str]) -> list[str | None]:
    """The municipality each row below the header names (for a file whose header failed: who sent it)."""
    j = next((j for j, c in columns.items() if c == "municipality"), None)
    if j is None:
        return []
    return [
        match_municipality(p.parse_text(row[j])) if len(row) > j and not p.is_blank(row[j]) else None
        for row in grid[header_index + 1 :]
    ]


def _read_file(path: Path, source_file: str, sender: Sender) -> ParsedFile:
    grids = read_grids(path)
    sender.sheet_names = [n for n, _, _ in grids if n]
    candidates = []
    for name, grid, visible in grids:
        found = find_header(grid)
        if found:
            candidates.append((visible, name == PROJECT_SHEET, found[2], name, grid, found))
    if not candidates:
        # No table, but perhaps the header block: visible sheets first.
        for _, grid, _ in sorted(grids, key=lambda g: not g[2]):
            sender.block = _block_values(grid, HEADER_SEARCH_ROWS)
            if sender.block_municipality() or sender.block_period():
                break
        seen = sender.sheet_names
        raise FileFailure(
            "Keine Projekttabelle gefunden: keine Zeile mit den Kopfzeilen der Vorlage"
            + (f" in den Blättern {', '.join(seen)}" if seen else "")
            + ". Bitte die Vorlage verwenden.",
            "header_not_found",
        )
    # Visible sheets first (a hidden sheet is often an old copy), then the template's sheet name.
    candidates.sort(key=lambda c: (not c[0], not c[1], -c[2]))
    _, _, _, sheet, grid, (header_index, version, _) = candidates[0]
    block = sender.block = _block_values(grid, header_index)
    declared = str(p.parse_text(block["version"])) if block.get("version") is not None else None
    if (
        declared != version
        and declared in header_maps()
        and _header_score(grid[header_index], declared) >= _header_score(grid[header_index], version)
    ):
        version = declared
    header_row = grid[header_index]
    columns, payment_cols, unknown, missing = map_headers(header_row, version)
    if unknown or missing:
        sender.row_keys = _column_keys(grid, header_index, columns)
        raise header_failure(version, unknown, missing)

    file_name = sender.file_name
    name_key = municipality_from_name(Path(file_name).stem)
    name_period = period_from_name(Path(file_name).stem)
    period = sender.period()
    if period is None:
        raise FileFailure(
            "Berichtsquartal fehlt: weder im Feld „Berichtsquartal:“ über der Tabelle noch im Dateinamen "
            "(z. B. Prognose_Bochum_2022-Q3.xlsx). Bitte das Quartal eintragen und die Datei erneut senden.",
            "period_missing",
        )
    submitted_on = None
    if block.get("submitted_on") is not None:
        try:
            submitted_on = p.parse_date(block["submitted_on"])
        except p.ParseError:
            submitted_on = None

    row_numbers, values, payments, errors = parse_rows(grid, header_index, columns, payment_cols, sheet)

    sender.row_keys = values.get("municipality_key") or []
    municipality_key = sender.municipality_key()
    if municipality_key is None:
        raise FileFailure(
            "Kommune nicht erkennbar: weder im Feld „Kommune:“ über der Tabelle, in den Zeilen noch im Dateinamen. "
            "Bitte die Kommune eintragen und die Datei erneut senden.",
            "municipality_missing",
        )
    notices = []
    if name_key and name_key != municipality_key:
        names = municipality_by_key()
        notices.append(
            Rejection(
                None,
                FILE_NAME_COLUMN,
                file_name,
                "file_name_municipality_mismatch",
                f"Der Dateiname nennt {names[name_key].name}, die Arbeitsmappe aber {names[municipality_key].name}. "
                f"Die Datei wurde als Meldung von {names[municipality_key].name} geladen; bitte Dateinamen prüfen.",
                None,
            )
        )
    if name_period and name_period != period:
        notices.append(
            Rejection(
                None,
                FILE_NAME_COLUMN,
                file_name,
                "file_name_period_mismatch",
                f"Der Dateiname nennt {p.quarter_label(*name_period)}, das Feld „Berichtsquartal“ "
                f"{p.quarter_label(*period)}. Geladen als {p.quarter_label(*period)}; bitte prüfen.",
                None,
            )
        )
    if payment_cols:
        first_column, first = min(payment_cols.items(), key=lambda jc: jc[1])
        expected = p.quarter_label(*next_quarters(*period, 1)[0])
        if first != expected:  # e.g. last quarter's workbook with only the Berichtsquartal changed
            notices.append(
                Rejection(
                    None,
                    PAYMENT_COLUMN,
                    " ".join(str(header_row[first_column]).split()),
                    "payment_columns_not_following_period",
                    f"Die Spalten „Mittelabruf“ beginnen mit {format_quarter(first)}; zum Berichtsquartal "
                    f"{format_quarter(p.quarter_label(*period))} gehören die Quartale ab {format_quarter(expected)} "
                    "(Vorlage eines anderen Quartals?). Übernommen wurden die Beträge zu den Quartalen, die die "
                    "Spalten nennen; bitte die Vorlage des Berichtsquartals verwenden.",
                    None,
                )
            )
    # Duplicate project ids: the first row counts, later ones are rejected (the sender decides which is right).
    first_row: dict[str, int] = {}
    for k, pid in enumerate(values.get("project_id") or []):
        if pid is None:
            continue
        if pid in first_row:
            errors.setdefault(k, []).append(
                Rejection(
                    row_numbers[k],
                    "project_id",
                    pid,
                    "duplicate_project_id",
                    f"Projekt-ID {pid} steht mehrfach in dieser Datei (zuerst in Zeile {first_row[pid]}); "
                    "nur die erste Zeile wurde übernommen.",
                    sheet,
                )
            )
        else:
            first_row[pid] = row_numbers[k]
    return ParsedFile(
        source_file=source_file,
        sheet=sheet,
        template_version=version,
        municipality_key=municipality_key,
        reporting_year=period[0],
        reporting_quarter=period[1],
        submitted_on=submitted_on,
        revision=revision_from_name(Path(file_name).stem),
        row_numbers=row_numbers,
        values=values,
        payments=payments,
        errors=errors,
        file_notices=notices,
        municipality_in_file_name=name_key,
        period_in_file_name=p.quarter_label(*name_period) if name_period else None,
    )
