"""German number, percentage, date and quarter parsing of forecast cells (examples and properties)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zi_warehouse.forecasts import parsing as p
from zi_warehouse.german import format_date, format_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.234,56", 1234.56),
        ("1.200", 1200.0),
        ("1.234.567", 1234567.0),
        ("1,5", 1.5),
        ("1.5", 1.5),
        ("1234.56", 1234.56),
        ("1,234.56", 1234.56),
        ("ca. 1.200", 1200.0),
        ("circa 900", 900.0),
        ("~ 3.000 m²", 3000.0),
        ("1,2 Mio", 1_200_000.0),
        ("1,2 Mio.", 1_200_000.0),
        ("350 Tsd.", 350_000.0),
        ("12.000,- €", 12000.0),
        ("EUR 12.000,00", 12000.0),
        ("-1.200", -1200.0),
        ("  4711  ", 4711.0),
        ("1 234,5", 1234.5),
        (42, 42.0),
        (0.9, 0.9),
    ],
)
def test_parse_number_examples(text, expected):
    assert p.parse_number(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", [None, "", "  ", "-", "k.A.", "n/a"])
def test_blank_cells_are_none(text):
    assert p.parse_number(text) is None
    assert p.parse_date(text) is None


@pytest.mark.parametrize("text", ["offen", "12a", "1.2.3,4", "ca.", "Mio", "1,234,5"])
def test_parse_number_rejects_text(text):
    with pytest.raises(p.ParseError) as exc:
        p.parse_number(text)
    assert "keine Zahl" in exc.value.message_de


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12 %", 0.12),
        ("90%", 0.9),
        ("100 %", 1.0),
        (0.9, 0.9),
        (1.0, 1.0),
        ("90", 0.9),
        ("0,8", 0.8),
        (1.2, 1.2),
        ("120 %", 1.2),
        ("12,5 %", 0.125),
    ],
)
def test_parse_rate(value, expected):
    assert p.parse_percent_or_fraction(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "anchor", "expected"),
    [
        ("15.03.2022", "start", dt.date(2022, 3, 15)),
        ("1.7.22", "start", dt.date(2022, 7, 1)),
        ("2022-03-15", "start", dt.date(2022, 3, 15)),
        (44635, "start", dt.date(2022, 3, 15)),
        ("44635", "start", dt.date(2022, 3, 15)),
        (dt.datetime(2022, 3, 15, 0, 0), "start", dt.date(2022, 3, 15)),
        ("Q3/2022", "start", dt.date(2022, 7, 1)),
        ("Q3/2022", "end", dt.date(2022, 9, 30)),
        ("3. Quartal 2022", "end", dt.date(2022, 9, 30)),
        ("03/2023", "end", dt.date(2023, 3, 31)),
        ("März 2023", "start", dt.date(2023, 3, 1)),
    ],
)
def test_parse_date_examples(value, anchor, expected):
    assert p.parse_date(value, anchor=anchor) == expected


@pytest.mark.parametrize("value", ["Frühjahr 2023", "31.02.2022", 12.5, "bald", True])
def test_parse_date_rejects(value):
    with pytest.raises(p.ParseError):
        p.parse_date(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Q3/2022", "2022-Q3"),
        ("Q3-2022", "2022-Q3"),
        ("2022-Q3", "2022-Q3"),
        ("3. Quartal 2022", "2022-Q3"),
        ("3.Quartal 2022", "2022-Q3"),
        ("III/2022", "2022-Q3"),
        ("Quartal 3/2022", "2022-Q3"),
        (dt.date(2022, 8, 1), "2022-Q3"),
        ("15.08.2022", "2022-Q3"),
        (44774, "2022-Q3"),
    ],
)
def test_parse_quarter_examples(value, expected):
    assert p.parse_quarter(value) == expected


def test_yes_no():
    assert p.parse_yes_no(" Ja ") is True
    assert p.parse_yes_no("nein") is False
    assert p.parse_yes_no("x") is True
    assert p.parse_yes_no("") is None
    with pytest.raises(p.ParseError):
        p.parse_yes_no("vielleicht")


# --- properties ------------------------------------------------------------------------------------
amounts = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(amounts, st.booleans(), st.sampled_from(["", "ca. ", "rd. ", "~"]), st.sampled_from(["", " €", " EUR"]))
def test_german_formatted_amounts_round_trip(amount, thousands, prefix, suffix):
    value = float(amount)
    text = prefix + format_number(value, 2, thousands=thousands) + suffix
    assert p.parse_number(text) == pytest.approx(value, abs=0.005)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1000, max_value=10**9))
def test_german_thousands_are_never_decimals(n):
    # '1.200' must be 1200, never 1.2: the classic German/English confusion.
    assert p.parse_number(format_number(n, 0)) == n


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=999), st.integers(min_value=1, max_value=99))
def test_millions(whole, cents):
    text = f"{whole},{cents:02d} Mio"
    assert p.parse_number(text) == pytest.approx((whole + cents / 100) * 1_000_000)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=100))
def test_percent_text_and_plain_percent_agree(pct):
    assert p.parse_percent_or_fraction(f"{pct} %") == pytest.approx(pct / 100)
    if pct > 1:
        assert p.parse_percent_or_fraction(str(pct)) == pytest.approx(pct / 100)


dates = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2090, 12, 31))


@settings(max_examples=300, deadline=None)
@given(dates)
def test_dates_round_trip_as_text_serial_and_iso(day):
    assert p.parse_date(format_date(day)) == day
    assert p.parse_date(day.isoformat()) == day
    assert p.parse_date(p.excel_serial(day)) == day
    assert p.parse_date(float(p.excel_serial(day))) == day


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=2000, max_value=2099),
    st.integers(min_value=1, max_value=4),
    st.sampled_from(
        [
            "Q{q}/{y}",
            "Q{q}-{y}",
            "Q{q} {y}",
            "{y}-Q{q}",
            "{q}. Quartal {y}",
            "{q}. Qu. {y}",
            "Quartal {q}/{y}",
            " q{q}/{y} ",
        ]
    ),
)
def test_quarters_in_every_spelling(y, q, pattern):
    text = pattern.format(q=q, y=y)
    assert p.parse_quarter(text) == f"{y}-Q{q}"
    first, last = p.quarter_bounds(y, q)
    assert p.parse_date(text, anchor="start") == first
    assert p.parse_date(text, anchor="end") == last
    assert p.parse_quarter(first) == p.parse_quarter(last) == f"{y}-Q{q}"


# --- column typing (forecasts/columns.py) agrees with the cell parsers, cell by cell ---------------------
from zi_warehouse.forecasts import columns as col  # noqa: E402

CELL_PARSERS = {
    "number": p.parse_number,
    "count": p.parse_count,
    "rate": p.parse_percent_or_fraction,
    "quarter": p.parse_quarter,
    "date_start": lambda v: p.parse_date(v, anchor="start"),
    "date_end": lambda v: p.parse_date(v, anchor="end"),
    "yes_no": p.parse_yes_no,
    "text": p.parse_text,
}
german_numbers = st.builds(
    lambda amount, thousands, prefix, suffix: prefix + format_number(float(amount), 2, thousands=thousands) + suffix,
    amounts,
    st.booleans(),
    st.sampled_from(["", "ca. ", "-", " "]),
    st.sampled_from(["", " €", " Mio", "%", " m²"]),
)
german_dates = st.builds(
    lambda d, f: f(d),
    dates,
    st.sampled_from(
        [
            format_date,
            dt.date.isoformat,
            lambda d: d.strftime("%m/%Y"),
            lambda d: f"Q{(d.month - 1) // 3 + 1}/{d.year}",
            lambda d: str(p.excel_serial(d)),
            lambda d: d.strftime("%d.%m.%y"),
        ]
    ),
)
cells = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    dates,
    st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2090, 12, 31)),
    german_numbers,
    german_dates,
    st.sampled_from(
        [
            "",
            " ",
            "-",
            "k.A.",
            "K. A.",
            "n/a",
            "entfällt",
            "ja",
            " Nein ",
            "x",
            "1",
            "0",
            "offen",
            "Q3/2022",
            "3. Quartal 2022",
            "III/2022",
            "März 2023",
            "31.02.2022",
            "nan",
            "inf",
            "1e5",
        ]
    ),
    st.text(max_size=12),
)


def _by_cell(parse, value):
    """What the reader makes of one cell with the cell parser: None for a blank cell, else value or error."""
    if p.is_blank(value):
        return ("ok", None)
    try:
        return ("ok", parse(value))
    except p.ParseError as exc:
        return ("error", exc.rule, exc.message_de)


def _same(a, b) -> bool:
    if a[0] == b[0] == "ok" and type(a[1]) is not type(b[1]):  # 1.0 == 1 == True, but not the same value
        return False
    return a == b or (a[0] == b[0] == "ok" and isinstance(a[1], float) and a[1] != a[1] and b[1] != b[1])


def _check_column(kind: str, values: list) -> None:
    """``columns.read_column`` against the cell parser, cell by cell: the blanks, the typed values, the errors."""
    # twice: the second pass answers from the remembered texts
    for _ in range(2):
        masked, typed, errors = col.read_column(kind, values)
        assert [m is None for m in masked] == [p.is_blank(v) for v in values]
        assert all(m is None or m is v for m, v in zip(masked, values))  # a cell is kept as read, or blank
        errs = {i: e for i, e in errors}
        got = [
            ("error", errs[i].rule, errs[i].message_de) if i in errs else ("ok", typed[i]) for i in range(len(values))
        ]
        expected = [_by_cell(CELL_PARSERS[kind], v) for v in values]
        assert all(_same(g, e) for g, e in zip(got, expected)), (kind, values, got, expected)
        assert all(typed[i] is None for i in errs)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(CELL_PARSERS)), st.lists(cells, max_size=25))
def test_column_typing_equals_the_cell_parser_for_every_cell(kind, values):
    _check_column(kind, values)


@pytest.mark.parametrize("kind", sorted(CELL_PARSERS))
@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.just(""),
            st.floats(min_value=-3, max_value=3),  # a rate as a fraction, or around where a percentage starts
            st.floats(allow_nan=True, allow_infinity=True),
            dates,
            st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2090, 12, 31)),
        ),
        max_size=25,
    ),
    odd=st.one_of(st.none(), st.sampled_from([" ", "k.A.", "1,5", "12.03.2024", True, 7])),
)
def test_a_column_of_numbers_or_dates_as_read_is_typed_as_the_cell_parser_types_it(kind, values, odd):
    """Cells as python-calamine gives them (a float, a date, an empty text): the one-pass paths of
    ``read_column``, and the long way once one cell is anything else."""
    _check_column(kind, values if odd is None else [*values, odd])


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["quarter", "yes_no"]),
    st.lists(
        st.one_of(st.none(), st.sampled_from(["Q3/2022", "3. Quartal 2022", "III/2022", "2023-Q1", "ja", "Nein", "x"])),
        max_size=25,
    ),
)
def test_a_column_of_texts_read_before_is_typed_as_the_cell_parser_types_it(kind, values):
    """The one-pass read of remembered texts (every cell a text seen before, none an error) against the parser."""
    col.type_column(kind, values)  # remember every text (and every error)
    typed, errors = col.type_column(kind, values)
    errs = {i: e for i, e in errors}
    got = [("error", errs[i].rule, errs[i].message_de) if i in errs else ("ok", typed[i]) for i in range(len(values))]
    expected = [_by_cell(CELL_PARSERS[kind], v) for v in values]
    assert all(_same(g, e) for g, e in zip(got, expected)), (kind, values, got, expected)
