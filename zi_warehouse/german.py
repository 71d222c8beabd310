"""German notation for numbers, dates and times in text people read (reports, messages, exports).

What belongs here: turning a value into its German spelling: ``1.234,5`` (thousands ``.``, decimals ``,``),
``–`` for no value, ``ja``/``nein`` for a flag, ``31.12.2026`` for a day, ``31.12.2026 14:05 MEZ`` for a
moment (local time of the programme, Europe/Berlin, with the zone named). Parsing German input (a reader's job) stays with the reader of that format. The matplotlib tick
formatter of the quarterly report lives with its charts and calls :func:`format_number`.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from zoneinfo import ZoneInfo

#: The programme's local time: reports, exports and messages show moments in it (the warehouse keeps UTC).
LOCAL_TIME_ZONE = ZoneInfo("Europe/Berlin")
#: German names of the zone's two offsets (Python's tzname gives the English CET/CEST).
_ZONE_NAMES = {"CET": "MEZ", "CEST": "MESZ"}

#: How a missing value is written (an en dash, so an empty cell reads as "no value", not as forgotten).
NO_VALUE = "–"


def format_number(value: Any, decimals: int = 0, unit: str = "", thousands: bool = True) -> str:
    """1234.5 -> '1.234,5' with ``decimals`` places; ``unit`` follows after a no-break space.

    None and NaN are written as '–', a flag (bool) as 'ja'/'nein'. ``thousands=False`` leaves out the
    thousands separator ('1234,50', as a form field expects it). A value that rounds to zero is written
    without a minus sign ('-0,0' reads like an error).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_VALUE
    if isinstance(value, bool):
        return "ja" if value else "nein"
    spec = f",.{decimals}f" if thousands else f".{decimals}f"
    text = format(float(value), spec).replace(",", "\u0000").replace(".", ",").replace("\u0000", ".")
    if text.startswith("-") and text.strip("-0,.") == "":
        text = text[1:]
    return f"{text}\u00a0{unit}" if unit else text


def quoted(items) -> str:
    """Names in German quotes, comma-separated: '„Kommune“, „Titel“'; '–' for none."""
    return ", ".join(f"„{item}“" for item in items) or NO_VALUE


def count_of(n: int, singular: str, plural: str) -> str:
    """``1 Warnung``, ``3 Warnungen``: the number in German notation with the word in the right number."""
    return f"{format_number(n)} {singular if n == 1 else plural}"


def format_date(day: dt.date) -> str:
    """A day as '31.12.2026'."""
    return day.strftime("%d.%m.%Y")


def sort_key(text: str) -> str:
    """German alphabetical order (DIN 5007, names): an umlaut as its base letter, ß as ss, case ignored; so
    Bönen comes before Breckerfeld (Python's own order puts every umlaut after z)."""
    import unicodedata

    base = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return base.replace("ß", "ss").casefold()


def format_quarter(period: str) -> str:
    """A quarter 'JJJJ-Qn' as the template writes it for people, 'Qn/JJJJ' (anything else unchanged)."""
    year, _, quarter = period.partition("-Q")
    return f"Q{quarter}/{year}" if year.isdigit() and quarter.isdigit() else period


def local_time(moment: dt.datetime) -> dt.datetime:
    """A moment in the programme's local time (a naive value is taken as the machine's local time)."""
    return moment.astimezone(LOCAL_TIME_ZONE)


def format_datetime(moment: dt.datetime, seconds: bool = False) -> str:
    """A moment as '31.12.2026 14:05 MEZ' (summer: 'MESZ'), in local time of the programme (Europe/Berlin);
    with ``seconds`` as '31.12.2026 14:05:09 MEZ' (logs and build summaries, where runs follow closely).

    A naive value is taken as the machine's local time.
    """
    local = local_time(moment)
    zone = local.tzname() or ""
    clock = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    return f"{local:%d.%m.%Y} {clock} {_ZONE_NAMES.get(zone, zone)}"
