"""`zi sql` for controllers: the console under a real terminal, results as a person reads them, Excel exports.

- The console runs in tmux (a real terminal emulator; what `capture-pane` returns is what a person sees):
  a line is edited with the cursor keys, Up recalls the previous statement (also after a restart: the
  history is kept), an unfinished statement gets a hint instead of a bare prompt, Ctrl-C discards the input
  and cancels a running query without leaving the console, Ctrl-D quits with exit code 0; NULL shows as
  NULL, a date as 2020-02-19, an integer as 8401, and a result wider than the terminal one row per block
  with every column name readable.
- `--out x.xlsx` opens with German headers from the column descriptions, the keys on the second sheet, real
  Excel dates, number formats with units, a frozen header row and column widths.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb
import openpyxl
import pytest
from typer.testing import CliRunner

try:  # tests/ is not a package; pytest puts it on sys.path
    from test_serving_postgres import published_file
except ImportError:  # pragma: no cover - when tests/ becomes a package
    from tests.test_serving_postgres import published_file

from zi_warehouse.cli import app
from zi_warehouse.sql_shell import display_value, is_complete, split_statements

ZI = Path(sys.executable).parent / "zi"
TMUX = shutil.which("tmux")


@pytest.fixture
def published(tmp_path) -> Path:
    """A published warehouse (marts with dates, timestamps with time zone, NULLs, decimals) with German
    column descriptions, as dbt's persist_docs and publishing leave them."""
    path = published_file(tmp_path / "data")
    con = duckdb.connect(str(path))
    for column, text in {
        "measure_id": "Schlüssel der Maßnahme",
        "municipality_key": "Kommune (Schlüssel)",
        "approved_on": "Datum des Bescheids",
        "reported_at": "Gemeldet am",
        "area_m2": "Abgekoppelte Fläche der Maßnahme (m²)",
        "note": "Bemerkung",
        "runoff_reduction_mm": "Verminderter Abfluss: Jahressumme in mm",
    }.items():
        con.execute(f"comment on column marts.fct_measure.{column} is '{text}'")
    con.execute("comment on column marts.mart_budget_year.envelope_eur is 'Plafond laut Haushaltsplan (EUR)'")
    con.execute("comment on column marts.mart_budget_year.year is 'Jahr'")
    con.close()
    return path


# --------------------------------------------------------------------------------------------------
# Statements and values
# --------------------------------------------------------------------------------------------------
def test_a_statement_is_complete_at_its_semicolon_not_at_one_in_a_string_or_comment():
    assert not is_complete("select 1")
    assert not is_complete("select ';'")
    assert not is_complete("select 1 -- ;")
    assert not is_complete("select 1 /* ; */")
    assert is_complete("select 1;") and is_complete("select 1; -- danach nur ein Kommentar")
    assert is_complete(".tables") and is_complete("   ")
    assert split_statements("select 'a;b'; select 2;\nselect") == (["select 'a;b';", "select 2;"], "\nselect")


def test_values_are_shown_as_a_person_reads_them():
    assert display_value(dt.date(2020, 2, 19)) == "2020-02-19"
    assert display_value(8401) == "8401"
    assert display_value(2.5) == "2.5" and display_value(0.1 + 0.2) == "0.3"
    from decimal import Decimal

    assert display_value(Decimal("39262.60")) == "39262.60"
    utc = dt.datetime(2024, 10, 27, 0, 30, tzinfo=dt.UTC)
    assert display_value(utc) == "2024-10-27 02:30:00+02:00"  # local time, offset named
    assert display_value(True) == "true"


def test_one_off_query_shows_null_dates_and_integers(published):
    result = CliRunner().invoke(
        app,
        [
            "sql",
            "--database",
            str(published),
            "select measure_id, approved_on, note from marts.fct_measure "
            "where measure_id in (0, 4) order by measure_id",
        ],
        env={"COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "│" in line]
    assert re.search(r"│\s+0 │ 2020-01-01\s+│ NULL\s+│", lines[0]), lines[0]
    assert re.search(r"│\s+4 │ 2020-01-05\s+│ NULL\s+│", lines[1]), lines[1]
    for wrong in (r"\bnan\b", r"\bNaT\b", "00:00:00", r"\b\d+\.0\b"):
        assert not re.search(wrong, result.output), wrong


def test_a_wrong_query_is_explained_in_german_before_duckdbs_own_message(published):
    """Controllers read what kind of mistake it is in German; DuckDB's message (with its suggestions and the
    position in the statement) follows unchanged. Exit code 1."""
    cases = {
        "select * from marts.nope": "Tabelle, Sicht, Schema oder Funktion unbekannt.",
        "select nope from marts.mart_budget_year": "Spalte oder Ausdruck passt nicht zu den Tabellen der Abfrage.",
        "selec 1": "SQL-Syntaxfehler.",
        "select cast('abc' as int)": "Ein Wert lässt sich nicht in den verlangten Typ umwandeln.",
        "create table marts.x (a int)": "Das veröffentlichte Warehouse ist nur lesbar: nur Abfragen sind möglich.",
    }
    for statement, explained in cases.items():
        result = CliRunner().invoke(app, ["sql", "--database", str(published), statement], env={"COLUMNS": "300"})
        assert result.exit_code == 1, (statement, result.output)
        flat = " ".join(result.output.split())  # the console may wrap the line
        assert flat.startswith(f"Fehler: {explained}") and "DuckDB meldet:" in flat, (statement, result.output)


def test_a_wide_result_is_shown_one_row_per_block_with_every_column_named(published):
    result = CliRunner().invoke(
        app,
        ["sql", "--database", str(published), "select * from marts.fct_measure order by measure_id limit 2"],
        env={"COLUMNS": "60"},
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("Zeile 1") == 1 and "Zeile 2" in result.output
    for column in (
        "measure_id",
        "municipality_key",
        "approved_on",
        "updated_at",
        "reported_at",
        "area_m2",
        "is_designated_area",
        "note",
        "runoff_reduction_mm",
    ):
        assert re.search(rf"^{column}\s+\S", result.output, re.M), column
    assert max(len(line) for line in result.output.splitlines()) <= 60


# --------------------------------------------------------------------------------------------------
# The console in a real terminal (tmux)
# --------------------------------------------------------------------------------------------------
class Terminal:
    """One tmux session on a private server socket: type keys, read the screen."""

    def __init__(
        self, socket: Path, command: list[str], env: dict[str, str], width: int = 110, height: int = 40
    ) -> None:
        self.socket = socket
        env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        shell = " ".join(_quote(c) for c in command) + "; echo EXIT=$?; sleep 600"
        self._tmux("new-session", "-d", "-s", "zi", "-x", str(width), "-y", str(height), *env_args, shell)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            [TMUX, "-S", str(self.socket), *args], capture_output=True, text=True, check=True, timeout=20
        ).stdout

    def type(self, text: str) -> None:
        """Type ``text`` key by key (';' as its byte: tmux reads a trailing ';' as a command separator)."""
        for i, part in enumerate(text.split(";")):
            if i:
                self._tmux("send-keys", "-t", "zi", "-H", "3b")
            if part:
                self._tmux("send-keys", "-t", "zi", "-l", part)

    def keys(self, *names: str) -> None:
        self._tmux("send-keys", "-t", "zi", *names)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "zi", "-S", "-2000")

    def wait_for(self, pattern: str, timeout: float = 30, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if len(re.findall(pattern, screen, re.M)) >= count:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} ({count}x) nicht auf dem Bildschirm:\n{screen}")
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run([TMUX, "-S", str(self.socket), "kill-server"], capture_output=True, timeout=20)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.fixture
def terminal_factory(tmp_path):
    assert TMUX, "tmux fehlt: scripts/install-system-packages.sh installiert es (Paket tmux)"
    opened = []

    def start(published: Path, history: Path, width: int = 110) -> Terminal:
        socket = Path("/tmp") / f"zi-tmux-{uuid.uuid4().hex[:10]}"  # socket paths must stay short
        term = Terminal(
            socket,
            [str(ZI), "sql", "--database", str(published)],
            {"ZI_SQL_HISTORY": str(history), "TERM": "xterm-256color", "LANG": "C.UTF-8"},
            width,
        )
        opened.append(term)
        term.wait_for(r"^zi>( |$)")
        return term

    yield start
    for term in opened:
        term.close()
        term.socket.unlink(missing_ok=True)


def _prompts(screen: str) -> int:
    return len(re.findall(r"^zi>( |$)", screen, re.M))


_CTRL_C_ROUNDS = """
import os, signal, sys, threading
import duckdb
from zi_warehouse.sql_shell import QueryCancelled, run_cancellable

signal.signal(signal.SIGINT, signal.default_int_handler)  # as in the console, whatever the parent set
con = duckdb.connect()
for _ in range(4):
    timer = threading.Timer(float(sys.argv[1]), lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        run_cancellable(con, "select count(*) from range(1000000000000::bigint) a, range(10) b")
        sys.exit("the endless query ended by itself")
    except QueryCancelled:
        pass
    timer.join()
    print(run_cancellable(con, "select 7 as danach").rows, flush=True)
"""


@pytest.mark.parametrize("ctrl_c_after_s", [0.01, 0.6])
def test_after_ctrl_c_the_next_query_runs_on_the_same_connection(ctrl_c_after_s):
    """Ctrl-C as the query starts (DuckDB drops an interrupt that comes too early) or while it runs: the console answers
    „Abfrage abgebrochen“ only once the query has ended, so the next one finds the connection free. Waiting on
    the thread itself was not enough: a Ctrl-C inside Thread.join marked the running thread as ended. In a process
    of its own: a pytest-xdist worker does not turn SIGINT into KeyboardInterrupt."""
    done = subprocess.run(
        [sys.executable, "-c", _CTRL_C_ROUNDS, str(ctrl_c_after_s)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.splitlines() == ["[(7,)]"] * 4, done.stdout + done.stderr


def test_console_edits_recalls_cancels_and_quits_in_a_real_terminal(published, tmp_path, terminal_factory):
    history = tmp_path / "sql_history"
    term = terminal_factory(published, history)

    # An unfinished statement: Enter continues it, and the bottom line says why nothing ran.
    term.type("select 42 as antwort")
    term.keys("Enter")
    term.wait_for(r"Anweisung nicht abgeschlossen")
    term.wait_for(r"^\s*…>( |$)")  # the continuation prompt (drawn right after the hint)
    term.type(";")
    term.keys("Enter")
    term.wait_for(r"│\s+42 │")
    term.wait_for(r"^zi>( |$)", count=2)  # the next prompt: keys typed before it land amid the output

    # Line editing: the cursor moves back into the line (no "^[[D" typed), text is inserted there.
    term.type("select 2 as wert;")
    term.keys(*["Left"] * 10)
    term.type("1")
    term.keys("Enter")
    screen = term.wait_for(r"│\s+12 │")
    assert "^[[" not in screen and "\x1b[" not in screen
    term.wait_for(r"^zi>( |$)", count=3)

    # History: Up brings back the last statement, Enter runs it again.
    term.keys("Up")
    term.wait_for(r"^zi> select 12 as wert;\s*$", count=2)
    term.keys("Enter")
    term.wait_for(r"│\s+12 │", count=2)
    term.wait_for(r"^zi>( |$)", count=4)

    # NULL, a date and an integer the way a person expects them.
    term.type(
        "select measure_id, approved_on, note, 8401::bigint as baeume from marts.fct_measure where measure_id = 0;"
    )
    term.keys("Enter")
    screen = term.wait_for(r"2020-01-01")
    row = next(line for line in screen.splitlines() if "2020-01-01" in line)
    assert re.search(r"│\s+0 │ 2020-01-01\s+│ NULL\s+│\s+8401 │", row), row
    for wrong in (r"\bnan\b", r"\bNaT\b", "00:00:00", r"\b8401\.0\b"):
        assert not re.search(wrong, screen), wrong
    term.wait_for(r"^zi>( |$)", count=5)

    # Ctrl-C on an input discards it; the console stays.
    prompts = _prompts(term.screen())
    term.type("select 'verworfen' as x")
    term.keys("C-c")
    term.wait_for(r"^zi>( |$)", count=prompts + 1)
    term.keys("Enter")  # an empty line runs nothing
    assert "verworfen │" not in term.screen()

    # Ctrl-C during a running query cancels it; the next query runs on the same connection.
    term.type("select count(*) from range(1000000000000::bigint) a, range(10) b;")
    term.keys("Enter")
    time.sleep(1.0)
    assert "Abfrage abgebrochen" not in term.screen()  # still running
    term.keys("C-c")
    term.wait_for(r"Abfrage abgebrochen")
    term.type("select 7 as danach;")
    term.keys("Enter")
    term.wait_for(r"│\s+7 │")

    # Ctrl-D quits with exit code 0; the history is kept for the next session.
    term.keys("C-d")
    term.wait_for(r"^EXIT=0$")
    kept = history.read_text(encoding="utf-8")
    assert "select 12 as wert;" in kept and "select 7 as danach;" in kept
    again = terminal_factory(published, history)
    again.keys("Up")
    again.wait_for(r"^zi> select 7 as danach;")


def test_console_shows_a_wide_result_one_row_per_block(published, tmp_path, terminal_factory):
    term = terminal_factory(published, tmp_path / "history", width=70)
    term.type("select * from marts.fct_measure order by measure_id limit 2;")
    term.keys("Enter")
    screen = term.wait_for(r"2 Zeilen")
    assert "Zeile 1" in screen and "Zeile 2" in screen
    for column in ("measure_id", "municipality_key", "approved_on", "reported_at", "runoff_reduction_mm"):
        assert re.search(rf"^{column}\s+\S", screen, re.M), column
    assert re.search(r"^note\s+NULL", screen, re.M)


# --------------------------------------------------------------------------------------------------
# Excel
# --------------------------------------------------------------------------------------------------
def test_xlsx_export_has_german_headers_keys_real_dates_units_widths_and_a_frozen_header(published, tmp_path):
    out = tmp_path / "massnahmen.xlsx"
    result = CliRunner().invoke(
        app,
        [
            "sql",
            "--database",
            str(published),
            "--out",
            str(out),
            "select measure_id, municipality_key, approved_on, reported_at, area_m2, "
            "note, runoff_reduction_mm, is_designated_area, 1 + 1 as zwei "
            "from marts.fct_measure order by measure_id",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "400 Zeilen geschrieben" in result.output
    one = CliRunner().invoke(
        app, ["sql", "--database", str(published), "--out", str(out.with_suffix(".csv")), "select 1 as eins"]
    )
    assert one.exit_code == 0 and "1 Zeile geschrieben" in one.output, one.output
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["Ergebnis", "Spalten"]
    sheet = book["Ergebnis"]
    headers = [c.value for c in sheet[1]]
    assert headers == [
        "Schlüssel der Maßnahme",
        "Kommune (Schlüssel)",
        "Datum des Bescheids",
        "Gemeldet am",
        "Abgekoppelte Fläche der Maßnahme (m²)",
        "Bemerkung",
        "Verminderter Abfluss (mm)",  # the unit added: the description names none
        "is_designated_area",
        "zwei",
    ]  # no description: the key stays
    keys = [(r[0], r[1]) for r in book["Spalten"].iter_rows(min_row=2, values_only=True)]
    assert keys[0] == ("Schlüssel der Maßnahme", "measure_id") and keys[-1] == ("zwei", "zwei")
    units = {r[1]: r[3] for r in book["Spalten"].iter_rows(min_row=2, values_only=True)}
    assert units["area_m2"] == "m²" and units["runoff_reduction_mm"] == "mm" and not units["measure_id"]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref.startswith("A1:I")

    first = [c for c in sheet[2]]
    assert first[1].value == "05913000" and first[1].data_type == "s"  # key with its leading zero, as text
    assert isinstance(first[2].value, dt.datetime) and first[2].value == dt.datetime(2020, 1, 1)  # an Excel date
    assert first[2].number_format == "dd.mm.yyyy"
    assert first[3].value == dt.datetime(2024, 10, 27, 2, 30)  # 02:30+02 is 02:30 local time
    assert first[3].number_format.startswith("dd.mm.yyyy hh:mm")
    second = [c for c in sheet[3]]
    assert second[4].value == pytest.approx(2.5) and "m²" in second[4].number_format
    assert first[5].value is None  # NULL stays an empty cell
    assert second[6].value == pytest.approx(0.1) and '"mm"' in second[6].number_format
    assert first[7].value is True
    assert first[8].value == 2 and first[8].number_format == "#,##0"
    # widths: the header is readable (wrapped into at most three lines), dates and notes fit
    widths = {letter: sheet.column_dimensions[letter].width for letter in "ABCDEFGHI"}
    assert widths["C"] >= 10 and widths["D"] >= 19
    assert all(8 <= w <= 62 for w in widths.values()), widths
    assert sheet["A1"].alignment.wrap_text and sheet["A1"].font.b


def test_xlsx_export_of_amounts_uses_a_currency_format_and_plain_years(published, tmp_path):
    out = tmp_path / "budget.xlsx"
    result = CliRunner().invoke(
        app,
        [
            "sql",
            "--database",
            str(published),
            "--out",
            str(out),
            "select year, envelope_eur, paid_eur from marts.mart_budget_year order by year",
        ],
    )
    assert result.exit_code == 0, result.output
    sheet = openpyxl.load_workbook(out)["Ergebnis"]
    assert [c.value for c in sheet[1]] == ["Jahr", "Plafond laut Haushaltsplan (EUR)", "paid_eur"]
    year, envelope, paid = sheet[2]
    assert year.value == 2020 and year.number_format == "0"  # not "2.020"
    assert envelope.value == pytest.approx(25_000_000) and "€" in envelope.number_format
    assert paid.value is None
