"""Typing whole columns of a workbook at once, with the cell parsers of ``parsing.py`` as the reference.

The reader used to call a parser for every cell of every row. Most cells need no parsing at all: an
amount typed as a number arrives from python-calamine as a ``float``, a date as a ``date``. Those take a
fast path here; every other value (German text numbers, dates, quarters, labels, yes/no) is given to the
cell parser, and its answer is remembered per distinct text, so "Q3/2022", "ja" or "Rigolenversickerung"
is parsed once per process, not once per cell. The result is by construction the cell parser's result for
every cell (``tests/test_forecasts_parsing.py`` checks this with generated cells).

A column typer takes the cell values of one column (blank cells already ``None``, see :func:`mask_blank`)
and returns the typed values and ``(position, ParseError)`` for the cells that cannot be read.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

from zi_warehouse.forecasts import parsing as p

#: Remembered answers per column kind are dropped beyond this many distinct texts (a safety bound).
_CACHE_LIMIT = 200_000

_Errors = list[tuple[int, p.ParseError]]


_BLANK_TEXT: dict[str, bool] = {"": True}  # text -> is it blank (p.is_blank), remembered per distinct text


def _learn_blank(text: str) -> bool:
    if len(_BLANK_TEXT) > _CACHE_LIMIT:
        _BLANK_TEXT.clear()
    blank = _BLANK_TEXT[text] = p.is_blank(text)
    return blank


_PENDING = object()  # a text not seen yet: is_blank decides, once
_MISS = (False, None)  # a cell no answer is remembered for (never stored: answers are new tuples)


def mask_blank(values) -> list:
    """The column with every blank cell (``p.is_blank``: empty, whitespace, 'k.A.', '-', NaN) as ``None``.

    Apart from texts only ``None`` and NaN are blank (``v == v`` is False for NaN alone); a text's answer
    is remembered, so the whole column is one comprehension and a second pass only for new texts.
    """
    known = _BLANK_TEXT.get
    out = [
        (v if v == v else None)
        if v.__class__ is not str
        else v
        if (b := known(v)) is False
        else None
        if b
        else _PENDING
        for v in values
    ]
    if out.count(_PENDING):
        for i, v in enumerate(out):
            if v is _PENDING:
                out[i] = None if _learn_blank(values[i]) else values[i]
    return out


class _Typer:
    """Types one column kind: fast paths by Python type, the cell parser (remembered per text) otherwise."""

    def __init__(
        self,
        parser: Callable[[object], object],
        fast: Callable[[object], tuple[bool, object]] | None,
        fast_types: frozenset = frozenset(),
        remember_texts: bool = True,
    ):
        self.parser = parser
        self.fast = fast
        self.fast_types = fast_types  # value types ``fast`` may answer for; others go to the parser
        #: False for free text (titles, names): mostly distinct, so remembering them would only cost memory.
        self.remember_texts = remember_texts
        self.cache: dict[str, tuple[bool, object]] = {}

    def _parse_text(self, text: str) -> tuple[bool, object]:
        hit = self.cache.get(text)
        if hit is None:
            try:
                hit = (True, self.parser(text))
            except p.ParseError as exc:
                hit = (False, exc)
            if len(self.cache) > _CACHE_LIMIT:
                self.cache.clear()
            self.cache[text] = hit
        return hit

    def __call__(self, values: list) -> tuple[list, _Errors]:
        if self.fast_types is _NUMBER_TYPES and self.fast is _fast_number:
            # Amounts typed as numbers: a finite float is its own value (inf - inf and NaN - NaN are NaN).
            typed = [v if v is None or (v.__class__ is float and v - v == 0.0) else _PENDING for v in values]
            if not typed.count(_PENDING):
                return typed, []
        elif self.fast is None and self.remember_texts:
            # Labels, quarters, yes/no: every text seen before read in one pass (a non-text misses, as it must).
            known = self.cache.get
            hits = [None if v is None else known(v, _MISS) for v in values]
            if not hits.count(_MISS) and all(h is None or h[0] for h in hits):
                return [None if h is None else h[1] for h in hits], []
        n = len(values)
        typed = [None] * n
        errors: _Errors = []
        fast_types, fast, parse_text, parser = self.fast_types, self.fast, self._parse_text, self.parser
        remember = self.remember_texts
        for i in range(n):
            v = values[i]
            if v is None:
                continue
            t = v.__class__
            if t in fast_types:
                done, result = fast(v)
                if done:
                    typed[i] = result
                    continue
            if remember and t is str:
                ok, result = parse_text(v)
            else:
                try:
                    ok, result = True, parser(v)
                except p.ParseError as exc:
                    ok, result = False, exc
            if ok:
                typed[i] = result
            else:
                errors.append((i, result))
        return typed, errors


def _fast_number(v: object) -> tuple[bool, object]:
    t = type(v)
    if t is float:
        return (True, v) if not math.isinf(v) else (False, None)  # NaN cells were masked as blank
    if t is int:
        return True, float(v)
    return False, None


def _fast_rate(v: object) -> tuple[bool, object]:
    done, number = _fast_number(v)
    if not done:
        return False, None
    return True, number / 100.0 if abs(number) > 1.5 else number


def _fast_date(v: object) -> tuple[bool, object]:
    t = type(v)
    if t is dt.date:
        return True, v
    if t is dt.datetime:
        return True, v.date()
    return False, None


class _TextTyper:
    """Free text (titles, names, ids): trimmed, inner whitespace collapsed; never an error."""

    def __call__(self, values: list) -> tuple[list, _Errors]:
        parse = p.parse_text
        return [
            None if v is None else (" ".join(v.split()) or None) if v.__class__ is str else parse(v) for v in values
        ], []


def _date_end(value: object) -> dt.date | None:
    return p.parse_date(value, anchor="end")


#: column kind -> typer. The parsers are the cell parsers; text kinds never raise.
_NUMBER_TYPES = frozenset({float, int})
_DATE_TYPES = frozenset({dt.date, dt.datetime})
TYPERS: dict[str, Callable[[list], tuple[list, _Errors]]] = {
    "number": _Typer(p.parse_number, _fast_number, _NUMBER_TYPES),
    "count": _Typer(p.parse_count, _fast_number, _NUMBER_TYPES),
    "rate": _Typer(p.parse_percent_or_fraction, _fast_rate, _NUMBER_TYPES),
    "quarter": _Typer(p.parse_quarter, None),
    "date_start": _Typer(p.parse_date, _fast_date, _DATE_TYPES),
    "date_end": _Typer(_date_end, _fast_date, _DATE_TYPES),
    "yes_no": _Typer(p.parse_yes_no, None),
    "text": _TextTyper(),
}


def type_column(kind: str, values: list) -> tuple[list, _Errors]:
    """Typed values of one column (blank cells ``None``) and the cells the cell parser rejects."""
    return TYPERS[kind](values)


def read_column(kind: str, values) -> tuple[list, list, _Errors]:
    """(the cells with blanks as ``None``, the typed values, the errors) of one column: :func:`mask_blank`, then
    :func:`type_column`. An amount column as nearly all are, every cell a number or empty, takes one pass."""
    # Fast paths: cells the typer would return unchanged (a finite number, a rate written as a fraction, a
    # date) or empty; any other cell sends the column the long way.
    if kind == "number" or kind == "count":
        typed = [v if v.__class__ is float and v - v == 0.0 else None if v == "" else _PENDING for v in values]
    elif kind == "rate":
        typed = [v if v.__class__ is float and -1.5 <= v <= 1.5 else None if v == "" else _PENDING for v in values]
    elif kind == "date_start" or kind == "date_end":
        typed = [v if v.__class__ is dt.date else None if v == "" else _PENDING for v in values]
    else:
        typed = None
    if typed is not None and not typed.count(_PENDING):
        return typed, typed[:], []  # a copy: the reader fills in some typed amounts, never a cell
    masked = mask_blank(values)
    typed, errors = type_column(kind, masked)
    return masked, typed, errors


def lookup_typer(parse: Callable[[object], object]) -> _Typer:
    """A typer for a column whose text maps to a key (labels, municipalities): one lookup per distinct text."""
    return _Typer(parse, None)
