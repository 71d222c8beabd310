"""Charts of the quarterly report: matplotlib (Agg backend) drawn to inline SVG with text kept as text.

What belongs here: the chart style and colours, the chart order ("Abb. n"), :func:`chart_svg` that turns a
section's drawing function into an ``<svg data-chart="<key>">`` element, and the axis helpers (German
ticks with as many decimals as their spacing needs, year and quarter axes with horizontal labels). What a
chart shows is drawn by its section (``sections/``).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt
from matplotlib.ticker import FixedLocator, Formatter, FuncFormatter, MaxNLocator, MultipleLocator
from matplotlib.transforms import Bbox

from zi_warehouse.german import format_number

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


def _svg(fig, key: str, bbox: Bbox) -> str:
    """The figure cropped to ``bbox`` (inches) as an inline <svg> element (no XML prolog), marked data-chart=key."""
    buffer = io.StringIO()
    with plt.rc_context({"svg.hashsalt": key}):  # deterministic, chart-specific element ids
        fig.savefig(buffer, format="svg", bbox_inches=bbox, metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    # The RDF metadata block only carries namespace URLs; without it the page has no http(s) text at all
    # except the SVG namespace declarations.
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    return text.replace("<svg ", f'<svg data-chart="{key}" role="img" ', 1)


def chart_label(key: str) -> str:
    """'Abb. n': the chart's number in the report, written inside the chart (so it shows where the chart is)."""
    return f"Abb. {CHART_ORDER.index(key) + 1}"


def chart_svg(
    key: str,
    draw: Callable,
    figsize: tuple[float, float],
    source: str,
    nrows: int = 1,
    ncols: int = 1,
    margins: dict | None = None,
    **kw,
) -> str:
    """Draw one chart: ``draw(fig, axes)`` on a grid of ``nrows`` × ``ncols`` axes, labelled "Abb. n · Quelle".

    The label goes below everything drawn (tick labels, legends), so it never covers data or text, and the
    figure is cropped to its content plus the label. Charts with several axes pass fixed ``margins``
    (fig.subplots_adjust) instead of a tight layout, which costs 2-3 times the drawing time for a dozen axes;
    the crop is computed once from the drawn figure, for every chart alike.
    """
    with plt.rc_context(_style()):
        fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, **kw)
        draw(fig, axes)
        if margins:
            fig.subplots_adjust(**margins)
        renderer = fig.canvas.get_renderer()
        content = fig.get_tightbbox(renderer)  # inches
        width, height = fig.get_size_inches()
        label = fig.text(
            max(content.x0, 0) / width,
            (content.y0 - 0.04) / height,
            f"{chart_label(key)} · Quelle: {source}",
            fontsize=6,
            color="#777777",
            ha="left",
            va="top",
        )
        label_box = label.get_window_extent(renderer).transformed(fig.dpi_scale_trans.inverted())
        return _svg(fig, key, Bbox.union([content, label_box]).padded(0.03))


class GermanTicks(Formatter):
    """Tick labels in German notation with as many decimals as the ticks' spacing needs.

    0; 0,004; 0,008 … are written with three places, 0; 5; 10 … with none: never "0,01 0,01" for two
    different ticks, never "5,00" where "5" says it. ``min_decimals`` keeps a fixed minimum.
    """

    MAX_DECIMALS = 6

    def __init__(self, min_decimals: int = 0) -> None:
        self.min_decimals = min_decimals
        self.decimals = min_decimals

    def set_locs(self, locs: Sequence[float]) -> None:
        super().set_locs(locs)
        self.decimals = tick_decimals(list(locs), self.min_decimals)

    def __call__(self, value: float, pos: int | None = None) -> str:
        return format_number(value, self.decimals)


def tick_decimals(locs: list[float], min_decimals: int = 0) -> int:
    """The fewest decimals (at least ``min_decimals``) that write every tick exactly (up to float noise)."""
    finite = [v for v in locs if math.isfinite(v)]
    scale = max((abs(v) for v in finite), default=1.0) or 1.0
    for decimals in range(min_decimals, GermanTicks.MAX_DECIMALS + 1):
        if all(abs(round(v, decimals) - v) <= 1e-9 * scale for v in finite):
            return decimals
    return GermanTicks.MAX_DECIMALS


def german_ticks(min_decimals: int = 0) -> GermanTicks:
    """Axis ticks in German notation, with the decimals their spacing needs (at least ``min_decimals``)."""
    return GermanTicks(min_decimals)


def year_axis(ax, nbins: int = 8) -> None:
    """Whole years on the x axis, written without thousands separator."""
    first, last = (int(round(v)) for v in ax.get_xlim())
    if last - first > 10:
        ax.xaxis.set_major_locator(MultipleLocator(5))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=nbins))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: str(int(round(v)))))


def quarter_axis(ax, periods: list[str], max_labels: int = 12) -> None:
    """An x axis of quarters (positions 0, 1, … for ``periods`` 'JJJJ-Qn'): a small tick per quarter, the
    year written horizontally under its first quarter (every n-th year when there are more than
    ``max_labels``), so labels never need rotating."""
    firsts = [(i, p[:4]) for i, p in enumerate(periods) if i == 0 or p[:4] != periods[i - 1][:4]]
    step = max(1, math.ceil(len(firsts) / max_labels))
    shown = firsts[::step]
    ax.xaxis.set_major_locator(FixedLocator([i for i, _ in shown]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, pos: dict(shown).get(int(round(v)), "")))
    ax.xaxis.set_minor_locator(FixedLocator(list(range(len(periods)))))
    ax.tick_params(axis="x", which="minor", length=2)
    if periods:
        ax.set_xlim(-0.6, len(periods) - 0.4)


def plotted(value: Any) -> float:
    """A mart value as matplotlib draws it: a missing value (None) as NaN, so the line has a gap there."""
    return float("nan") if value is None else float(value)
