"""Parsing what coordinators type into cells: German numbers, percentages, dates, quarters, yes/no.

Pure functions; the only data read is the accepted spellings of yes/no (``seeds/coded_value_spellings.csv``,
once per process). Each parser takes a cell value as python-calamine returns it (str, int, float,
bool, datetime.date/datetime, or None) and returns the typed value, ``None`` for an empty cell, or
raises :class:`ParseError` with a German message the sender can act on.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from functools import lru_cache

#: Excel's day zero for serial dates (the 1900 system, with Excel's fictitious 29.02.1900 folded in).
EXCEL_EPOCH = dt.date(1899, 12, 30)
#: Serial numbers we accept as dates: 1982-10-... to 2118-..., wide enough for planning dates, narrow
#: enough that an amount typed into a date column is not silently read as a date.
SERIAL_MIN, SERIAL_MAX = 30000, 80000

#: Cell texts that mean "nothing entered" (k.A. = keine Angabe).
EMPTY_TEXTS = frozenset({"", "-", "--", "–", "—", "k.a.", "k. a.", "n.a.", "n/a", "entfällt", "./."})
_APPROX = re.compile(r"^(ca\.?|circa|rd\.?|rund|etwa|ungefähr|ungef\.|~|≈)\s*", re.IGNORECASE)
_CURRENCY = re.compile(r"(€|\beur(o)?\b)", re.IGNORECASE)
_DASH_CENTS = re.compile(r"[,.]-+$")  # "12.000,-": whole euros
_UNIT_M2 = re.compile(r"(m²|m2|qm)\s*$", re.IGNORECASE)
_SCALE = [
    (re.compile(r"\s*(mio\.?|millionen|million|mill\.)\s*$", re.IGNORECASE), 1_000_000.0),
    (re.compile(r"\s*(tsd\.?|tausend|t)\s*$", re.IGNORECASE), 1_000.0),
]
_PLAIN = re.compile(r"^[+-]?\d+$")


class ParseError(ValueError):
    """A cell value that cannot be read as the type its column needs (message in German)."""

    def __init__(self, message_de: str, rule: str = "type"):
        super().__init__(message_de)
        self.message_de = message_de
        self.rule = rule


def is_blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().casefold() in EMPTY_TEXTS


def _german_decimal(text: str) -> float:
    """'1.234,56' -> 1234.56, '1.200' -> 1200, '1,5' -> 1.5, '1234.56' -> 1234.56, '1 234' -> 1234."""
    s = text.replace("\u00a0", " ").replace("'", "").strip()
    s = re.sub(r"(?<=\d) (?=\d{3}\b)", "", s)  # space as thousands separator
    negative = s.startswith(("-", "−"))
    s = s.lstrip("+-−").strip()
    if not re.fullmatch(r"[\d.,]+", s) or not re.search(r"\d", s):
        raise ValueError(text)
    if "," in s and "." in s:
        # Both separators: the last one is the decimal mark ("1.234,56" German, "1,234.56" English).
        if re.fullmatch(r"\d{1,3}(\.\d{3})+,\d*", s):
            s = s.replace(".", "").replace(",", ".")
        elif re.fullmatch(r"\d{1,3}(,\d{3})+\.\d*", s):
            s = s.replace(",", "")
        else:
            raise ValueError(text)
    elif "," in s:
        if s.count(",") > 1:  # "1,234,567": thousands only
            if not re.fullmatch(r"\d{1,3}(,\d{3})+", s):
                raise ValueError(text)
            s = s.replace(",", "")
        else:
            s = s.replace(",", ".")  # German decimal comma
    elif "." in s:
        # German thousands dots ("1.200", "1.234.567") versus a decimal point ("1.5", "1234.56").
        if re.fullmatch(r"\d{1,3}(\.\d{3})+", s):
            s = s.replace(".", "")
        elif s.count(".") > 1:
            raise ValueError(text)
    value = float(s)
    return -value if negative else value


def parse_number(value: object, example: str = "1.234,56") -> float | None:
    """A number as written in German spreadsheets: '1.234,56', 'ca. 1.200', '1,2 Mio', '1.500 €', 'EUR 12.000,-'.

    ``example`` is what the message of an unreadable text suggests instead."""
    if is_blank(value):
        return None
    if isinstance(value, bool):
        raise ParseError(f"Wahrheitswert „{value}“ statt einer Zahl.")
    if isinstance(value, (int, float)):
        if math.isinf(value):
            raise ParseError("Unendlicher Wert statt einer Zahl.")
        return float(value)
    if isinstance(value, (dt.date, dt.datetime)):
        raise ParseError(f"Datum „{value}“ statt einer Zahl.")
    text = str(value).strip()
    s = _APPROX.sub("", text)
    s = _CURRENCY.sub("", s).strip()
    s = _DASH_CENTS.sub("", s).strip()
    s = _UNIT_M2.sub("", s).strip()
    factor = 1.0
    for pattern, f in _SCALE:
        if pattern.search(s):
            s, factor = pattern.sub("", s).strip(), f
            break
    try:
        return _german_decimal(s) * factor
    except ValueError:
        raise ParseError(f"„{text}“ ist keine Zahl (erwartet z. B. {example}).") from None


def parse_count(value: object) -> float | None:
    """A count (trees): read as any number (that it is whole is a row rule); the message suggests a count."""
    return parse_number(value, example="12")


def parse_percent_or_fraction(value: object) -> float | None:
    """A rate as a fraction 0..1: '12 %' -> 0.12, 0.9 -> 0.9, '90' -> 0.9, '1,0' -> 1.0.

    Numbers above 1.5 without a % sign are read as percent (nobody means a rate of 250 % when typing 2.5
    into a rate column, but a fraction up to 1.5 may be an honest 150 % mistake that validation rejects).
    """
    if is_blank(value):
        return None
    if isinstance(value, str) and "%" in value:
        number = parse_number(value.replace("%", "").replace("Prozent", ""))
        return None if number is None else number / 100.0
    number = parse_number(value)
    if number is None:
        return None
    return number / 100.0 if abs(number) > 1.5 else number


def parse_integer(value: object) -> float | None:
    """A count (trees): parsed as a number; whether it is whole is a validation rule, so the value is kept."""
    return parse_number(value)


#: The two values of a yes/no column as the template's drop-down offers them.
YES_NO = ("ja", "nein")


@lru_cache(maxsize=1)
def _yes_no_spellings() -> dict[str, bool]:
    """Normalised spelling -> answer: 'ja'/'nein' and the other spellings of ``seeds/coded_value_spellings.csv``."""
    from zi_warehouse.reference import coded_value_spellings, normalise_name

    spellings = {normalise_name(YES_NO[0]): True, normalise_name(YES_NO[1]): False}
    spellings.update({s: key == "true" for s, key in coded_value_spellings()["yes_no"].items()})
    return spellings


def parse_yes_no(value: object) -> bool | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    from zi_warehouse.reference import normalise_name

    answer = _yes_no_spellings().get(normalise_name(str(value)))
    if answer is None:
        raise ParseError(f"„{value}“ ist weder „{YES_NO[0]}“ noch „{YES_NO[1]}“.")
    return answer


# --- quarters -------------------------------------------------------------------------------------
_QUARTER_PATTERNS = [
    re.compile(r"^q\s*([1-4])\s*[/\-. ]\s*(\d{4})$"),  # Q3/2022, Q3-2022, Q3 2022
    re.compile(r"^(\d{4})\s*[/\-. ]?\s*q\s*([1-4])$"),  # 2022-Q3, 2022/Q3, 2022 Q3
    re.compile(r"^([1-4])\s*\.?\s*(?:quartal|qu\.?|q)\s*(\d{4})$"),  # 3. Quartal 2022, 3. Qu. 2022, 3Q 2022
    re.compile(r"^(?:quartal|qu\.?)\s*([1-4])\s*[/\-. ]?\s*(\d{4})$"),  # Quartal 3/2022
    re.compile(r"^([1-4])\s*/\s*(\d{4})$"),  # 3/2022 (quarter columns only)
    re.compile(r"^(i{1,3}|iv)\s*[/\-. ]\s*(\d{4})$"),  # III/2022
]
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4}


def quarter_label(year: int, quarter: int) -> str:
    """The canonical period text, 'YYYY-Qn'."""
    return f"{year}-Q{quarter}"


def parse_quarter_text(text: str) -> tuple[int, int] | None:
    s = " ".join(str(text).strip().casefold().split())
    for i, pattern in enumerate(_QUARTER_PATTERNS):
        m = pattern.match(s)
        if not m:
            continue
        a, b = m.groups()
        if i == 1:
            return int(a), int(b)
        if i == 5:
            return int(b), _ROMAN[a]
        return int(b), int(a)
    return None


def quarter_bounds(year: int, quarter: int) -> tuple[dt.date, dt.date]:
    first = dt.date(year, 3 * quarter - 2, 1)
    nxt = dt.date(year + (quarter == 4), (3 * quarter) % 12 + 1, 1)
    return first, nxt - dt.timedelta(days=1)


_MONTHS_DE = {
    "jan": 1,
    "januar": 1,
    "jänner": 1,
    "feb": 2,
    "februar": 2,
    "mär": 3,
    "mrz": 3,
    "märz": 3,
    "maerz": 3,
    "apr": 4,
    "april": 4,
    "mai": 5,
    "jun": 6,
    "juni": 6,
    "jul": 7,
    "juli": 7,
    "aug": 8,
    "august": 8,
    "sep": 9,
    "sept": 9,
    "september": 9,
    "okt": 10,
    "oktober": 10,
    "nov": 11,
    "november": 11,
    "dez": 12,
    "dezember": 12,
}


def _excel_serial(number: float) -> dt.date:
    if not (SERIAL_MIN <= number <= SERIAL_MAX):
        raise ParseError(f"Zahl {number:g} ist kein Datum (erwartet TT.MM.JJJJ).")
    return EXCEL_EPOCH + dt.timedelta(days=int(number))


def parse_date(value: object, anchor: str = "start") -> dt.date | None:
    """A date: a date cell, an Excel serial, '15.03.2022', '2022-03-15', '03/2022', 'März 2022', 'Q3/2022'.

    Month and quarter answers are resolved to their first day (``anchor="start"``) or last day
    (``anchor="end"``): a planned start "Q3/2022" means 1 July, a planned completion means 30 September.
    """
    if is_blank(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, bool):
        raise ParseError(f"Wahrheitswert „{value}“ statt eines Datums.")
    if isinstance(value, (int, float)):
        return _excel_serial(float(value))
    text = " ".join(str(value).strip().split())
    low = text.casefold()
    m = re.fullmatch(r"(\d{1,2})\.\s?(\d{1,2})\.\s?(\d{2}|\d{4})", low)
    if m:
        d, mo, y = (int(g) for g in m.groups())
        y = y + 2000 if y < 100 else y
        return _checked(d, mo, y, text)
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ t]\d{1,2}:\d{2}(?::\d{2})?)?", low)
    if m:
        y, mo, d = (int(g) for g in m.groups())
        return _checked(d, mo, y, text)
    quarter = parse_quarter_text(low) if not re.fullmatch(r"\d{1,2}\s*/\s*\d{4}", low) else None
    if quarter:
        first, last = quarter_bounds(*quarter)
        return first if anchor == "start" else last
    m = re.fullmatch(r"(\d{1,2})\s*[/.]\s*(\d{4})", low)  # month/year
    if m:
        mo, y = int(m.group(1)), int(m.group(2))
        return _month(y, mo, anchor, text)
    m = re.fullmatch(r"([a-zäöü]+)\.?\s+(\d{4})", low)
    if m and m.group(1) in _MONTHS_DE:
        return _month(int(m.group(2)), _MONTHS_DE[m.group(1)], anchor, text)
    if re.fullmatch(r"\d{5}([.,]\d+)?", low):
        return _excel_serial(float(low.replace(",", ".")))
    raise ParseError(f"„{text}“ ist kein Datum (erwartet TT.MM.JJJJ oder Quartal wie Q3/2022).")


def _checked(d: int, mo: int, y: int, text: str) -> dt.date:
    try:
        return dt.date(y, mo, d)
    except ValueError:
        raise ParseError(
            f"„{text}“ ist kein gültiges Datum; bitte ein Datum im Kalender als TT.MM.JJJJ eintragen."
        ) from None


def _month(y: int, mo: int, anchor: str, text: str) -> dt.date:
    if not 1 <= mo <= 12:
        raise ParseError(f"„{text}“ ist kein gültiger Monat.")
    first = dt.date(y, mo, 1)
    if anchor == "start":
        return first
    nxt = dt.date(y + (mo == 12), mo % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


def parse_quarter(value: object) -> str | None:
    """A quarter as 'YYYY-Qn' from 'Q3/2022', '3. Quartal 2022', '2022-Q3', a date or an Excel serial."""
    if is_blank(value):
        return None
    if isinstance(value, (dt.date, dt.datetime)) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        day = parse_date(value)
        return quarter_label(day.year, (day.month - 1) // 3 + 1)
    quarter = parse_quarter_text(str(value))
    if quarter:
        return quarter_label(*quarter)
    try:
        day = parse_date(value)
    except ParseError:
        raise ParseError(f"„{value}“ ist kein Quartal (erwartet z. B. Q3/2022 oder 3. Quartal 2022).") from None
    return quarter_label(day.year, (day.month - 1) // 3 + 1)


def parse_text(value: object) -> str | None:
    """Trimmed text with inner whitespace collapsed; numbers as typed ids ('4711.0' becomes '4711')."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = " ".join(str(value).split())
    return text or None


# Writing German numbers and dates (the demo writer) is zi_warehouse/german.py's job; tests check that
# parse_number and parse_date read back what it writes.
def excel_serial(day: dt.date) -> int:
    return (day - EXCEL_EPOCH).days
