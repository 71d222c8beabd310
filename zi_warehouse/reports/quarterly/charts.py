"""Charts of the quarterly report: matplotlib (Agg backend) drawn to inline SVG with text kept as text.

What belongs here: the chart style and colours, the chart order ("Abb. n"), :func:`chart_svg` that turns a
section's drawing function into an ``<svg data-chart="<key>">`` element, the chart cache, and the axis helpers
(German ticks with as many decimals as their spacing needs, year and quarter axes with horizontal labels).
What a chart shows is drawn by its section (``sections/``).

The cache (``reports/quarterly/.chart-cache/<hash>.svg``): the nine charts cost 1-3 s to draw, and a
delivery usually changes the data of one or two. A chart is drawn again only when something its SVG depends
on changed (:func:`chart_digest`). matplotlib (about 0.3 s to import) is imported only when a chart is
drawn, so a process whose charts all come from the cache never loads it.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import pickle
import re
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zi_warehouse import config
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


#: Where the drawn charts are kept, inside the reports folder (``config.paths().reports``).
CACHE_FOLDER = Path("quarterly") / ".chart-cache"
#: How many drawn charts the cache keeps, the most recently used: every chart of about eight reports (the
#: pipeline's latest quarter, earlier quarters drawn by hand, the versions before the last deliveries).
CACHE_ENTRIES = 8 * len(CHART_ORDER)
#: Part of every cache key: raising it discards what was drawn before (a change in how the key is made).
CACHE_VERSION = 1


@functools.cache
def _pyplot():
    """matplotlib.pyplot on the Agg backend (no display on servers), imported when the first chart is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _svg(fig, key: str, bbox) -> str:
    """The figure cropped to ``bbox`` (inches) as an inline <svg> element (no XML prolog), marked data-chart=key."""
    plt = _pyplot()
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
    """One chart as :func:`draw_chart` draws it, taken from the cache when it was drawn before from the same
    inputs (:func:`chart_digest`); a chart whose inputs cannot be hashed is drawn every time."""
    digest = chart_digest(key, draw, figsize, source, nrows, ncols, margins, kw)
    folder = config.paths().reports / CACHE_FOLDER
    svg = _cached(folder, digest) if digest else None
    if svg is None:
        svg = draw_chart(key, draw, figsize, source, nrows, ncols, margins, **kw)
        if digest:
            _store(folder, digest, svg)
    return svg


def draw_chart(
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
    plt = _pyplot()
    from matplotlib.transforms import Bbox

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


# --- the chart cache ------------------------------------------------------------------------------------


def chart_digest(
    key: str,
    draw: Callable,
    figsize: tuple[float, float],
    source: str,
    nrows: int,
    ncols: int,
    margins: dict | None,
    kw: dict,
) -> str | None:
    """The cache key of a chart: a hash of everything its SVG depends on, or None when something cannot be hashed.

    That is the arguments of :func:`chart_svg`, the values ``draw`` closes over (the rows it plots, its
    labels and options; the values of nested functions too), and :func:`drawing_environment` (the code,
    which covers the module-level names ``draw`` uses, and matplotlib). The values are hashed as pickled:
    equal bytes mean equal values, so a hit is never stale; a value that pickles differently from an equal
    one only costs a drawing. A value that cannot be pickled (a connection, say) makes the chart uncacheable.
    """
    buffer = io.BytesIO()
    chart = (key, tuple(figsize), source, nrows, ncols, margins, sorted(kw.items()), draw)
    try:
        _KeyPickler(buffer).dump((CACHE_VERSION, drawing_environment(), chart))
    except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError):
        return None
    return hashlib.sha256(buffer.getvalue()).hexdigest()


@functools.cache
def drawing_environment() -> tuple:
    """What every chart depends on besides its own inputs, once per process (the code that runs is the code of
    its start): the ``zi_warehouse`` code (``build_state.package_fingerprint``), the versions of matplotlib, numpy
    and Python, and any matplotlibrc that matplotlib would read besides its own (the style sets only some
    parameters)."""
    from importlib import metadata

    from zi_warehouse.build_state import package_fingerprint

    rc_files = []
    if os.environ.get("MATPLOTLIBRC"):
        given = Path(os.environ["MATPLOTLIBRC"])
        rc_files.append(given / "matplotlibrc" if given.is_dir() else given)
    rc_files.append(Path.cwd() / "matplotlibrc")
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    rc_files.append(Path(os.environ.get("MPLCONFIGDIR") or config_home / "matplotlib") / "matplotlibrc")
    rc_texts = []
    for path in rc_files:
        try:
            rc_texts.append((str(path), path.read_bytes()))
        except OSError:
            pass  # not there: matplotlib reads the next one, finally its own
    return (
        package_fingerprint(),
        metadata.version("matplotlib"),
        metadata.version("numpy"),
        sys.version,
        rc_texts,
    )


class _Function:
    """Stands for a function in a cache key (never unpickled)."""


class _Code:
    """Stands for a code object in a cache key (never unpickled)."""


class _EmptyCell:
    """Stands for a closure variable not yet assigned."""


class _KeyPickler(pickle.Pickler):
    """Pickles a drawing function by what it draws with: its name, code, defaults and the values it closes over
    (pickle itself would refuse a nested function, or store only the name of a module-level one)."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=5)

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType):
            cells = []
            for cell in obj.__closure__ or ():
                try:
                    cells.append(cell.cell_contents)
                except ValueError:
                    cells.append(_EmptyCell)
            state = (obj.__module__, obj.__qualname__, obj.__code__, obj.__defaults__, obj.__kwdefaults__, cells)
            return _Function, state
        if isinstance(obj, types.CodeType):
            # A set literal is a frozenset constant, pickled in an order that changes with the hash seed.
            consts = tuple(sorted(map(repr, c)) if isinstance(c, frozenset) else c for c in obj.co_consts)
            return _Code, (obj.co_code, obj.co_names, consts)
        return NotImplemented


def _cached(folder: Path, digest: str) -> str | None:
    """The SVG kept under ``digest``, marked as just used (the cache keeps the most recently used)."""
    path = folder / f"{digest}.svg"
    try:
        with open(path, encoding="utf-8", newline="") as file:
            svg = file.read()
    except OSError:
        return None
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only reports folder: the chart is still good
    return svg if svg.startswith("<svg") and svg.endswith("</svg>\n") else None


def _store(folder: Path, digest: str, svg: str) -> None:
    """Keep a drawn chart (written whole, then renamed: a reader never sees half a file), and drop the least
    recently used beyond :data:`CACHE_ENTRIES`. A folder that cannot be written only costs the next drawing."""
    temp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", newline="", dir=folder, suffix=".tmp", delete=False
        ) as file:
            temp = Path(file.name)
            file.write(svg)
        os.replace(temp, folder / f"{digest}.svg")
    except OSError:
        if temp is not None:
            _remove(temp)
        return
    prune_cache(folder)


def prune_cache(folder: Path, keep: int = CACHE_ENTRIES) -> None:
    """Delete all but the ``keep`` most recently used charts, and temporary files left by a crash."""
    charts = []
    try:
        listing = list(folder.iterdir())
    except OSError:
        return
    for path in listing:
        try:
            stat = path.stat()
        except OSError:
            continue  # deleted meanwhile by another drawing
        if path.suffix == ".svg":
            charts.append((stat.st_mtime_ns, path))
        elif path.suffix == ".tmp" and time.time() - stat.st_mtime > 3600:
            _remove(path)
    for _mtime, path in sorted(charts, reverse=True)[keep:]:
        _remove(path)


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # e.g. a read-only reports folder: the cache only stays larger


# --- axes ---------------------------------------------------------------------------------------------

#: The most decimals a tick label gets.
MAX_TICK_DECIMALS = 6


@functools.cache
def _german_ticks_class() -> type:
    """The formatter class, defined when first needed: it derives from matplotlib's Formatter."""
    from matplotlib.ticker import Formatter

    class GermanTicks(Formatter):
        """Tick labels in German notation with as many decimals as the ticks' spacing needs.

        0; 0,004; 0,008 … are written with three places, 0; 5; 10 … with none: never "0,01 0,01" for two
        different ticks, never "5,00" where "5" says it. ``min_decimals`` keeps a fixed minimum.
        """

        def __init__(self, min_decimals: int = 0) -> None:
            self.min_decimals = min_decimals
            self.decimals = min_decimals

        def set_locs(self, locs: Sequence[float]) -> None:
            super().set_locs(locs)
            self.decimals = tick_decimals(list(locs), self.min_decimals)

        def __call__(self, value: float, pos: int | None = None) -> str:
            return format_number(value, self.decimals)

    return GermanTicks


def tick_decimals(locs: list[float], min_decimals: int = 0) -> int:
    """The fewest decimals (at least ``min_decimals``) that write every tick exactly (up to float noise)."""
    finite = [v for v in locs if math.isfinite(v)]
    scale = max((abs(v) for v in finite), default=1.0) or 1.0
    for decimals in range(min_decimals, MAX_TICK_DECIMALS + 1):
        if all(abs(round(v, decimals) - v) <= 1e-9 * scale for v in finite):
            return decimals
    return MAX_TICK_DECIMALS


def german_ticks(min_decimals: int = 0):
    """Axis ticks in German notation, with the decimals their spacing needs (at least ``min_decimals``)."""
    return _german_ticks_class()(min_decimals)


def year_axis(ax, nbins: int = 8) -> None:
    """Whole years on the x axis, written without thousands separator."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

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
    from matplotlib.ticker import FixedLocator, FuncFormatter

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
