"""Read-only SQL on the published warehouse for controllers: one-off queries, query files, a console.

The published file is opened read-only; a running build swaps in a new file atomically, so a query in
progress keeps reading the copy it opened and never blocks the pipeline.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
from rich.console import Console
from rich.table import Table

MAX_ROWS_SHOWN = 200
OUTPUT_SUFFIXES = (".csv", ".xlsx")
#: Excel has no time zones: timestamps are written as local time of the programme.
EXCEL_TIME_ZONE = "Europe/Berlin"


class PublishedWarehouseMissing(RuntimeError):
    pass


def open_published(path: Path) -> duckdb.DuckDBPyConnection:
    if not path.exists():
        raise PublishedWarehouseMissing(
            f"Kein veröffentlichtes Warehouse unter {path}: zuerst `make run` ausführen."
        )
    return duckdb.connect(str(path), read_only=True)


def check_output(out: Path | None) -> None:
    if out is not None and out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"Unbekanntes Ausgabeformat {out.suffix!r}: .csv oder .xlsx verwenden")


def _for_excel(frame: pd.DataFrame) -> pd.DataFrame:
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert(EXCEL_TIME_ZONE).dt.tz_localize(None)
    return frame


def run_query(con: duckdb.DuckDBPyConnection, text: str, console: Console, out: Path | None = None) -> int:
    """Run one query; print it as a table or write it to ``out`` (.csv or .xlsx). Returns the row count."""
    check_output(out)
    frame = con.execute(text).df()
    if out is not None:
        suffix = out.suffix.lower()
        if suffix == ".csv":
            frame.to_csv(out, index=False, sep=";", decimal=",", encoding="utf-8-sig")
        elif suffix == ".xlsx":
            _for_excel(frame).to_excel(out, index=False, sheet_name="Ergebnis")
        console.print(f"{len(frame)} Zeilen geschrieben: {out}")
        return len(frame)
    table = Table(*[str(c) for c in frame.columns])
    for row in frame.head(MAX_ROWS_SHOWN).itertuples(index=False):
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)
    if len(frame) > MAX_ROWS_SHOWN:
        console.print(f"… {len(frame) - MAX_ROWS_SHOWN} weitere Zeilen (mit --out in eine Datei schreiben)")
    return len(frame)


def interactive(con: duckdb.DuckDBPyConnection, console: Console) -> None:
    """A small console: statements end with ';', `.tables` lists the marts, `.quit` or Ctrl-D leaves."""
    console.print("ZI Warehouse (nur lesend). Abfragen mit ';' abschließen, .tables zeigt die Marts, .quit beendet.")
    buffer: list[str] = []
    while True:
        try:
            line = input("zi> " if not buffer else "..> ")
        except EOFError:
            break
        stripped = line.strip()
        if not buffer and stripped in (".quit", ".exit"):
            break
        if not buffer and stripped == ".tables":
            run_query(con, "select table_schema, table_name from information_schema.tables order by 1, 2", console)
            continue
        buffer.append(line)
        if stripped.endswith(";"):
            try:
                run_query(con, "\n".join(buffer), console)
            except duckdb.Error as exc:
                console.print(f"[red]Fehler:[/red] {exc}")
            buffer.clear()
