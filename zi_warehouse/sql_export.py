"""Query results as files for Excel users: ``zi sql "..." --out x.csv`` or ``--out x.xlsx``.

What belongs here: writing every row of a query's result to CSV or XLSX the way German Excel reads it.

- CSV: ``;`` separated, decimal comma, UTF-8 with BOM (Excel then reads umlauts), keys stay text, dates ISO
  (Excel recognises them), timestamps with time zone in local time.
- XLSX (sheet "Ergebnis"): German column headers from the columns' descriptions in the published warehouse
  (the dbt YAML's, carried as column comments; a column without one keeps its key), the keys on a second
  sheet "Spalten" (key, header, description, unit) so the result sheet keeps a single header row for
  filters and pivot tables; dates and timestamps as Excel dates (local time, Excel has no time zones);
  number formats with the unit of the column (``_eur`` as ``#.##0,00 €``, ``_m2`` as m², ``_pct`` as %
  of the number itself, which is already in percent); column widths from the content; the header row
  frozen and filterable.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from zi_warehouse.data_dictionary import PUBLIC_SCHEMA, UNIT_NAMES_DE, unit_of
from zi_warehouse.german import LOCAL_TIME_ZONE
from zi_warehouse.sql_shell import is_blank, split_statements
from zi_warehouse.warehouse import INTEGER_TYPES

OUTPUT_SUFFIXES = (".csv", ".xlsx")
RESULT_SHEET = "Ergebnis"
COLUMNS_SHEET = "Spalten"
#: Longest header text before it is cut (the full description is on the "Spalten" sheet).
MAX_HEADER_CHARS = 60
MIN_WIDTH, MAX_WIDTH = 8, 60
#: Excel number formats (the locale-neutral codes; German Excel shows 1.234,50).
UNIT_FORMATS = {
    "EUR": '#,##0.00 "€"',
    "m²": '#,##0.0 "m²"',
    "km²": '#,##0.00 "km²"',
    "km": '#,##0.0 "km"',
    "mm": '#,##0.0 "mm"',
    "%": '0.00 "%"',
    "pp": '0.000 "pp"',
    "°C": '0.0 "°C"',
    "Tage": '#,##0 "Tage"',
    "Nächte": '#,##0 "Nächte"',
    "Bytes": '#,##0 "Bytes"',
    "EUR/m²": '#,##0.00 "€/m²"',
    "EUR/Baum": '#,##0.00 "€/Baum"',
}
INTEGER_FORMAT = "#,##0"
#: Integer columns that are labels, not amounts: no thousands separator (2.026 would read as a number).
PLAIN_INTEGER = re.compile(r"^(year|quarter|month|.*_year|.*_quarter|.*_number|.*_id)$")
DATE_FORMAT = "dd.mm.yyyy"
TIMESTAMP_FORMAT = "dd.mm.yyyy hh:mm:ss"


def check_output(out: Path | None) -> None:
    if out is not None and out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"Unbekanntes Ausgabeformat {out.suffix!r}: .csv oder .xlsx verwenden")


@dataclass
class Column:
    key: str
    type_name: str
    header: str  # German header (the key when there is no description)
    description: str | None
    unit: str | None


def column_descriptions(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, str]:
    """Description of each column name of the public marts; where a name means different things in
    different marts, the mart the query names first decides."""
    rows = con.execute(
        "select table_name, column_name, comment from duckdb_columns() "
        "where schema_name = ? and comment is not null order by table_name, column_index",
        [PUBLIC_SCHEMA],
    ).fetchall()
    text = sql.lower()
    mentioned = {t: text.find(t) for t, _c, _d in rows if re.search(rf"\b{re.escape(t)}\b", text)}
    out: dict[str, tuple[int, str]] = {}
    for table, column, comment in rows:
        rank = mentioned.get(table, len(text) + 1)  # marts the query names come first, in their order
        if column not in out or rank < out[column][0]:
            out[column] = (rank, comment)
    return {column: comment for column, (_rank, comment) in out.items()}


def header_text(description: str, unit: str | None = None) -> str:
    """A column header from a description: the term before a colon ("Mittelbindung: bewilligt ÷ Plafond"
    -> "Mittelbindung"), cut at a word boundary when long, with the column's unit when the term lacks it
    ("Verminderter Abfluss (mm)"): a header alone must say what a figure counts."""
    head = description.split(": ", 1)[0].strip() if ": " in description else description.strip()
    if len(head) > MAX_HEADER_CHARS:
        head = head[:MAX_HEADER_CHARS].rsplit(" ", 1)[0] + " …"
    return f"{head} ({unit})" if unit and f"({unit})" not in head else head


def columns_of(con: duckdb.DuckDBPyConnection, sql: str, description: list[tuple]) -> list[Column]:
    descriptions = column_descriptions(con, sql)
    columns, seen = [], set()
    for name, type_name, *_ in description:
        text = descriptions.get(name)
        header = header_text(text, unit_of(name)) if text else name
        if header in seen:  # one header per column (Excel filters and pivot tables need distinct ones)
            header = f"{header} ({name})"
        seen.add(header)
        columns.append(Column(name, str(type_name), header, text, unit_of(name)))
    return columns


def last_statement(text: str) -> str:
    statements, rest = split_statements(text)
    statements = [s for s in [*statements, rest] if not is_blank(s)]
    if not statements:
        raise ValueError("Keine Abfrage angegeben.")
    return statements[-1]


def write_result(con: duckdb.DuckDBPyConnection, text: str, out: Path) -> int:
    """Run the (last) statement of ``text`` and write all its rows to ``out`` (.csv or .xlsx); the row count."""
    check_output(out)
    sql = last_statement(text)
    cursor = con.execute(sql)
    if cursor.description is None:
        raise ValueError("Die Anweisung liefert kein Ergebnis, das sich schreiben ließe.")
    description = cursor.description
    rows = cursor.fetchall()
    if out.suffix.lower() == ".csv":
        write_csv(out, [d[0] for d in description], rows)
    else:
        write_xlsx(out, columns_of(con, sql, description), rows)
    return len(rows)


# --- CSV ----------------------------------------------------------------------------------------------
def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "WAHR" if value else "FALSCH"  # what German Excel reads as a truth value
    if isinstance(value, float):
        return format(value, ".15g").replace(".", ",")
    if isinstance(value, decimal.Decimal):
        return format(value, "f").replace(".", ",")
    if isinstance(value, dt.datetime):
        return _local(value).isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def write_csv(out: Path, names: list[str], rows: list[tuple]) -> None:
    with open(out, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow([_csv_value(v) for v in row])


# --- XLSX ---------------------------------------------------------------------------------------------
def _local(value: dt.datetime) -> dt.datetime:
    """A timestamp as local time without zone (Excel has none); naive values are kept as they are."""
    return value.astimezone(LOCAL_TIME_ZONE).replace(tzinfo=None) if value.tzinfo else value


def _is_integer_type(type_name: str) -> bool:
    return type_name.upper() in INTEGER_TYPES


def number_format(column: Column) -> str | None:
    """The Excel number format of a column (None: Excel's default)."""
    type_name = column.type_name.upper()
    if type_name == "DATE":
        return DATE_FORMAT
    if type_name.startswith("TIMESTAMP"):
        return TIMESTAMP_FORMAT
    if column.unit in UNIT_FORMATS and (
        _is_integer_type(type_name) or type_name.startswith(("DECIMAL", "DOUBLE", "FLOAT"))
    ):
        return UNIT_FORMATS[column.unit]
    if _is_integer_type(type_name):
        return "0" if PLAIN_INTEGER.match(column.key) else INTEGER_FORMAT
    return None


def _shown_length(value: Any, column: Column) -> int:
    """About how many characters Excel shows for ``value`` in ``column``'s format."""
    if value is None:
        return 0
    if isinstance(value, dt.datetime):
        return 19
    if isinstance(value, dt.date):
        return 10
    if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
        digits = len(f"{abs(float(value)):,.2f}")
        return digits + 1 + len(column.unit or "") + 1
    return max((len(line) for line in str(value).splitlines()), default=0)


def write_xlsx(out: Path, columns: list[Column], rows: list[tuple]) -> None:
    import xlsxwriter

    workbook = xlsxwriter.Workbook(
        str(out),
        {
            "constant_memory": True,
            "remove_timezone": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    try:
        header_format = workbook.add_format(
            {"bold": True, "text_wrap": True, "valign": "top", "bg_color": "#E8EEF4", "bottom": 1}
        )
        formats = {c.key: workbook.add_format({"num_format": f}) if (f := number_format(c)) else None for c in columns}
        sheet = workbook.add_worksheet(RESULT_SHEET)
        # Widths from the header (wrapped into at most three lines) and the longest value shown.
        for i, column in enumerate(columns):
            longest = max([_shown_length(r[i], column) for r in rows[:2000]] + [0])
            header_need = min(len(column.header), max(MIN_WIDTH, -(-len(column.header) // 3)))
            width = max(MIN_WIDTH, min(MAX_WIDTH, max(longest, header_need) + 2))
            sheet.set_column(i, i, width, formats[column.key])
        sheet.freeze_panes(1, 0)
        sheet.set_row(0, None, header_format)
        for i, column in enumerate(columns):
            sheet.write_string(0, i, column.header, header_format)
        for r, row in enumerate(rows, start=1):
            for i, value in enumerate(row):
                _write_cell(sheet, r, i, value, formats[columns[i].key])
        if columns:
            sheet.autofilter(0, 0, max(len(rows), 1), len(columns) - 1)
        _write_columns_sheet(workbook, columns, header_format)
    finally:
        workbook.close()


def _write_cell(sheet, row: int, col: int, value: Any, fmt) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        sheet.write_boolean(row, col, value, fmt)
    elif isinstance(value, dt.datetime):
        sheet.write_datetime(row, col, _local(value), fmt)
    elif isinstance(value, dt.date):
        sheet.write_datetime(row, col, dt.datetime.combine(value, dt.time()), fmt)
    elif isinstance(value, (int, float, decimal.Decimal)):
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):  # NaN/inf: Excel has no such number
            sheet.write_string(row, col, str(value))
        else:
            sheet.write_number(row, col, number, fmt)
    else:
        sheet.write_string(row, col, value if isinstance(value, str) else str(value))


def _write_columns_sheet(workbook, columns: list[Column], header_format) -> None:
    """Second sheet: which key each German header stands for, with description and unit."""
    sheet = workbook.add_worksheet(COLUMNS_SHEET)
    titles = ["Überschrift", "Spalte (Schlüssel)", "Beschreibung", "Einheit"]
    widths = [40, 32, 90, 16]
    for i, (title, width) in enumerate(zip(titles, widths)):
        sheet.set_column(i, i, width)
        sheet.write_string(0, i, title, header_format)
    sheet.freeze_panes(1, 0)
    for r, c in enumerate(columns, start=1):
        unit = f"{c.unit} ({UNIT_NAMES_DE[c.unit]})" if c.unit in UNIT_NAMES_DE else (c.unit or "")
        for i, value in enumerate((c.header, c.key, c.description or "", unit)):
            sheet.write_string(r, i, value)
