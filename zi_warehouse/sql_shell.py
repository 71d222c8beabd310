"""Read-only SQL on the published warehouse for controllers: one-off queries, query files and a console.

What belongs here: opening the published file read-only, running statements (one after the other, each
cancellable with Ctrl-C), showing results the way a person reads them, and the interactive console. Files
(``--out x.csv`` / ``x.xlsx``) are written by ``sql_export.py``.

Showing a result: NULL as ``NULL`` (dimmed), dates as ``2020-02-19``, timestamps with time zone in local time
(Europe/Berlin, offset shown), integers as integers, decimals with their scale, numbers right-aligned. A
result wider than the terminal is shown one row per block ("vertical", like psql's ``\\x auto``) instead of
a table whose headers would be cut. At most ``MAX_ROWS_SHOWN`` rows are shown; ``--out`` writes them all.

The console (prompt_toolkit, when stdin is a terminal): line editing, a history kept across sessions
(``$ZI_SQL_HISTORY`` or ``~/.local/state/zi/sql_history``), Up/Down recall, a statement runs when it ends
with ``;`` (Enter before that continues the statement and the bottom line says so), Ctrl-C discards the
input or cancels a running query, Ctrl-D on an empty line quits. From a pipe, statements are read line by
line with the same rules.

The published file is opened read-only; a running build swaps in a new file atomically, so a query in
progress keeps reading the copy it opened and never blocks the pipeline.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console
from rich.table import Table
from rich.text import Text

from zi_warehouse.german import LOCAL_TIME_ZONE, format_number
from zi_warehouse.warehouse import NUMERIC_TYPES

MAX_ROWS_SHOWN = 200
NULL_TEXT = "NULL"
PROMPT = "zi> "
CONTINUATION = "…> "
HELP_DE = (
    "Abfragen mit ';' abschließen (Enter davor beginnt eine neue Zeile). ↑/↓ blättern im Verlauf, "
    "Strg-C verwirft die Eingabe oder bricht eine laufende Abfrage ab, Strg-D beendet.\n"
    "Befehle: .tables (Marts), .columns <mart> (Spalten mit Beschreibung), .vertical (Zeilen untereinander "
    "an/aus/auto), .help, .quit"
)


class PublishedWarehouseMissing(RuntimeError):
    pass


class QueryCancelled(RuntimeError):
    pass


def open_published(path: Path) -> duckdb.DuckDBPyConnection:
    if not path.exists():
        raise PublishedWarehouseMissing(f"Kein veröffentlichtes Warehouse unter {path}: zuerst zi build ausführen.")
    return duckdb.connect(str(path), read_only=True)


# --- statements -------------------------------------------------------------------------------------
_READ_ONLY = "das veröffentlichte Warehouse ist nur lesbar: nur Abfragen sind möglich"
#: What DuckDB's kind of error means for someone writing a query; its own (English) message follows.
_ERROR_KINDS = (
    (duckdb.CatalogException, "Tabelle, Sicht, Schema oder Funktion unbekannt"),
    (duckdb.BinderException, "Spalte oder Ausdruck passt nicht zu den Tabellen der Abfrage"),
    (duckdb.ParserException, "SQL-Syntaxfehler"),
    (duckdb.ConversionException, "ein Wert lässt sich nicht in den verlangten Typ umwandeln"),
    (duckdb.PermissionException, _READ_ONLY),
    (duckdb.OutOfMemoryException, "zu wenig Arbeitsspeicher für diese Abfrage"),
)


def error_text(exc: duckdb.Error) -> str:
    """A query's error for the person who wrote it: what kind of mistake, in German, then DuckDB's message."""
    if "read-only mode" in str(exc):  # DuckDB reports a write to a read-only file as invalid input
        exc_kinds = ((duckdb.Error, _READ_ONLY),)
    else:
        exc_kinds = _ERROR_KINDS
    kind = next((text for cls, text in exc_kinds if isinstance(exc, cls)), None)
    return f"{kind[0].upper()}{kind[1:]}. DuckDB meldet: {exc}" if kind else str(exc)


def split_statements(text: str) -> tuple[list[str], str]:
    """Complete statements (each ending with a ';' outside quotes and comments) and the unfinished rest.

    ``"select 1; select 'a;b' -- x;\n from t"`` -> ``(["select 1;"], "select 'a;b' -- x;\n from t")``: the
    ';' in the string and in the comment end nothing. The rest still waits for its ';' unless it is blank
    (only whitespace and comments).
    """
    statements: list[str] = []
    start, i, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if c in ("'", '"'):
            end = text.find(c, i + 1)
            while end != -1 and end + 1 < n and text[end + 1] == c:  # '' and "" escape the quote
                end = text.find(c, end + 2)
            if end == -1:
                return statements, text[start:]
            i = end + 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end == -1 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end == -1:
                return statements, text[start:]
            i = end + 2
        elif c == ";":
            statement = text[start : i + 1].strip()
            if statement.strip(";").strip():
                statements.append(statement)
            start = i = i + 1
        else:
            i += 1
    return statements, text[start:]


def is_blank(sql: str) -> bool:
    """Nothing but whitespace, semicolons and comments."""
    return not _strip_comments(sql).strip(" \n\r\t;")


def _strip_comments(sql: str) -> str:
    out, i, n = [], 0, len(sql)
    while i < n:
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end == -1 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
        elif sql[i] in ("'", '"'):
            end = sql.find(sql[i], i + 1)
            end = n - 1 if end == -1 else end
            out.append(sql[i : end + 1])
            i = end + 1
        else:
            out.append(sql[i])
            i += 1
    return "".join(out)


def is_complete(text: str) -> bool:
    """The input can run: empty, a dot command, or every statement ended with ';'."""
    stripped = text.strip()
    if not stripped or stripped.startswith("."):
        return True
    _statements, rest = split_statements(text)
    return is_blank(rest)


# --- results ------------------------------------------------------------------------------------------
@dataclass
class Result:
    columns: list[str]
    types: list[str]
    rows: list[tuple]
    total: int  # rows the query returned (``rows`` holds at most the ones to show)
    seconds: float


def run_cancellable(con: duckdb.DuckDBPyConnection, sql: str, limit: int | None = MAX_ROWS_SHOWN) -> Result:
    """Run ``sql`` in a worker thread; Ctrl-C (KeyboardInterrupt in the caller) interrupts DuckDB and raises
    :class:`QueryCancelled`. Returns the first ``limit`` rows and the total count."""
    outcome: dict[str, Any] = {}
    started = time.perf_counter()
    # Completion is signalled, not read from the thread: a Ctrl-C that lands inside Thread.join can leave a running
    # thread marked as stopped (CPython 3.11, bpo-45274), and the next query then finds the connection busy.
    done = threading.Event()

    def work() -> None:
        try:
            cursor = con.execute(sql)
            if cursor.description is None:  # a statement without a result (e.g. SET)
                outcome["result"] = Result([], [], [], 0, 0.0)
                return
            columns = [d[0] for d in cursor.description]
            types = [str(d[1]) for d in cursor.description]
            rows = cursor.fetchmany(limit) if limit is not None else cursor.fetchall()
            total = len(rows)
            if limit is not None and len(rows) == limit:
                while chunk := cursor.fetchmany(10_000):
                    total += len(chunk)
            outcome["result"] = Result(columns, types, rows, total, 0.0)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="zi-sql-query", daemon=True).start()
    try:
        while not done.wait(0.05):
            pass
    except KeyboardInterrupt:
        _interrupt_until_done(con, done)
        raise QueryCancelled("Abfrage abgebrochen.") from None
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, duckdb.InterruptException):
            raise QueryCancelled("Abfrage abgebrochen.") from None
        raise error
    result = outcome["result"]
    result.seconds = time.perf_counter() - started
    return result


def _interrupt_until_done(con: duckdb.DuckDBPyConnection, done: threading.Event) -> None:
    """Interrupt the query until its thread has ended: DuckDB drops an interrupt that comes before the query has
    started, and the connection takes no other call while it runs. Another Ctrl-C meanwhile changes nothing."""
    while not done.is_set():
        try:
            con.interrupt()
            done.wait(0.1)
        except KeyboardInterrupt:
            continue


def display_value(value: Any) -> str:
    """A value as a person reads it in the console (NULL is handled by the caller)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".15g") if abs(value) < 1e15 else format(value, ".15e")
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:  # with time zone: local time, the offset shows which
            value = value.astimezone(LOCAL_TIME_ZONE)
        return value.isoformat(sep=" ", timespec="microseconds" if value.microsecond else "seconds")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return str(value)


def _cell(value: Any) -> Text:
    if value is None:
        return Text(NULL_TEXT, style="dim italic")
    return Text(display_value(value))


def _is_numeric(type_name: str) -> bool:
    return type_name.upper().startswith(NUMERIC_TYPES)


def natural_width(result: Result) -> int:
    """Characters a table of ``result`` needs without wrapping a cell (borders and padding included)."""
    widths = []
    for i, name in enumerate(result.columns):
        cells = [
            len(NULL_TEXT) if r[i] is None else max(map(len, display_value(r[i]).splitlines() or [""]))
            for r in result.rows
        ]
        widths.append(max([len(name), *cells]))
    return sum(widths) + 3 * len(widths) + 1


def print_result(result: Result, console: Console, vertical: bool | None = None) -> None:
    """The result as a table, or one block per row when it would not fit (``vertical=None``: automatic)."""
    if not result.columns:
        console.print("OK")
        return
    if vertical is None:
        vertical = natural_width(result) > console.width
    if vertical:
        label_width = max(len(c) for c in result.columns)
        for number, row in enumerate(result.rows, start=1):
            console.rule(f"Zeile {number}", align="left", style="dim")
            grid = Table.grid(padding=(0, 1))
            grid.add_column(style="bold", no_wrap=True, min_width=label_width)
            grid.add_column(overflow="fold")
            for name, value in zip(result.columns, row):
                grid.add_row(name, _cell(value))
            console.print(grid)
    else:
        table = Table(show_lines=False)
        for name, type_name in zip(result.columns, result.types):
            table.add_column(name, justify="right" if _is_numeric(type_name) else "left", no_wrap=True, overflow="fold")
        for row in result.rows:
            table.add_row(*[_cell(v) for v in row])
        console.print(table)
    shown = len(result.rows)
    rows = "1 Zeile" if result.total == 1 else f"{result.total} Zeilen"
    more = f"; gezeigt die ersten {shown} (mit --out alle in eine Datei schreiben)" if result.total > shown else ""
    console.print(f"[dim]{rows}{more} ({format_number(result.seconds, 2)} s)[/dim]")


# --- commands ---------------------------------------------------------------------------------------
@dataclass
class Session:
    con: duckdb.DuckDBPyConnection
    console: Console
    vertical: bool | None = None  # None: automatic

    def run_text(self, text: str) -> None:
        """Run the dot command or every statement of ``text``; errors are shown, the console goes on."""
        stripped = text.strip()
        if stripped.startswith("."):
            self.command(stripped)
            return
        statements, rest = split_statements(text)
        if not is_blank(rest):
            statements.append(rest.strip())
        for sql in statements:
            if is_blank(sql):
                continue
            try:
                print_result(run_cancellable(self.con, sql), self.console, self.vertical)
            except QueryCancelled as exc:
                self.console.print(f"\n[yellow]{exc}[/yellow]")  # after the terminal's "^C"
                return
            except duckdb.Error as exc:
                self.console.print(f"[red]Fehler:[/red] {error_text(exc)}", highlight=False)
                return

    def command(self, line: str) -> None:
        name, _, argument = line.partition(" ")
        argument = argument.strip().rstrip(";")
        if name == ".tables":
            self.run_text(
                "select table_name as mart, estimated_size as zeilen_ungefaehr, comment as beschreibung "
                "from duckdb_tables() where schema_name = 'marts' order by table_name;"
            )
        elif name == ".columns" and argument:
            mart = argument.removeprefix("marts.").replace("'", "''")
            self.run_text(
                "select column_name as spalte, data_type as typ, comment as beschreibung "
                f"from duckdb_columns() where schema_name = 'marts' and table_name = '{mart}' "
                "order by column_index;"
            )
        elif name == ".vertical":
            choice = argument.lower()
            self.vertical = {"an": True, "on": True, "aus": False, "off": False, "auto": None}.get(
                choice, None if self.vertical is True else True
            )
            mode = {True: "an", False: "aus", None: "auto"}[self.vertical]
            self.console.print(f"Zeilen untereinander: {mode}")
        elif name in (".help", ".hilfe"):
            self.console.print(HELP_DE)
        else:
            self.console.print(f"[red]Unbekannter Befehl {name}[/red]. {HELP_DE}")


def run_query(con: duckdb.DuckDBPyConnection, text: str, console: Console) -> int:
    """One-off query (``zi sql "..."`` or ``--file``): every statement's result; the last one's row count.

    A wrong statement raises ``duckdb.Error`` (the command line reports it and exits with 1).
    """
    statements, rest = split_statements(text)
    if not is_blank(rest):
        statements.append(rest.strip())
    count = 0
    for sql in (s for s in statements if not is_blank(s)):
        try:
            result = run_cancellable(con, sql)
        except QueryCancelled as exc:
            console.print(f"[yellow]{exc}[/yellow]")
            return count
        print_result(result, console)
        count = result.total
    return count


# --- the console ------------------------------------------------------------------------------------
QUIT_COMMANDS = (".quit", ".exit", ".q")


def history_path() -> Path:
    configured = os.environ.get("ZI_SQL_HISTORY")
    if configured:
        return Path(configured)
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "zi" / "sql_history"


def interactive(
    con: duckdb.DuckDBPyConnection, console: Console, read_line: Callable[[str], str] | None = None
) -> None:
    """The console: prompt_toolkit on a terminal, plain line reading otherwise (pipes, tests)."""
    session = Session(con, console)
    if read_line is None and sys.stdin.isatty() and sys.stdout.isatty():
        _terminal_console(session)
    else:
        _line_console(session, read_line or input)


def _line_console(session: Session, read_line: Callable[[str], str]) -> None:
    session.console.print("ZI Warehouse (nur lesend). Abfragen mit ';' abschließen, .help zeigt die Befehle.")
    buffer = ""
    while True:
        try:
            line = read_line(PROMPT if not buffer else CONTINUATION)
        except EOFError:
            if buffer and not is_blank(buffer):
                session.console.print("[yellow]Unvollständige Anweisung verworfen (ohne ';').[/yellow]")
            break
        except KeyboardInterrupt:
            buffer = ""
            continue
        if not buffer and line.strip() in QUIT_COMMANDS:
            break
        buffer = f"{buffer}\n{line}" if buffer else line
        if is_complete(buffer):
            session.run_text(buffer)
            buffer = ""


def _terminal_console(session: Session) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings

    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
        history = FileHistory(str(path))
    except OSError:
        history = InMemoryHistory()  # e.g. a read-only home: the console still works, without a lasting history

    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(event) -> None:
        buffer = event.current_buffer
        if is_complete(buffer.text):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n")

    @bindings.add("escape", "enter")
    def _run_anyway(event) -> None:  # Alt-Enter: run without the ';'
        event.current_buffer.validate_and_handle()

    def toolbar() -> str:
        text = prompt.default_buffer.text
        if text.strip() and not is_complete(text):
            return " Anweisung nicht abgeschlossen: mit ; beenden (Alt-Enter führt sie so aus), Strg-C verwirft sie"
        return " Enter führt aus (nach ;) · ↑/↓ Verlauf · Strg-C bricht ab · Strg-D beendet · .help"

    prompt = PromptSession(
        history=history,
        multiline=True,
        key_bindings=bindings,
        prompt_continuation=lambda width, line, wrap: CONTINUATION.rjust(width),
        bottom_toolbar=toolbar,
        enable_history_search=False,
    )
    session.console.print("ZI Warehouse (nur lesend). " + HELP_DE)
    while True:
        try:
            text = prompt.prompt(PROMPT)
        except KeyboardInterrupt:
            continue  # the input is discarded, the console stays
        except EOFError:
            break
        if text.strip() in QUIT_COMMANDS:
            break
        if text.strip():
            session.run_text(text)
