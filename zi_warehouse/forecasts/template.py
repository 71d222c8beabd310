"""The coordinators' forecast workbook template: versions, header maps, labels, and how a workbook is laid out.

Header maps are data (``header_maps.csv`` beside this module: rows are canonical column names, one
column per template version, cells are the header text). A new template version is a new column there
plus its column order below; the reader never relies on positions. ``write_template`` writes the blank
workbook (``zi template``); the demo writer uses ``write_project_sheet`` so demo files and the real
template cannot drift apart. Documentation for coordinators: ``docs/template.md``.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

from zi_warehouse.forecasts.parsing import YES_NO, parse_quarter_text, quarter_bounds
from zi_warehouse.forecasts.printing import row_height, setup_page
from zi_warehouse.reference import measure_types, municipalities, project_statuses

HEADER_MAPS_CSV = Path(__file__).with_name("header_maps.csv")
VERSIONS = ("2020", "2021")
CURRENT_VERSION = "2021"
PROJECT_SHEET = "Projekte"
INSTRUCTIONS_SHEET = "Anleitung"
LISTS_SHEET = "Listen"
#: Canonical name of the repeated per-quarter payment column; its header text carries ``{quarter}``.
PAYMENT_COLUMN = "forecast_payment_eur"
#: How many forecast payment quarters the template offers after the reporting quarter.
PAYMENT_QUARTERS = 8

#: Column order per version (the 2021 revision moved measure type and status forward and the contact
#: to the end, and added the affected surface for the evaporation KPI).
COLUMN_ORDER = {
    "2020": [
        "project_id",
        "title",
        "municipality",
        "is_in_designated_area",
        "designated_area_name",
        "measure_type",
        "status",
        "total_cost_eur",
        "requested_funding_eur",
        "funding_rate",
        "planned_application_period",
        "planned_start_date",
        "planned_completion_date",
        "expected_disconnected_area_m2",
        "expected_trees",
        "contact_name",
        "contact_email",
        "remarks",
    ],
    "2021": [
        "municipality",
        "project_id",
        "title",
        "measure_type",
        "status",
        "is_in_designated_area",
        "designated_area_name",
        "total_cost_eur",
        "requested_funding_eur",
        "funding_rate",
        "planned_application_period",
        "planned_start_date",
        "planned_completion_date",
        "expected_disconnected_area_m2",
        "affected_surface_type",
        "surface_change_m2",
        "expected_trees",
        "remarks",
        "contact_name",
        "contact_email",
    ],
}
#: Columns a row must fill; everything else may stay empty in an early planning stage.
REQUIRED_COLUMNS = ("project_id", "title", "municipality", "measure_type", "status", "total_cost_eur")

#: Surfaces a measure changes (docs/domain.md#element-types), German label as shown in the drop-down.
SURFACE_TYPES = {
    "asphalt": "Asphalt / Beton",
    "flat_roof": "Flachdach",
    "pitched_roof": "Schrägdach",
    "paving": "Pflaster",
    "gravel": "Schotter / Kies",
    "vegetated": "Grünfläche",
}

#: Labels of the header block above the table (the reader finds them by text, not position).
BLOCK_LABELS = {
    "version": "Vorlagenversion:",
    "municipality": "Kommune:",
    "period": "Berichtsquartal:",
    "submitted_on": "Stand:",
}
TITLE = "Zukunftsinitiative Klima.Werk – Quartalsprognose der Projekte"


def normalise_header(text: object) -> str:
    """Header text as compared: case, spacing, line breaks and a trailing colon or asterisk ignored."""
    return _normalise_text(text if isinstance(text, str) else str(text or ""))


@lru_cache(maxsize=1 << 16)
def _normalise_text(text: str) -> str:
    # Cached: the reader normalises every cell of the first rows of every workbook while looking for the
    # header row, and the same few hundred texts recur in every workbook.
    s = " ".join(text.replace("\u00a0", " ").split()).casefold()
    return s.rstrip(":* ").strip()


@cache
def header_maps() -> dict[str, dict[str, str]]:
    """version -> {canonical column: header text} (payment column: a pattern with ``{quarter}``)."""
    with open(HEADER_MAPS_CSV, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    versions = [c for c in rows[0] if c != "canonical"]
    return {v: {r["canonical"]: r[v] for r in rows if r[v].strip()} for v in versions}


def payment_header(version: str, year: int, quarter: int) -> str:
    return header_maps()[version][PAYMENT_COLUMN].format(quarter=f"Q{quarter}/{year}")


def payment_header_de(version: str) -> str:
    """The payment column's header as people read it in a text: 'Mittelabruf Qn/JJJJ in EUR'."""
    return header_maps()[version][PAYMENT_COLUMN].format(quarter="Qn/JJJJ")


@cache
def payment_pattern(version: str) -> re.Pattern:
    template = normalise_header(header_maps()[version][PAYMENT_COLUMN])
    before, after = template.split("{quarter}")
    return re.compile("^" + re.escape(before) + r"(?P<quarter>.+?)" + re.escape(after) + "$")


def version_for(year: int) -> str:
    """The template version in use for a reporting year (the revision came with 2021)."""
    return "2020" if year <= 2020 else "2021"


def measure_type_labels() -> dict[str, str]:
    return {m["measure_type_key"]: m["measure_type_label_de"] for m in measure_types()}


def status_labels() -> dict[str, str]:
    return {s["status_key"]: s["status_label_de"] for s in project_statuses()}


def next_quarters(year: int, quarter: int, n: int = PAYMENT_QUARTERS) -> list[tuple[int, int]]:
    out = []
    for _ in range(n):
        year, quarter = (year + 1, 1) if quarter == 4 else (year, quarter + 1)
        out.append((year, quarter))
    return out


@dataclass
class SheetLayout:
    """How a filled-in project sheet deviates from the clean template (the demo's formatting mess)."""

    leading_blank_cols: int = 0
    extra_rows_above_block: int = 0
    blank_rows_after: set[int] = field(default_factory=set)  # data row indexes followed by a blank row
    totals_row: bool = False
    notes: list[str] = field(default_factory=list)
    header_trailing_space: bool = False


class _Formats:
    def __init__(self, wb):
        self.title = wb.add_format({"bold": True, "font_size": 14})
        self.label = wb.add_format({"bold": True})
        self.header = wb.add_format(
            {"bold": True, "text_wrap": True, "valign": "top", "bg_color": "#DCE6F1", "border": 1, "font_size": 9}
        )
        # Data cells align at the top: a row grows for wrapped text, and its other cells stay on its first line.
        self.top = wb.add_format({"valign": "top"})
        self.wrap = wb.add_format({"text_wrap": True, "valign": "top"})
        # the headers say "in EUR"; without the € sign the columns stay narrow enough to print on A4
        self.eur = wb.add_format({"num_format": "#,##0.00", "valign": "top"})
        self.eur_whole = wb.add_format({"num_format": "#,##0", "valign": "top"})  # payments: whole euros suffice
        self.m2 = wb.add_format({"num_format": "#,##0", "valign": "top"})
        self.pct = wb.add_format({"num_format": "0%", "valign": "top"})
        self.date = wb.add_format({"num_format": "dd.mm.yyyy", "valign": "top"})
        self.int = wb.add_format({"num_format": "0", "valign": "top"})


_COLUMN_FORMAT = {
    "total_cost_eur": "eur",
    "requested_funding_eur": "eur",
    PAYMENT_COLUMN: "eur",
    "funding_rate": "pct",
    "planned_start_date": "date",
    "planned_completion_date": "date",
    "expected_disconnected_area_m2": "m2",
    "surface_change_m2": "m2",
    "expected_trees": "int",
}


def _write_lists_sheet(wb) -> dict[str, str]:
    """A hidden sheet with the drop-down values; returns list name -> absolute range."""
    ws = wb.add_worksheet(LISTS_SHEET)
    lists = {
        "municipality": [m.name for m in municipalities()],
        "measure_type": list(measure_type_labels().values()),
        "status": list(status_labels().values()),
        "affected_surface_type": list(SURFACE_TYPES.values()),
        "yes_no": list(YES_NO),
    }
    # German titles for whoever unhides the sheet; plurals, so that no title reads as a header of the table.
    titles = {
        "municipality": "Kommunen",
        "measure_type": "Maßnahmentypen",
        "status": "Projektstatus-Werte",
        "affected_surface_type": "Oberflächen",
        "yes_no": "ja/nein-Werte",
    }
    ranges = {}
    for col, (name, values) in enumerate(lists.items()):
        ws.write(0, col, titles[name])
        for i, v in enumerate(values, start=1):
            ws.write_string(i, col, v)
        letter = _col_letter(col)
        ranges[name] = f"={LISTS_SHEET}!${letter}$2:${letter}${len(values) + 1}"
    ws.hide()
    return ranges


def _col_letter(col: int) -> str:
    s = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        s = chr(65 + rem) + s
    return s


def write_instructions(wb, version: str, period: tuple[int, int] | None = None) -> None:
    """The instructions sheet; ``period`` (the reporting quarter) names the payment columns the template offers."""
    ws = wb.add_worksheet(INSTRUCTIONS_SHEET)
    widths = (34, 80)
    ws.set_column(0, 0, widths[0])
    ws.set_column(1, 1, widths[1])
    title = wb.add_format({"bold": True, "font_size": 14})
    bold = wb.add_format({"bold": True, "valign": "top", "bottom": 1})
    wrap = wb.add_format({"text_wrap": True, "valign": "top"})
    top = wb.add_format({"valign": "top", "text_wrap": True})
    # The title over both columns, so it prints as one line and never splits across pages.
    ws.merge_range(0, 0, 0, 1, f"Anleitung zur Quartalsprognose (Vorlagenversion {version})", title)
    lines = [
        "Bitte je Kommune und Quartal eine Datei senden, Dateiname: Prognose_<Kommune>_<JJJJ>-Q<n>.xlsx.",
        "Kopfzeilen im Blatt „Projekte“ nicht umbenennen, keine Spalten löschen oder hinzufügen (eine Datei mit "
        "fremder Spalte wird ganz abgewiesen; eigene Anmerkungen bitte in die Spalte „Bemerkungen“); "
        "die Reihenfolge der Spalten ist egal.",
        "Eine Zeile je Projekt; die Projekt-ID bleibt über alle Quartale gleich und ist je Datei eindeutig.",
        "Beträge in Euro (z. B. 1.234,56), Flächen in m², Förderquote in % (z. B. 90 %).",
        "Termine als Datum (TT.MM.JJJJ) oder Quartal (Q3/2022); Antragstellung als Quartal.",
        "Kommune, Maßnahmentyp, Status und Oberfläche bitte aus der Auswahlliste wählen.",
        "Beantragte Förderung darf die Gesamtkosten nicht übersteigen; Fertigstellung nicht vor Baubeginn.",
        "Mittelabruf: erwartete Auszahlungen je Quartal in Euro (leer lassen, wenn keine erwartet).",
        "Abgewiesene Zeilen erhalten Sie mit Begründung als Rückmeldedatei zurück.",
    ]
    for i, line in enumerate(lines, start=2):
        ws.write(i, 0, f"{i - 1}.", top)
        ws.write(i, 1, line, wrap)
        ws.set_row(i, row_height([(line, widths[1])]))
    first = len(lines) + 3
    ws.write(first, 0, "Spalte", bold)
    ws.write(first, 1, "Bedeutung", bold)
    r = first
    rows = [(header_maps()[version][c], COLUMN_HELP_DE[c]) for c in COLUMN_ORDER[version]]
    quarters = next_quarters(*period) if period else []
    if quarters:
        (y0, q0), (y1, q1) = quarters[0], quarters[-1]
        rows.append(
            (
                payment_header(version, y0, q0),
                f"{COLUMN_HELP_DE[PAYMENT_COLUMN]} Diese Vorlage: {len(quarters)} Spalten, Q{q0}/{y0} bis Q{q1}/{y1}.",
            )
        )
    else:
        rows.append((payment_header_de(version), COLUMN_HELP_DE[PAYMENT_COLUMN]))
    r = first
    for r, (header, meaning) in enumerate(rows, start=first + 1):
        ws.write(r, 0, header, top)
        ws.write(r, 1, meaning, wrap)
        ws.set_row(r, row_height([(header, widths[0]), (meaning, widths[1])]))
    # the header of the column table is repeated when the table continues on a second page
    setup_page(ws, landscape=False, area=(0, 0, r, 1), repeat_row=first, footer_left=TITLE)


COLUMN_HELP_DE = {
    "project_id": "Eigene Projektnummer der Kommune, über alle Quartale gleich (Pflicht).",
    "title": "Kurzbezeichnung der Maßnahme (Pflicht).",
    "municipality": "Kommune aus der Auswahlliste (Pflicht).",
    "is_in_designated_area": "Liegt die Maßnahme im Gestaltungsraum (früher Betrachtungsraum)? ja/nein.",
    "designated_area_name": "Name des Gestaltungsraums, falls ja.",
    "measure_type": "Förderfähiger Maßnahmentyp aus der Auswahlliste (Pflicht).",
    "status": "Projektstatus aus der Auswahlliste (Pflicht).",
    "total_cost_eur": "Geschätzte Gesamtkosten in Euro (Pflicht, > 0).",
    "requested_funding_eur": "Beantragte oder zu beantragende Förderung in Euro (≤ Gesamtkosten).",
    "funding_rate": "Förderquote in % (bis 100 % für Kommunen, bis 90 % für Private).",
    "planned_application_period": "Quartal der geplanten Antragstellung, z. B. Q3/2022.",
    "planned_start_date": "Geplanter Baubeginn (Datum oder Quartal).",
    "planned_completion_date": "Geplante Fertigstellung (Datum oder Quartal, nicht vor Baubeginn).",
    "expected_disconnected_area_m2": "Erwartete vom Mischwasserkanal abgekoppelte Fläche in m² (≥ 0).",
    "affected_surface_type": "Oberfläche, die die Maßnahme verändert (z. B. Flachdach, Asphalt).",
    "surface_change_m2": "Veränderte Fläche dieser Oberfläche in m² (≥ 0), z. B. begrüntes Flachdach.",
    "expected_trees": "Anzahl neu gepflanzter Bäume (ganze Zahl ≥ 0).",
    "contact_name": "Ansprechperson (wird nicht veröffentlicht).",
    "contact_email": "E-Mail der Ansprechperson (wird nicht veröffentlicht).",
    "remarks": "Freitext.",
    PAYMENT_COLUMN: "Erwarteter Mittelabruf im genannten Quartal in Euro; eine Spalte je Quartal.",
}

#: Column widths in characters: as narrow as their content allows, so that the whole table fits the width of
#: an A4 page in landscape when printed (the header row wraps; 12 is used for a column not listed).
COLUMN_WIDTHS = {
    "municipality": 11,
    "project_id": 9,
    "title": 18,
    "measure_type": 14,
    "status": 11,
    "is_in_designated_area": 7,
    "designated_area_name": 11,
    "total_cost_eur": 12,
    "requested_funding_eur": 12,
    "funding_rate": 6,
    "planned_application_period": 8,
    "planned_start_date": 10,
    "planned_completion_date": 10,
    "expected_disconnected_area_m2": 8,
    "affected_surface_type": 10,
    "surface_change_m2": 8,
    "expected_trees": 6,
    "remarks": 12,
    "contact_name": 11,
    "contact_email": 16,
    PAYMENT_COLUMN: 9,
}
#: Width of the first column, which also holds the labels of the header block ("Berichtsquartal:").
BLOCK_LABEL_WIDTH = 15
#: Columns of free text or labels: their cells wrap instead of running into the next column when printed.
WRAPPED_COLUMNS = (
    "title",
    "measure_type",
    "status",
    "designated_area_name",
    "affected_surface_type",
    "remarks",
    "contact_name",
    "contact_email",
    "municipality",
    "project_id",
)


def write_project_sheet(
    wb,
    version: str,
    municipality_name: str,
    period: tuple[int, int] | None,
    submitted_on: dt.date | None,
    rows: list[dict],
    payment_periods: list[tuple[int, int]],
    layout: SheetLayout | None = None,
    lists: dict[str, str] | None = None,
    sheet_name: str = PROJECT_SHEET,
) -> list[int]:
    """Write the project sheet; returns the 1-based sheet row number of each entry in ``rows``.

    A row is ``{canonical: value}`` plus ``"payments": {(year, quarter): amount}``; a value is written
    as its Python type (str as text, so demo rows can carry German text numbers).
    """
    layout = layout or SheetLayout()
    fmt = _Formats(wb)
    ws = wb.add_worksheet(sheet_name)
    c0 = layout.leading_blank_cols
    r = layout.extra_rows_above_block
    columns = COLUMN_ORDER[version]
    hmap = header_maps()[version]
    headers = [hmap[c] for c in columns] + [payment_header(version, y, q) for y, q in payment_periods]
    ncols = len(headers)
    ws.merge_range(r, c0, r, c0 + 6, TITLE, fmt.title)
    ws.write(r + 1, c0, BLOCK_LABELS["version"], fmt.label)
    ws.write_string(r + 1, c0 + 1, version)
    ws.write(r + 2, c0, BLOCK_LABELS["municipality"], fmt.label)
    ws.write_string(r + 2, c0 + 1, municipality_name)
    ws.write(r + 3, c0, BLOCK_LABELS["period"], fmt.label)
    if period:
        ws.write_string(r + 3, c0 + 1, f"Q{period[1]}/{period[0]}")
    ws.write(r + 4, c0, BLOCK_LABELS["submitted_on"], fmt.label)
    if submitted_on:
        ws.write_datetime(r + 4, c0 + 1, dt.datetime.combine(submitted_on, dt.time()), fmt.date)
    header_row = r + 6
    for j, h in enumerate(headers):
        ws.write_string(
            header_row, c0 + j, h + (" " if layout.header_trailing_space and j % 5 == 1 else ""), fmt.header
        )
    kinds = columns + [PAYMENT_COLUMN] * len(payment_periods)
    widths = [COLUMN_WIDTHS.get(canonical, 12) for canonical in kinds]
    widths[0] = max(widths[0], BLOCK_LABEL_WIDTH)  # the labels of the header block stand in the first column
    # header texts wrap (9 pt: about 1.2 characters per unit of width, 12 pt per line)
    ws.set_row(header_row, row_height([(h, w * 1.2) for h, w in zip(headers, widths)], line_pt=12))
    for j, canonical in enumerate(kinds):
        ws.set_column(c0 + j, c0 + j, widths[j], fmt.wrap if canonical in WRAPPED_COLUMNS else None)
    ws.freeze_panes(header_row + 1, c0 + 1)
    row_numbers = []
    rr = header_row + 1
    for i, row in enumerate(rows):
        for j, canonical in enumerate(columns):
            cell_format = getattr(fmt, _COLUMN_FORMAT.get(canonical, ""), None) or (
                fmt.wrap if canonical in WRAPPED_COLUMNS else fmt.top
            )
            _write_cell(ws, rr, c0 + j, row.get(canonical), cell_format)
        for k, pq in enumerate(payment_periods):
            _write_cell(ws, rr, c0 + len(columns) + k, row.get("payments", {}).get(pq), fmt.eur_whole)
        wrapped = [
            (row.get(c), widths[j])
            for j, c in enumerate(columns)
            if c in WRAPPED_COLUMNS and isinstance(row.get(c), str)
        ]
        if wrapped:  # LibreOffice does not grow a row for wrapped text when it opens the file
            ws.set_row(rr, row_height(wrapped))
        row_numbers.append(rr + 1)
        rr += 1
        if i in layout.blank_rows_after:
            rr += 1
    last_data = rr
    if layout.totals_row and rows:
        ws.write_string(rr, c0, "Summe")
        for name in ("total_cost_eur", "requested_funding_eur"):
            j = columns.index(name)
            col = _col_letter(c0 + j)
            ws.write_formula(
                rr,
                c0 + j,
                f"=SUM({col}{header_row + 2}:{col}{last_data})",
                fmt.eur,
                sum(v for v in (x.get(name) for x in rows) if isinstance(v, (int, float))),
            )
        rr += 1
    rr += 1
    for note in layout.notes:
        ws.write_string(rr, c0, note)
        rr += 1
    # Printed on A4 landscape, every column on the page width, the header row on every page.
    setup_page(
        ws,
        landscape=True,
        area=(r, c0, max(rr - 1, header_row + 1), c0 + ncols - 1),
        repeat_row=header_row,
        footer_left=TITLE,
    )
    # Drop-downs (German labels) over a generous block of rows, so coordinators can add projects.
    if lists:
        first, last = header_row + 1, max(header_row + 200, last_data)
        ws.data_validation(r + 2, c0 + 1, r + 2, c0 + 1, {"validate": "list", "source": lists["municipality"]})
        for canonical, list_name in (
            ("municipality", "municipality"),
            ("measure_type", "measure_type"),
            ("status", "status"),
            ("affected_surface_type", "affected_surface_type"),
            ("is_in_designated_area", "yes_no"),
        ):
            if canonical in columns:
                j = c0 + columns.index(canonical)
                ws.data_validation(
                    first,
                    j,
                    last,
                    j,
                    {
                        "validate": "list",
                        "source": lists[list_name],
                        "error_title": "Ungültiger Wert",
                        "error_message": "Bitte einen Wert aus der Liste wählen.",
                    },
                )
    return row_numbers


def _write_cell(ws, r: int, c: int, value, cell_format) -> None:
    if value is None:
        return
    if isinstance(value, str):
        ws.write_string(r, c, value, cell_format)
    elif isinstance(value, bool):
        ws.write_string(r, c, YES_NO[0] if value else YES_NO[1], cell_format)
    elif isinstance(value, dt.date):
        ws.write_datetime(r, c, dt.datetime.combine(value, dt.time()), cell_format)
    else:
        ws.write_number(r, c, value, cell_format)


def new_workbook(path: Path, created: dt.date | None = None):
    """An xlsxwriter workbook; ``created`` fixes the document date so equal content gives equal bytes."""
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_formulas": False, "in_memory": True})
    if created is not None:
        wb.set_properties({"created": dt.datetime.combine(created, dt.time(9, 0))})
    return wb


def write_template(path: Path, version: str = "current", period: tuple[int, int] | str | None = None) -> Path:
    """Write the blank template (instructions, project sheet with drop-downs, hidden value lists).

    ``period`` (year, quarter), or a quarter as text ('2026-Q3', 'Q3/2026'), labels the payment columns;
    without it they follow today's quarter.
    """
    version = CURRENT_VERSION if version == "current" else version
    if version not in COLUMN_ORDER:
        raise ValueError(f"unknown template version {version!r}; known: {', '.join(VERSIONS)}")
    if isinstance(period, str):
        quarter = parse_quarter_text(period)
        if quarter is None:
            raise ValueError(f"not a quarter: {period!r} (e.g. 2026-Q3)")
        period = quarter
    if period is None:
        today = dt.date.today()
        period = (today.year, (today.month - 1) // 3 + 1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = new_workbook(path)
    write_instructions(wb, version, period)
    lists = _write_lists_sheet(wb)
    write_project_sheet(wb, version, "", period, None, [], next_quarters(*period), lists=lists)
    wb.get_worksheet_by_name(PROJECT_SHEET).activate()
    wb.close()
    return path


def period_end(year: int, quarter: int) -> dt.date:
    return quarter_bounds(year, quarter)[1]
