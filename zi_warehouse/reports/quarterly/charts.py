"""Charts of the quarterly report: matplotlib (Agg backend) drawn to inline SVG with text kept as text.

What belongs here: the chart style and colours, the chart order ("Abb. n"), :func:`chart_svg` that turns a
section's drawing function into an ``<svg data-chart="<key>">`` element, and the axis helpers (German
ticks, year axes). What a chart shows is drawn by its section (``sections/``).
"""

from __future__ import annotations

import io
import re
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator  # noqa: E402

from zi_warehouse.german import format_number  # noqa: E402

#: The charts in report order (their "Abb. n" numbers); the test expects each of them in HTML and PDF.
CHART_ORDER = (
    "kpi_region_disconnection",
    "kpi_region_evaporation",
    "kpi_municipalities_disconnection",
    "kpi_municipalities_trajectories",
    "budget_year",
    "pipeline_quarter",
    "trees_cumulative",
    "forecast_accuracy",
    "data_quality_rejections",
)

COLOURS = {
    "actual": "#1f5f8b",
    "planned": "#7fb3d5",
    "target": "#c0392b",
    "zi": "#27ae60",
    "envelope": "#bdc3c7",
    "approved": "#2e86c1",
    "paid": "#1e8449",
}
#: One colour per life-cycle status, in the order of sections.pipeline.PIPELINE_STATUSES.
PIPELINE_COLOURS = ["#d6eaf8", "#aed6f1", "#5dade2", "#2874a6", "#f5b041", "#229954", "#95a5a6", "#cb4335"]
TREE_COLOURS = {"campaign": "#27ae60", "register": "#16a085", "funded_measures": "#7dcea0"}


def _style() -> dict:
    return {
        "font.family": "DejaVu Sans",  # ships with matplotlib and Debian; Chromium renders the SVG text with it
        "font.size": 8,
        "axes.titlesize": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": "#dddddd",
        "grid.linewidth": 0.5,
        "legend.frameon": False,
        "legend.fontsize": 7,
        "svg.fonttype": "none",  # text stays text: searchable in the PDF, sharp at any zoom
    }


def _svg(fig, key: str, tight: bool) -> str:
    """The figure as an inline <svg> element (no XML prolog), marked with data-chart=key."""
    buffer = io.StringIO()
    with plt.rc_context({"svg.hashsalt": key}):  # deterministic, chart-specific element ids
        fig.savefig(buffer, format="svg", bbox_inches="tight" if tight else None,
                    metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    # The RDF metadata block only carries namespace URLs; without it the page has no http(s) text at all
    # except the SVG namespace declarations.
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    return text.replace("<svg ", f'<svg data-chart="{key}" role="img" ', 1)


def chart_label(key: str) -> str:
    """'Abb. n': the chart's number in the report, written inside the chart (so it shows where the chart is)."""
    return f"Abb. {CHART_ORDER.index(key) + 1}"


def chart_svg(key: str, draw: Callable, figsize: tuple[float, float], source: str, nrows: int = 1, ncols: int = 1,
              margins: dict | None = None, **kw) -> str:
    """Draw one chart: ``draw(fig, axes)`` on a grid of ``nrows`` × ``ncols`` axes, labelled "Abb. n · Quelle".

    Single charts are cropped to their content (bbox_inches="tight"); charts with several axes pass fixed
    ``margins`` (fig.subplots_adjust) instead, because tight layout plus cropping costs 2-3 times the
    drawing time for a dozen axes.
    """
    with plt.rc_context(_style()):
        fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, **kw)
        draw(fig, axes)
        label = f"{chart_label(key)} · Quelle: {source}"
        if margins:
            fig.subplots_adjust(**margins)
            fig.text(0.01, 0.005, label, fontsize=6, color="#777777", ha="left", va="bottom")
        else:
            # Below the figure (va="top" at y=0; the cropping makes room), so it never hides data.
            fig.text(0.0, 0.0, label, fontsize=6, color="#777777", ha="left", va="top")
        return _svg(fig, key, tight=not margins)


def german_ticks(decimals: int = 0) -> FuncFormatter:
    """Axis ticks in German notation with ``decimals`` places."""
    return FuncFormatter(lambda v, _pos: format_number(v, decimals))


def year_axis(ax, nbins: int = 8) -> None:
    """Whole years on the x axis, written without thousands separator."""
    first, last = (int(round(v)) for v in ax.get_xlim())
    if last - first > 10:
        ax.xaxis.set_major_locator(MultipleLocator(5))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=nbins))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: str(int(round(v)))))


def plotted(value: Any) -> float:
    """A mart value as matplotlib draws it: a missing value (None) as NaN, so the line has a gap there."""
    return float("nan") if value is None else float(value)
