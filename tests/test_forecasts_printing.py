"""The template and a feedback workbook print on A4 as LibreOffice prints them: every column of a table on the
page width, wide tables in landscape, the header row repeated on every page, wrapped text not cut off
(zi_warehouse/forecasts/printing.py).

LibreOffice Calc (``soffice``) and poppler-utils (``pdfinfo``, ``pdftotext``) come from
scripts/install-system-packages.sh (``make test-packages``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import openpyxl
import pytest

from test_forecasts_reader import good_row, write_xlsx
from zi_warehouse import reference
from zi_warehouse.forecasts import feedback
from zi_warehouse.forecasts import template as t
from zi_warehouse.ingest import ingest
from zi_warehouse.sources import forecasts as src

A4_PORTRAIT, A4_LANDSCAPE = (595, 842), (842, 595)  # points, rounded
#: Smallest height (points) of a line of table text on paper. The project sheet has 28 columns on one A4 width:
#: its 11 pt text prints at about 4.5 pt, small but readable; the feedback tables print near full size.
MIN_TEMPLATE_TEXT_PT = 4.0
MIN_FEEDBACK_TEXT_PT = 7.0


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} fehlt: scripts/install-system-packages.sh test installiert es"
    return found


def print_to_pdf(xlsx: Path, tmp_path: Path) -> Path:
    """The workbook printed by LibreOffice (its own profile, so parallel runs do not share one)."""
    out = tmp_path / "pdf"
    subprocess.run(
        [
            _tool("soffice"),
            f"-env:UserInstallation=file://{tmp_path / 'lo-profile'}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(out),
            str(xlsx),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return out / f"{xlsx.stem}.pdf"


def page_sizes(pdf: Path) -> list[tuple[int, int]]:
    info = subprocess.run(
        [_tool("pdfinfo"), "-f", "1", "-l", "999", str(pdf)], capture_output=True, text=True, check=True
    ).stdout
    return [(round(float(w)), round(float(h))) for w, h in re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+)", info)]


def page_words(pdf: Path, page: int) -> list[tuple[str, float, float, float, float]]:
    """(word, x min, y min, x max, y max) of every word on a page, in points."""
    html = subprocess.run(
        [_tool("pdftotext"), "-f", str(page), "-l", str(page), "-bbox", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        (w, float(a), float(b), float(c), float(d))
        for a, b, c, d, w in re.findall(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', html
        )
    ]


def _words(pdf: Path, page: int) -> set[str]:
    return {w for w, *_ in page_words(pdf, page)}


def _height(words, word: str) -> float:
    return next(d - b for w, a, b, c, d in words if w == word)


def test_the_template_prints_every_column_on_one_a4_width(tmp_path):
    path = t.write_template(tmp_path / "Vorlage.xlsx", period=(2026, 3))
    wb = openpyxl.load_workbook(path)
    ws = wb[t.PROJECT_SHEET]
    header_row = next(r for r in range(1, 20) if ws.cell(r, 1).value == "Kommune")
    columns = [c for c in range(1, ws.max_column + 1) if ws.cell(header_row, c).value]
    assert len(columns) == len(t.COLUMN_ORDER["2021"]) + t.PAYMENT_QUARTERS
    for c in columns:  # a marker in every column of a filled-in row
        ws.cell(header_row + 1, c).value = f"S{c:02d}"
    wb.save(path)
    pdf = print_to_pdf(path, tmp_path)

    # The instructions on one portrait page (the title not split), the table on one landscape page.
    assert page_sizes(pdf) == [A4_PORTRAIT, A4_LANDSCAPE]
    instructions = " ".join(w for w, *_ in page_words(pdf, 1))
    assert "Anleitung zur Quartalsprognose (Vorlagenversion 2021)" in instructions
    assert "Mittelabruf Q4/2026 in EUR" in instructions and "{" not in instructions
    table = page_words(pdf, 2)
    assert {f"S{c:02d}" for c in columns} <= {w for w, *_ in table}, "a column of the table is not on the page"
    assert all(c <= A4_LANDSCAPE[0] for _, _, _, c, _ in table)
    assert _height(table, f"S{columns[-1]:02d}") >= MIN_TEMPLATE_TEXT_PT


@pytest.fixture(scope="module")
def feedback_pdf(tmp_path_factory) -> tuple[Path, list[tuple]]:
    """A feedback workbook with 40 rejected rows (long messages, several pages), printed."""
    tmp = tmp_path_factory.mktemp("feedback_print")
    landing = tmp / "landing" / "forecasts"
    landing.mkdir(parents=True)
    rows = [good_row("BO-1")] + [
        good_row(
            f"BO-{i}",
            status="in Arbeit",
            requested_funding_eur=500000.0,
            funding_rate=None,
            measure_type="Spielplatz mit Wasserlauf und Sitzstufen",
        )
        for i in range(2, 42)
    ]
    write_xlsx(landing / "Prognose_Bochum_2022-Q4.xlsx", rows)
    con = duckdb.connect(str(tmp / "zi.duckdb"))
    ingest(con, src, tmp / "landing", log=lambda m: None)
    [path] = feedback.write_feedback(con, tmp / "feedback")
    rejections = con.execute(
        "select row_number, rule, message_de from raw.rejected_rows order by row_number"
    ).fetchall()
    con.close()
    return print_to_pdf(path, tmp), rejections


def test_a_feedback_workbook_prints_its_table_on_the_page_width_with_headers_on_every_page(feedback_pdf):
    pdf, rejections = feedback_pdf
    sizes = page_sizes(pdf)
    # The summary in portrait (one page), the rejected rows in landscape over several pages.
    assert sizes[0] == A4_PORTRAIT and set(sizes[1:]) == {A4_LANDSCAPE} and len(sizes) >= 3, sizes
    summary = page_words(pdf, 1)
    assert {"Kommune", "Bochum", "Gründe", "Was"} <= {w for w, *_ in summary}
    seen_rows: set[str] = set()
    for page in range(2, len(sizes) + 1):
        words = page_words(pdf, page)
        texts = {w for w, *_ in words}
        # every column header on every page, all within the page width
        assert {"Zeile", "Blatt", "Spalte", "Gefundener", "Wert", "Grund", "Hinweis"} <= texts, page
        assert all(c <= A4_LANDSCAPE[0] for _, _, _, c, _ in words)
        assert _height(words, "Hinweis") >= MIN_FEEDBACK_TEXT_PT
        seen_rows |= {w for w, a, *_ in words if a < 60 and w.isdigit()}  # the first column: row numbers
        # a message is printed whole: its last word stands on the page with its row
        page_text = " ".join(w for w, *_ in words)
        for row, _, message in rejections:
            if f"Projekt BO-{row - 7}:" in page_text:
                assert message.split()[-1] in texts, (page, message)
    assert seen_rows == {str(r) for r, _, _ in rejections}


def test_printed_feedback_names_no_rule_key(feedback_pdf):
    pdf, rejections = feedback_pdf
    keys = {r.rule_key for r in reference.rule_texts() if not r.is_pattern}
    text = subprocess.run([_tool("pdftotext"), str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert {rule for _, rule, _ in rejections} >= {"known_status", "known_measure_type", "requested_le_total_cost"}
    assert not set(re.findall(r"[\w.]+", text)) & keys
