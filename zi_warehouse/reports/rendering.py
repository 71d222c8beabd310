"""The Jinja2 set-up both reports share: their templates folder, HTML escaping and the German filters.

What belongs here: :func:`environment`, used by the quality report (``quality.py``) and the quarterly
report (``quarterly/render.py``); each adds the tests and filters only it needs. ``breakable`` lets a long
name such as ``mart_forecast_accuracy_municipality_quarter`` wrap after its underscores instead of
widening its table past the page.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from zi_warehouse.german import format_datetime, format_number

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def breakable(text: object) -> Markup:
    """``text`` escaped, with a line-break opportunity (<wbr>) after every underscore and "×"."""
    return Markup(str(escape(text)).replace("_", "_<wbr>").replace("×", "×<wbr>"))


def environment() -> jinja2.Environment:
    """Templates from ``templates/``, autoescaped, undefined names fail, ``de_number``/``de_datetime`` filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["de_number"] = format_number
    env.filters["de_datetime"] = format_datetime
    env.filters["breakable"] = breakable
    return env
