"""How the coordinators' workbooks print: A4, fitted to the page width, page numbers, and row heights for
wrapped text.

What belongs here: the page set-up the template (``template.py``) and the feedback workbooks
(``feedback.py``) share, so both print the same way. ``tests/test_forecasts_printing.py`` prints them with
LibreOffice and checks the pages.

Row heights are set by the writer, not left to the spreadsheet program: LibreOffice does not grow a row for
wrapped text when it opens an .xlsx, so a long message would print over the next row.
"""

from __future__ import annotations

import math

A4 = 9  # xlsxwriter's paper code for A4
#: Points per line of the default 11 pt font.
LINE_HEIGHT_PT = 15.0
#: Characters of running text that fit in one unit of column width (a unit is the width of a '0'; letters
#: average narrower; measured in LibreOffice with its stand-in font: a little over one per unit).
CHARS_PER_UNIT = 1.1


def setup_page(
    ws,
    *,
    landscape: bool,
    area: tuple[int, int, int, int],
    repeat_row: int | None = None,
    header: str | None = None,
    footer_left: str | None = None,
) -> None:
    """A4, one page wide and as many tall as needed; ``area`` = (first row, first col, last row, last col)."""
    ws.set_paper(A4)
    if landscape:
        ws.set_landscape()
    else:
        ws.set_portrait()
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)
    ws.fit_to_pages(1, 0)
    ws.print_area(*area)
    if repeat_row is not None:
        ws.repeat_rows(repeat_row)
    if header:
        ws.set_header("&L&8" + _escape(header))
    ws.set_footer(("&L&8" + _escape(footer_left) if footer_left else "") + "&R&8Seite &P von &N")


def _escape(text: str) -> str:
    return text.replace("&", "&&")  # '&' starts a control code in Excel's header and footer


def lines(text: object, width: float) -> int:
    """Lines a text takes in a wrapping cell ``width`` units wide (words kept whole where they fit)."""
    if text is None or text == "":
        return 1
    per_line = max(1, int(width * CHARS_PER_UNIT))
    total = 0
    for paragraph in str(text).split("\n"):
        n, used = 1, 0
        for word in paragraph.split():
            size = len(word)
            if used and used + 1 + size > per_line:
                n, used = n + 1, 0
            if size > per_line:  # a word longer than the column breaks inside
                n += math.ceil(size / per_line) - 1
                used = size % per_line
            else:
                used += size + (1 if used else 0)
        total += n
    return total


def row_height(cells: list[tuple[object, float]], line_pt: float = LINE_HEIGHT_PT) -> float:
    """The height of a row whose wrapping cells are ``(text, column width)``: its tallest cell."""
    return line_pt * max((lines(text, width) for text, width in cells), default=1)
