"""The quarterly controlling report for the steering committee: German HTML with charts, printed to PDF.

What belongs here: reading the *published* warehouse (``published/zi.duckdb``, read-only, so the report
never waits for or blocks the pipeline), turning the public marts into the report's figures, charts
(matplotlib, Agg backend, inline SVG with text kept as text) and tables, rendering the Jinja2 template
``templates/quarterly.html.j2`` and printing it with headless Chromium (``chromium.print_pdf``).

Every number the report shows is a :class:`Figure` with a stable key; the template writes it with
``data-figure="<key>"`` and the unformatted value in ``data-value`` so a test (and anyone curious) can
compare the report with the marts. Each chart has a ``<table>`` with the numbers it plots.
How each figure is computed: docs/report.md (and docs/marts.md for the marts).
"""

from __future__ import annotations

import io
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import duckdb
import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator  # noqa: E402

from zi_warehouse import config  # noqa: E402

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "quarterly.html.j2"
PERIOD_PATTERN = re.compile(r"^(\d{4})-Q([1-4])$")

#: Life-cycle statuses in pipeline order (columns <status>_projects / <status>_eur of the pipeline mart).
PIPELINE_STATUSES = {
    "idea": "Projektidee",
    "application_in_preparation": "Antrag in Vorbereitung",
    "application_filed": "Antrag gestellt",
    "approved": "Bewilligt",
    "in_construction": "In Umsetzung",
    "completed": "Abgeschlossen",
    "withdrawn": "Zurückgezogen",
    "rejected": "Abgelehnt",
}
TREE_SOURCES = {
    "campaign": "Klimabäume-Aktion",
    "register": "Baumkataster",
    "funded_measures": "Geförderte Maßnahmen",
}
#: Forecast measures of mart_forecast_accuracy_municipality_quarter: (column stem, label, decimals).
FORECAST_MEASURES = {
    "applications": ("Anträge", 0),
    "approvals": ("Bescheide", 0),
    "payments_eur": ("Auszahlungen (EUR)", 0),
    "completions": ("Abschlüsse", 0),
}
REGION_LABELS = {"rvr": "Metropole Ruhr (53 Kommunen)", "zi_members": "Zukunftsinitiative (Gründungsmitglieder)"}
REGION_SHORT = {"rvr": "Metropole Ruhr", "zi_members": "ZI-Gründungsmitglieder"}
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
#: How many municipalities the small multiples show at each end of the ranking (the table shows all).
SMALL_MULTIPLES_EACH_END = 6
#: Rows of the rejection-rule table (the full list is in marts.mart_rejected_rows).
TOP_RULES = 15
FAILED_CHECKS_SHOWN = 50

COLOURS = {
    "actual": "#1f5f8b",
    "planned": "#7fb3d5",
    "target": "#c0392b",
    "zi": "#27ae60",
    "envelope": "#bdc3c7",
    "approved": "#2e86c1",
    "paid": "#1e8449",
}
PIPELINE_COLOURS = ["#d6eaf8", "#aed6f1", "#5dade2", "#2874a6", "#f5b041", "#229954", "#95a5a6", "#cb4335"]
TREE_COLOURS = {"campaign": "#27ae60", "register": "#16a085", "funded_measures": "#7dcea0"}


# --------------------------------------------------------------------------------------------------
# Numbers in German notation
# --------------------------------------------------------------------------------------------------
def format_de(value: Any, decimals: int = 0, unit: str = "") -> str:
    """1234.5 -> '1.234,5' (thousands '.', decimal ','); None/NaN -> '–'. ``unit`` is appended with a space."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "ja" if value else "nein"
    text = f"{float(value):,.{decimals}f}".replace(",", "\u0000").replace(".", ",").replace("\u0000", ".")
    if text.startswith("-") and text.strip("-0,.") == "":
        text = text[1:]  # "-0,0" reads like an error
    return f"{text}\u00a0{unit}" if unit else text


def _tick_de(decimals: int = 0) -> FuncFormatter:
    return FuncFormatter(lambda v, _pos: format_de(v, decimals))


@dataclass(frozen=True)
class Figure:
    """One number the report shows: its stable key, its value as in the mart, and how it is written."""

    key: str
    value: Any
    decimals: int = 0
    unit: str = ""

    @property
    def text(self) -> str:
        return format_de(self.value, self.decimals, self.unit)

    @property
    def raw(self) -> str:
        """The unformatted value for data-value (empty when the mart has no value)."""
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return ""
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return repr(float(self.value)) if not isinstance(self.value, int) else str(self.value)


@dataclass
class DataTable:
    headers: list[str]
    rows: list[list[Any]]  # cells: str or Figure
    key: str = ""
    caption: str = ""


@dataclass
class Chart:
    key: str
    title: str
    svg: str
    table: DataTable
    note: str = ""


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""
    figures: list[Figure] = field(default_factory=list)  # headline figures (summary cards)
    charts: list[Chart] = field(default_factory=list)
    tables: list[DataTable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ReportResult:
    period: str
    html_path: Path
    pdf_path: Path | None
    charts: list[str]
    figures: int
    seconds: float


# --------------------------------------------------------------------------------------------------
# Quarters
# --------------------------------------------------------------------------------------------------
def parse_period(period: str) -> tuple[int, int]:
    match = PERIOD_PATTERN.match(period.strip())
    if not match:
        raise ValueError(f"Ungültiges Quartal {period!r}: Format JJJJ-Qn, z. B. 2026-Q3")
    return int(match.group(1)), int(match.group(2))


def period_index(period: str) -> int:
    year, quarter = parse_period(period)
    return year * 4 + quarter - 1


def available_periods(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Quarters the marts cover (the pipeline mart's calendar runs to the latest data of any source)."""
    rows = con.execute(
        "select distinct period, year, quarter from marts.mart_pipeline_municipality_quarter order by year, quarter"
    ).fetchall()
    return [r[0] for r in rows]


def resolve_period(con: duckdb.DuckDBPyConnection, period: str | None) -> str:
    periods = available_periods(con)
    if not periods:
        raise ValueError("Das veröffentlichte Warehouse enthält noch keine Quartale (Pipeline-Mart ist leer).")
    if period is None:
        return periods[-1]
    parse_period(period)
    if period not in periods:
        raise ValueError(f"Für {period} liegen keine Daten vor; verfügbar: {periods[0]} bis {periods[-1]}")
    return period


# --------------------------------------------------------------------------------------------------
# Charts: matplotlib -> inline SVG
# --------------------------------------------------------------------------------------------------
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


def _chart(key: str, draw: Callable, figsize: tuple[float, float], source: str, nrows: int = 1, ncols: int = 1,
           margins: dict | None = None, **kw) -> str:
    """Draw one chart. Single charts are cropped to their content (bbox_inches="tight"); charts with several
    axes pass fixed ``margins`` (fig.subplots_adjust) instead, because tight layout plus cropping costs
    2-3 times the drawing time for a dozen axes."""
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


def _year_axis(ax, nbins: int = 8) -> None:
    """Whole years on the x axis, written without thousands separator."""
    first, last = (int(round(v)) for v in ax.get_xlim())
    if last - first > 10:
        ax.xaxis.set_major_locator(MultipleLocator(5))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=nbins))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: str(int(round(v)))))


def _nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


# --------------------------------------------------------------------------------------------------
# Reading the marts
# --------------------------------------------------------------------------------------------------
def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _num(value: Any) -> Any:
    """Decimals from DuckDB as float (the report shows them rounded; data-value keeps full precision)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return float(value)


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, table]
    ).fetchone()[0])


# --------------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------------
KPI_COLUMNS = {
    # column: (label, decimals, unit)
    "disconnection_rate_actual_pct": ("Abkopplungsgrad Ist", 2, "%"),
    "disconnection_rate_planned_pct": ("Abkopplungsgrad geplant", 2, "%"),
    "disconnection_target_path_pct": ("Zielpfad Abkopplung", 2, "%"),
    "evaporation_change_actual_pp": ("ΔV Ist", 3, "pp"),
    "evaporation_change_planned_pp": ("ΔV geplant", 3, "pp"),
    "evaporation_target_path_pp": ("Zielpfad ΔV", 3, "pp"),
}


def _kpi_figure(prefix: str, column: str, year: int, value: Any) -> Figure:
    _label, decimals, unit = KPI_COLUMNS[column]
    return Figure(f"{prefix}_{column}_{year}", _num(value), decimals, unit)


def section_summary(con, year: int) -> Section:
    rows = _rows(con, "select * from marts.mart_kpi_region_year where year = ? order by region_key", [year])
    section = Section(
        "summary", "Zusammenfassung: die beiden strategischen KPIs",
        intro=(f"Stand Jahr {year}: Jahreswerte der Marts, für das laufende Jahr zum Datenstand. "
               "Abkopplungsgrad: Anteil der an den Mischwasserkanal "
               "angeschlossenen befestigten Fläche, der abgekoppelt ist (Ziel 25 % bis 2040). ΔV: Veränderung der "
               "Verdunstungsrate gegenüber dem Basisjahr in Prozentpunkten (Ziel +10 pp bis 2040)."),
    )
    table = DataTable(["Region", *[KPI_COLUMNS[c][0] for c in KPI_COLUMNS], "Abkopplung im Plan",
                       "Verdunstung im Plan"],
                      [], key="summary")
    for r in rows:
        prefix = f"kpi_{r['region_key']}"
        table.rows.append([
            REGION_LABELS.get(r["region_key"], r["region_name"]),
            *[_kpi_figure(prefix, c, year, r[c]) for c in KPI_COLUMNS],
            Figure(f"{prefix}_is_disconnection_on_track_{year}", r["is_disconnection_on_track"]),
            Figure(f"{prefix}_is_evaporation_on_track_{year}", r["is_evaporation_on_track"]),
        ])
        if r["region_key"] == "rvr":
            section.notes.append(_status_sentence(r, year))
            section.figures = [
                _kpi_figure(prefix, "disconnection_rate_actual_pct", year, r["disconnection_rate_actual_pct"]),
                _kpi_figure(prefix, "disconnection_target_path_pct", year, r["disconnection_target_path_pct"]),
                _kpi_figure(prefix, "evaporation_change_actual_pp", year, r["evaporation_change_actual_pp"]),
                _kpi_figure(prefix, "evaporation_target_path_pp", year, r["evaporation_target_path_pp"]),
            ]
    section.tables.append(table)
    return section


def _status_sentence(r: dict, year: int) -> str:
    """One sentence per KPI for the steering committee: where the region stands against its path."""
    def verdict(on_track: Any) -> str:
        if on_track is None:
            return "keine Bewertung (kein Ist-Jahr)"
        return "im Plan" if on_track else "hinter dem Zielpfad"

    return (f"{REGION_LABELS['rvr']}, {year}: Abkopplungsgrad {format_de(r['disconnection_rate_actual_pct'], 2, '%')} "
            f"(geplant {format_de(r['disconnection_rate_planned_pct'], 2, '%')}) gegen den Zielpfad "
            f"{format_de(r['disconnection_target_path_pct'], 2, '%')}: {verdict(r['is_disconnection_on_track'])}. "
            f"Verdunstung ΔV {format_de(r['evaporation_change_actual_pp'], 3, 'pp')} gegen den Zielpfad "
            f"{format_de(r['evaporation_target_path_pp'], 3, 'pp')}: {verdict(r['is_evaporation_on_track'])}.")


def section_kpi_region(con, year: int) -> Section:
    rows = _rows(con, "select * from marts.mart_kpi_region_year order by region_key, year")
    section = Section(
        "kpi_region", "KPI-Verläufe der Region gegen den Zielpfad",
        intro=("Ist-Werte (abgeschlossene Maßnahmen) und geplante Werte (bewilligte Maßnahmen) bis zum Berichtsjahr, "
               "Zielpfade bis 2040. Quelle: marts.mart_kpi_region_year."),
    )
    shown = [r for r in rows if r["year"] <= year]
    path_to_year = [r for r in shown if r["region_key"] == "rvr"]
    by_region: dict[str, list[dict]] = {}
    for r in rows:
        by_region.setdefault(r["region_key"], []).append(r)

    def draw(measure: str, target: str, planned: str, label: str, decimals: int):
        # Left: the whole horizon to the target year; right: the years with data, enlarged, because the
        # early actual values are small against the target and would otherwise lie flat on the axis.
        def _draw(fig, axes):
            for ax, last_year in ((axes[0][0], None), (axes[0][1], year)):
                for region, colour in (("rvr", COLOURS["actual"]), ("zi_members", COLOURS["zi"])):
                    actual = [r for r in by_region.get(region, []) if r["year"] <= year]
                    ax.plot([r["year"] for r in actual], [_nan(r[measure]) for r in actual], marker="o", ms=3,
                            color=colour, label=f"{REGION_SHORT[region]}: Ist")
                    ax.plot([r["year"] for r in actual], [_nan(r[planned]) for r in actual], ls="--", color=colour,
                            alpha=0.6, label=f"{REGION_SHORT[region]}: geplant")
                path = [r for r in by_region.get("rvr", []) if last_year is None or r["year"] <= last_year]
                ax.plot([r["year"] for r in path], [_nan(r[target]) for r in path], color=COLOURS["target"], lw=1.2,
                        label="Zielpfad")
                ax.set_ylabel(label)
                ax.yaxis.set_major_formatter(_tick_de(decimals))
                _year_axis(ax)
            axes[0][0].axvline(year, color="#888888", lw=0.6, ls=":")
            axes[0][0].set_title("bis zum Zieljahr")
            zoom = axes[0][1]
            values = [_nan(r[c]) for r in rows if r["year"] <= year for c in (measure, planned)]
            top = max((v for v in values if not math.isnan(v)), default=0.0)
            bottom = min([0.0, *(v for v in values if not math.isnan(v))])
            target_now = max((_nan(r[target]) for r in path_to_year), default=0.0)
            clipped = top > 0 and target_now > 1.5 * top
            if clipped:  # the actual values would lie flat under the target path: enlarge them
                zoom.set_ylim(bottom - 0.05 * (1.5 * top - bottom), 1.5 * top)
            zoom.set_title(f"bis {year} (vergrößert{'; Zielpfad teils außerhalb' if clipped else ''})")
            axes[0][1].yaxis.set_major_formatter(_tick_de(decimals + 1))
            handles, labels = axes[0][0].get_legend_handles_labels()
            fig.legend(handles=handles, labels=labels, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0.04))
        return _draw

    for key, measure, planned, target, title, unit, dec in (
        ("kpi_region_disconnection", "disconnection_rate_actual_pct", "disconnection_rate_planned_pct",
         "disconnection_target_path_pct", "Abkopplungsgrad (%) gegen den Zielpfad 25 % bis 2040", "%", 0),
        ("kpi_region_evaporation", "evaporation_change_actual_pp", "evaporation_change_planned_pp",
         "evaporation_target_path_pp", "Veränderung der Verdunstungsrate ΔV (pp) gegen den Zielpfad +10 pp bis 2040",
         "pp", 1),
    ):
        svg = _chart(key, draw(measure, target, planned, unit, dec), (7.2, 3.4), "marts.mart_kpi_region_year",
                     nrows=1, ncols=2, margins=dict(left=0.08, right=0.98, top=0.9, bottom=0.3, wspace=0.3))
        table = DataTable(["Region", "Jahr", KPI_COLUMNS[measure][0], KPI_COLUMNS[planned][0], KPI_COLUMNS[target][0]],
                          [], key=key)
        for r in shown:
            prefix = f"kpi_{r['region_key']}"
            table.rows.append([REGION_LABELS.get(r["region_key"], r["region_name"]), str(r["year"]),
                               *[_kpi_figure(prefix, c, r["year"], r[c]) for c in (measure, planned, target)]])
        section.charts.append(Chart(key, title, svg, table))
    return section


def section_kpi_municipalities(con, year: int) -> Section:
    rows = _rows(con, "select * from marts.mart_kpi_municipality_year where year = ? order by municipality_name",
                 [year])
    history = _rows(con, "select * from marts.mart_kpi_municipality_year where year <= ? "
                         "order by municipality_key, year", [year])
    section = Section(
        "kpi_municipalities", "KPIs je Kommune",
        intro=(f"Alle 53 Kommunen im Jahr {year} (Quelle: marts.mart_kpi_municipality_year). Kommunen ohne "
               "Flächendaten haben keine Basis; ihr Abkopplungsgrad bleibt leer („–“)."),
    )
    # All 53 in one bar chart, sorted by the actual rate.
    ranked = sorted(rows, key=lambda r: (r["disconnection_rate_actual_pct"] is None,
                                         -(r["disconnection_rate_actual_pct"] or 0), r["municipality_name"]))
    target = next((r["disconnection_target_path_pct"] for r in rows), None)

    def draw_bars(fig, axes):
        ax = axes[0][0]
        names = [r["municipality_name"] for r in ranked][::-1]
        ax.barh(names, [_nan(r["disconnection_rate_planned_pct"]) for r in ranked][::-1], color=COLOURS["planned"],
                label="geplant (bewilligt)")
        ax.barh(names, [_nan(r["disconnection_rate_actual_pct"]) for r in ranked][::-1], color=COLOURS["actual"],
                height=0.5, label="Ist (abgeschlossen)")
        if target is not None:
            ax.axvline(float(target), color=COLOURS["target"], lw=1.2, label=f"Zielpfad {year}")
        ax.xaxis.set_major_formatter(_tick_de(1))
        ax.set_xlabel("Abkopplungsgrad (%)")
        ax.tick_params(axis="y", labelsize=6)
        ax.grid(axis="y", visible=False)
        ax.set_ylim(-0.7, len(names) - 0.3)
        ax.legend(loc="lower right")

    key = "kpi_municipalities_disconnection"
    svg = _chart(key, draw_bars, (7.2, 9.0), "marts.mart_kpi_municipality_year")
    bars = DataTable(["Kommune", "Abkopplungsgrad Ist", "Abkopplungsgrad geplant", "Zielpfad Abkopplung"], [], key=key)
    for r in ranked:
        prefix = f"kpi_{r['municipality_key']}"
        bars.rows.append([r["municipality_name"], *[_kpi_figure(prefix, c, year, r[c]) for c in (
            "disconnection_rate_actual_pct", "disconnection_rate_planned_pct", "disconnection_target_path_pct")]])
    section.charts.append(Chart(key, f"Abkopplungsgrad {year} je Kommune (Ist und geplant) gegen den Zielpfad", svg,
                                bars))

    # Small multiples: trajectories of the municipalities at both ends of the ranking.
    with_rate = [r for r in ranked if r["disconnection_rate_actual_pct"] is not None]
    n = SMALL_MULTIPLES_EACH_END
    chosen = with_rate[:n] + [r for r in with_rate[-n:] if r not in with_rate[:n]]
    series: dict[str, list[dict]] = {}
    for r in history:
        series.setdefault(r["municipality_key"], []).append(r)
    full_path = _rows(con, "select year, disconnection_target_path_pct from marts.mart_kpi_region_year "
                           "where region_key = 'rvr' and year <= ? order by year", [year])

    def draw_multiples(fig, axes):
        flat = [ax for row in axes for ax in row]
        for ax, r in zip(flat, chosen):
            s = series[r["municipality_key"]]
            ax.plot([p["year"] for p in full_path], [_nan(p["disconnection_target_path_pct"]) for p in full_path],
                    color=COLOURS["target"], lw=1)
            ax.plot([x["year"] for x in s], [_nan(x["disconnection_rate_planned_pct"]) for x in s], ls="--",
                    color=COLOURS["planned"])
            ax.plot([x["year"] for x in s], [_nan(x["disconnection_rate_actual_pct"]) for x in s],
                    color=COLOURS["actual"], marker="o", ms=2)
            ax.set_title(r["municipality_name"], fontsize=7)
            ax.tick_params(labelsize=6)
            _year_axis(ax, nbins=3)
            ax.yaxis.set_major_formatter(_tick_de(1))
        for ax in flat[len(chosen):]:
            ax.set_visible(False)
        fig.legend(labels=["Zielpfad", "geplant", "Ist"], loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0.02),
                   handles=[plt.Line2D([], [], color=COLOURS["target"]),
                            plt.Line2D([], [], color=COLOURS["planned"], ls="--"),
                            plt.Line2D([], [], color=COLOURS["actual"])])

    key = "kpi_municipalities_trajectories"
    cols = 4
    nrows = max(1, math.ceil(len(chosen) / cols))
    svg = _chart(key, draw_multiples, (7.2, 1.7 * nrows + 0.4), "marts.mart_kpi_municipality_year", nrows=nrows,
                 ncols=cols, sharex=True, sharey=True,
                 margins=dict(left=0.07, right=0.99, top=0.94, bottom=0.6 / (1.7 * nrows + 0.4) + 0.08, hspace=0.45,
                              wspace=0.12))
    table = DataTable(["Kommune", "Jahr", "Abkopplungsgrad Ist", "Abkopplungsgrad geplant"], [], key=key)
    for r in chosen:
        for x in series[r["municipality_key"]]:
            prefix = f"kpi_{x['municipality_key']}"
            table.rows.append([x["municipality_name"], str(x["year"]),
                               _kpi_figure(prefix, "disconnection_rate_actual_pct", x["year"],
                                           x["disconnection_rate_actual_pct"]),
                               _kpi_figure(prefix, "disconnection_rate_planned_pct", x["year"],
                                           x["disconnection_rate_planned_pct"])])
    section.charts.append(Chart(
        key, f"Verläufe: die {n} Kommunen mit dem höchsten und die {n} mit dem niedrigsten Abkopplungsgrad {year} "
        "(bei Gleichstand alphabetisch)",
        svg, table))

    # The table of all 53.
    all_table = DataTable(["Kommune", *[KPI_COLUMNS[c][0] for c in KPI_COLUMNS], "Abkopplung im Plan",
                           "Verdunstung im Plan"], [], key="kpi_municipalities_all",
                          caption=f"Alle Kommunen, Jahr {year}")
    for r in rows:
        prefix = f"kpi_{r['municipality_key']}"
        all_table.rows.append([
            r["municipality_name"], *[_kpi_figure(prefix, c, year, r[c]) for c in KPI_COLUMNS],
            Figure(f"{prefix}_is_disconnection_on_track_{year}", r["is_disconnection_on_track"]),
            Figure(f"{prefix}_is_evaporation_on_track_{year}", r["is_evaporation_on_track"]),
        ])
    section.tables.append(all_table)
    return section


BUDGET_COLUMNS = {"envelope_eur": "Plafond", "approved_eur": "Bewilligt", "paid_eur": "Ausgezahlt"}


def section_budget(con, year: int) -> Section:
    rows = _rows(con, "select * from marts.mart_budget_year order by year")
    section = Section(
        "budget", "Mittelverwendung",
        intro=("Plafond laut Haushaltsplan, bewilligte Fördermittel (Erstbescheide des Jahres, aktueller Betrag) und "
               "Auszahlungen (Mittelabrufe) je Programmjahr. Quelle: marts.mart_budget_year."),
    )
    shown = [r for r in rows if r["year"] <= year or (r["envelope_eur"] or 0) > 0]

    def draw(fig, axes):
        ax = axes[0][0]
        width = 0.27
        xs = [r["year"] for r in shown]
        for i, (column, label) in enumerate(BUDGET_COLUMNS.items()):
            colour = COLOURS[column.removesuffix("_eur")]
            ax.bar([x + (i - 1) * width for x in xs], [_nan(r[column]) / 1e6 for r in shown], width, label=label,
                   color=colour)
        ax.set_ylabel("Mio. EUR")
        ax.yaxis.set_major_formatter(_tick_de(0))
        ax.set_xticks(xs)
        ax.set_xticklabels([str(x) for x in xs])
        ax.legend(loc="upper left", ncol=3)

    key = "budget_year"
    svg = _chart(key, draw, (7.2, 3.2), "marts.mart_budget_year")
    table = DataTable(["Jahr", "Plafond (EUR)", "Bewilligt (EUR)", "Ausgezahlt (EUR)", "Bewilligt kumuliert (EUR)",
                       "Ausgezahlt kumuliert (EUR)", "Mittelabfluss", "Mittelverwendung"], [], key=key)
    for r in shown:
        y = r["year"]
        table.rows.append([
            str(y), *[Figure(f"budget_{c}_{y}", _num(r[c])) for c in BUDGET_COLUMNS],
            Figure(f"budget_approved_eur_cumulative_{y}", _num(r["approved_eur_cumulative"])),
            Figure(f"budget_paid_eur_cumulative_{y}", _num(r["paid_eur_cumulative"])),
            Figure(f"budget_absorption_pct_{y}", _num(r["absorption_pct"]), 1, "%"),
            Figure(f"budget_utilisation_pct_{y}", _num(r["utilisation_pct"]), 1, "%"),
        ])
    section.charts.append(Chart(key, "Plafond, Bewilligungen und Auszahlungen je Jahr (Mio. EUR)", svg, table))
    current = next((r for r in rows if r["year"] == year), None)
    if current:
        section.figures = [Figure(f"budget_approved_eur_cumulative_{year}", _num(current["approved_eur_cumulative"]),
                                  0, "EUR"),
                           Figure(f"budget_paid_eur_cumulative_{year}", _num(current["paid_eur_cumulative"]), 0, "EUR"),
                           Figure(f"budget_envelope_eur_cumulative_{year}", _num(current["envelope_eur_cumulative"]),
                                  0, "EUR")]
    return section


def section_pipeline(con, period: str) -> Section:
    projects = ", ".join(f"sum({s}_projects)::bigint as {s}_projects" for s in PIPELINE_STATUSES)
    volumes = ", ".join(f"sum({s}_eur) as {s}_eur" for s in PIPELINE_STATUSES)
    rows = _rows(con, f"select period, year, quarter, {projects}, {volumes}, "
                      "sum(total_projects)::bigint as total_projects "
                      "from marts.mart_pipeline_municipality_quarter where year * 4 + quarter - 1 <= ? "
                      "group by period, year, quarter order by year, quarter", [period_index(period)])
    section = Section(
        "pipeline", "Projektpipeline",
        intro=("Projekte je Lebenszyklus-Status zum Quartalsende, summiert über alle Kommunen; Volumen: bewilligter "
               "Betrag, sonst beantragter. Quelle: marts.mart_pipeline_municipality_quarter."),
    )

    def draw(fig, axes):
        ax = axes[0][0]
        xs = list(range(len(rows)))
        bottom = [0.0] * len(rows)
        for (status, label), colour in zip(PIPELINE_STATUSES.items(), PIPELINE_COLOURS):
            values = [float(r[f"{status}_projects"] or 0) for r in rows]
            ax.bar(xs, values, 0.8, bottom=bottom, label=label, color=colour)
            bottom = [b + v for b, v in zip(bottom, values)]
        step = max(1, len(rows) // 12)
        ax.set_xticks(xs[::step])
        ax.set_xticklabels([r["period"] for r in rows][::step], rotation=45, ha="right")
        ax.set_ylabel("Projekte")
        ax.yaxis.set_major_formatter(_tick_de(0))
        ax.legend(loc="upper left", ncol=2)

    key = "pipeline_quarter"
    svg = _chart(key, draw, (7.2, 3.6), "marts.mart_pipeline_municipality_quarter")
    table = DataTable(["Quartal", *PIPELINE_STATUSES.values(), "Insgesamt"], [], key=key)
    for r in rows:
        table.rows.append([r["period"], *[Figure(f"pipeline_{s}_projects_{r['period']}", r[f"{s}_projects"])
                                          for s in PIPELINE_STATUSES],
                           Figure(f"pipeline_total_projects_{r['period']}", r["total_projects"])])
    section.charts.append(Chart(key, "Projekte je Status und Quartal", svg, table))
    current = next((r for r in rows if r["period"] == period), None)
    if current:
        volume = DataTable(["Status", "Projekte", "Volumen (EUR)"], [], key="pipeline_current",
                           caption=f"Pipeline zum Ende von {period}")
        for s, label in PIPELINE_STATUSES.items():
            volume.rows.append([label, Figure(f"pipeline_{s}_projects_{period}", current[f"{s}_projects"]),
                                Figure(f"pipeline_{s}_eur_{period}", _num(current[f"{s}_eur"]))])
        section.tables.append(volume)
    return section


def section_trees(con, year: int) -> Section:
    baseline = _rows(con, "select min(year) as y from marts.mart_kpi_region_year")[0]["y"]
    rows = _rows(con, "select year, tree_source, sum(trees)::bigint as trees from marts.mart_trees_municipality_year "
                      "where year between ? and ? group by year, tree_source order by year, tree_source",
                 [baseline, year])
    targets = _rows(con, "select max(campaign_target_trees) as campaign, max(regional_aspiration_trees) as aspiration "
                         "from marts.mart_trees_municipality_year")[0]
    section = Section(
        "trees", "Bäume",
        intro=(f"Neu gepflanzte Bäume seit {baseline} je Herkunft, kumuliert: Klimabäume-Aktion, Baumkataster "
               "(nach Pflanzjahr; Bäume ohne Pflanzjahr zählen nicht) und abgeschlossene geförderte Maßnahmen. "
               "Vergleich mit dem Ziel der Klimabäume-Aktion und dem regionalen Ziel. "
               "Quelle: marts.mart_trees_municipality_year."),
    )
    years = list(range(baseline, year + 1))
    per: dict[tuple[int, str], int] = {(r["year"], r["tree_source"]): r["trees"] for r in rows}
    cumulative: dict[str, list[int]] = {}
    for source in TREE_SOURCES:
        running, values = 0, []
        for y in years:
            running += per.get((y, source), 0)
            values.append(running)
        cumulative[source] = values
    totals = [sum(cumulative[s][i] for s in TREE_SOURCES) for i in range(len(years))]

    def draw(fig, axes):
        ax = axes[0][0]
        ax.stackplot(years, *[cumulative[s] for s in TREE_SOURCES], labels=list(TREE_SOURCES.values()),
                     colors=[TREE_COLOURS[s] for s in TREE_SOURCES], alpha=0.9)
        ax.axhline(targets["campaign"] or 0, color=COLOURS["target"], ls="--", lw=1,
                   label=f"Ziel Klimabäume-Aktion ({format_de(targets['campaign'])})")
        ax.axhline(targets["aspiration"] or 0, color=COLOURS["target"], lw=1.2,
                   label=f"Regionales Ziel ({format_de(targets['aspiration'])})")
        ax.set_ylim(0, 1.35 * max(targets["aspiration"] or 0, max(totals, default=0), 1))  # room for the legend
        ax.set_ylabel("Bäume (kumuliert)")
        ax.yaxis.set_major_formatter(_tick_de(0))
        ax.set_xticks(years)
        ax.legend(loc="upper left", ncol=2)

    key = "trees_cumulative"
    svg = _chart(key, draw, (7.2, 3.4), "marts.mart_trees_municipality_year")
    table = DataTable(["Jahr", *[f"{label} im Jahr" for label in TREE_SOURCES.values()], "Insgesamt kumuliert"], [],
                      key=key)
    for i, y in enumerate(years):
        table.rows.append([str(y), *[Figure(f"trees_{s}_{y}", per.get((y, s), 0)) for s in TREE_SOURCES],
                           Figure(f"trees_total_cumulative_{y}", totals[i])])
    section.charts.append(Chart(key, "Bäume kumuliert gegen die Ziele", svg, table))
    campaign_total = cumulative["campaign"][-1] if years else 0
    total = totals[-1] if years else 0
    section.figures = [
        Figure(f"trees_campaign_cumulative_{year}", campaign_total),
        Figure("trees_campaign_target", targets["campaign"]),
        Figure(f"trees_total_cumulative_{year}", total),
        Figure("trees_regional_aspiration", targets["aspiration"]),
    ]
    return section


def section_forecast_accuracy(con, period: str) -> Section:
    sums = ", ".join(f"sum(forecast_{m}) as forecast_{m}, sum(actual_{m}) as actual_{m}" for m in FORECAST_MEASURES)
    rows = _rows(con, f"select period, year, quarter, {sums}, count(*) filter (where has_forecast) as forecasts "
                      "from marts.mart_forecast_accuracy_municipality_quarter "
                      "where has_forecast and year * 4 + quarter - 1 <= ? group by period, year, quarter "
                      "order by year, quarter", [period_index(period)])
    section = Section(
        "forecast_accuracy", "Prognosegüte",
        intro=("Was die angenommenen Meldungen des Vorquartals für ein Quartal erwarten ließen, gegen das Ist der "
               "Förderdatenbank, summiert über die Kommunen mit Vorquartalsmeldung. "
               "Quelle: marts.mart_forecast_accuracy_municipality_quarter."),
    )

    def draw(fig, axes):
        flat = [ax for row in axes for ax in row]
        xs = list(range(len(rows)))
        step = max(1, len(rows) // 6)
        for ax, (m, (label, _dec)) in zip(flat, FORECAST_MEASURES.items()):
            scale = 1e6 if m.endswith("_eur") else 1
            ax.plot(xs, [_nan(r[f"forecast_{m}"]) / scale for r in rows], ls="--", marker="o", ms=2,
                    color=COLOURS["planned"], label="Prognose")
            ax.plot(xs, [_nan(r[f"actual_{m}"]) / scale for r in rows], marker="o", ms=2, color=COLOURS["actual"],
                    label="Ist")
            ax.set_title(label.replace("(EUR)", "(Mio. EUR)"), fontsize=8)
            ax.set_xticks(xs[::step])
            ax.set_xticklabels([r["period"] for r in rows][::step], rotation=45, ha="right", fontsize=6)
            ax.yaxis.set_major_formatter(_tick_de(1 if scale > 1 else 0))
        flat[0].legend(loc="upper right")

    key = "forecast_accuracy"
    svg = _chart(key, draw, (7.2, 4.6), "marts.mart_forecast_accuracy_municipality_quarter",
                 nrows=2, ncols=2, margins=dict(left=0.08, right=0.98, top=0.94, bottom=0.14, hspace=0.55, wspace=0.2))
    headers = ["Quartal", "Meldungen"]
    for _m, (label, _dec) in FORECAST_MEASURES.items():
        headers += [f"{label} Prognose", f"{label} Ist"]
    table = DataTable(headers, [], key=key)
    for r in rows:
        cells: list[Any] = [r["period"], Figure(f"forecast_reports_{r['period']}", r["forecasts"])]
        for m, (_label, dec) in FORECAST_MEASURES.items():
            cells += [Figure(f"forecast_{m}_forecast_{r['period']}", _num(r[f"forecast_{m}"]), dec),
                      Figure(f"forecast_{m}_actual_{r['period']}", _num(r[f"actual_{m}"]), dec)]
        table.rows.append(cells)
    section.charts.append(Chart(key, "Prognose des Vorquartals und Ist je Quartal", svg, table))
    if not rows:
        section.notes.append(f"Bis {period} liegt keine Vorquartalsmeldung vor, mit der sich eine Prognose "
                             "prüfen ließe.")
    return section


def section_data_quality(con, period: str) -> Section:
    families = _rows(con, """
        select source_family, count(*)::bigint as files, sum(rows_read)::bigint as rows_read,
               sum(rows_loaded)::bigint as rows_loaded, sum(rows_rejected)::bigint as rows_rejected,
               (count(*) filter (where outcome in ('failed', 'blocked')))::bigint as files_failed,
               100.0 * sum(rows_rejected) / nullif(sum(rows_read), 0) as rejected_pct
        from marts.mart_ingestion_files group by source_family order by source_family""")
    rules = _rows(con, f"""
        select source_family, rule, count(*)::bigint as rejections from marts.mart_rejected_rows
        group by source_family, rule order by rejections desc, source_family, rule limit {TOP_RULES}""")
    submissions = _rows(con, """
        select count(*)::bigint as files, (count(*) filter (where outcome in ('failed', 'blocked')))::bigint as failed,
               coalesce(sum(rows_rejected), 0)::bigint as rows_rejected
        from marts.mart_ingestion_files where source_family = 'forecasts' and period = ?""", [period])[0]
    section = Section(
        "data_quality", "Datenqualität",
        intro=("Zeilenbilanz je Quelle über alle angelieferten Dateien (gelesen = geladen + abgewiesen), "
               "gescheiterte oder zurückgehaltene Dateien, die häufigsten Ablehnungsgründe und die fehlgeschlagenen "
               "Prüfungen des neuesten Prüflaufs. Quellen: marts.mart_ingestion_files, marts.mart_rejected_rows, "
               "marts.mart_data_quality."),
    )

    def draw(fig, axes):
        ax = axes[0][0]
        names = [r["source_family"] for r in families][::-1]
        ax.barh(names, [_nan(r["rejected_pct"]) for r in families][::-1], color=COLOURS["target"])
        for i, r in enumerate(families[::-1]):
            ax.text(_nan(r["rejected_pct"]) if r["rejected_pct"] is not None else 0, i,
                    " " + format_de(r["rejected_pct"], 2, "%"), va="center", fontsize=7)
        ax.set_xlim(0, 1.2 * max([_nan(r["rejected_pct"]) for r in families if r["rejected_pct"] is not None]
                                 + [0.1]))  # room for the value labels
        ax.set_xlabel("Abgewiesene Zeilen (% der gelesenen)")
        ax.xaxis.set_major_formatter(_tick_de(1))
        ax.grid(axis="y", visible=False)

    key = "data_quality_rejections"
    svg = _chart(key, draw, (7.2, 0.45 * max(len(families), 1) + 1.0), "marts.mart_ingestion_files")
    table = DataTable(["Quelle", "Dateien", "gelesen", "geladen", "abgewiesen", "Anteil abgewiesen",
                       "Dateien gescheitert/zurückgehalten"], [], key=key)
    for r in families:
        f = r["source_family"]
        table.rows.append([f, *[Figure(f"dq_{f}_{c}", r[c]) for c in ("files", "rows_read", "rows_loaded",
                                                                       "rows_rejected")],
                           Figure(f"dq_{f}_rejected_pct", _num(r["rejected_pct"]), 2, "%"),
                           Figure(f"dq_{f}_files_failed", r["files_failed"])])
    section.charts.append(Chart(key, "Abgewiesene Zeilen je Quelle", svg, table))
    section.figures = [Figure(f"dq_forecast_files_{period}", submissions["files"]),
                       Figure(f"dq_forecast_files_failed_{period}", submissions["failed"]),
                       Figure(f"dq_forecast_rows_rejected_{period}", submissions["rows_rejected"])]
    rule_table = DataTable(["Quelle", "Regel", "Ablehnungen"], [], key="data_quality_rules",
                           caption=f"Die {TOP_RULES} häufigsten Ablehnungsgründe")
    for r in rules:
        rule_table.rows.append([r["source_family"], r["rule"],
                                Figure(f"dq_rule_{r['source_family']}_{r['rule']}", r["rejections"])])
    section.tables.append(rule_table)
    section.tables.extend(_failed_checks(con, section))
    return section


#: Columns of marts.mart_data_quality this report reads (docs/data-quality.md owns the mart).
QUALITY_COLUMNS = ("is_latest_run", "check_kind", "source", "municipality_name", "check_name", "severity",
                   "rows_evaluated", "rows_failed", "outcome", "message_de")
SEVERITY_ORDER = "case severity when 'error' then 0 else 1 end"


def _failed_checks(con, section: Section) -> list[DataTable]:
    """Failed checks of the latest check run from marts.mart_data_quality, when the warehouse has that mart.

    The mart is optional for this report (older warehouses lack it): without it, or without the columns
    read here, the section says so and shows the row balance only.
    """
    if not _table_exists(con, "marts", "mart_data_quality"):
        section.notes.append("Die Prüfergebnisse (marts.mart_data_quality) sind in diesem Warehouse nicht "
                             "veröffentlicht; der Abschnitt zeigt die Zeilenbilanz.")
        return []
    columns = {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = 'marts' "
        "and table_name = 'mart_data_quality'").fetchall()}
    if missing := [c for c in QUALITY_COLUMNS if c not in columns]:
        section.notes.append(f"marts.mart_data_quality ohne die Spalten {', '.join(missing)}: "
                             "fehlgeschlagene Prüfungen werden nicht gezeigt.")
        return []
    total, failed, failed_error = con.execute(
        "select count(*), count(*) filter (where outcome = 'failed'), "
        "count(*) filter (where outcome = 'failed' and severity = 'error') "
        "from marts.mart_data_quality where is_latest_run").fetchone()
    section.figures += [Figure("dq_checks_total", total), Figure("dq_checks_failed", failed),
                        Figure("dq_checks_failed_error", failed_error)]
    if not failed:
        section.notes.append("Alle Prüfungen des neuesten Prüflaufs (marts.mart_data_quality) sind bestanden."
                             if total else "marts.mart_data_quality enthält noch keinen Prüflauf.")
        return []
    rows = _rows(con, f"""
        select check_kind, source, coalesce(municipality_name, 'regionweit') as municipality_name, check_name,
               severity, rows_failed, rows_evaluated, message_de
        from marts.mart_data_quality where is_latest_run and outcome = 'failed'
        order by {SEVERITY_ORDER}, rows_failed desc, check_name, source, municipality_name
        limit {FAILED_CHECKS_SHOWN}""")
    table = DataTable(["Art", "Quelle", "Kommune", "Prüfung", "Schwere", "Zeilen verletzt", "Zeilen geprüft",
                       "Ergebnis"], [], key="data_quality_failed_checks",
                      caption=(f"Fehlgeschlagene Prüfungen des neuesten Prüflaufs ({format_de(failed)}"
                               f"{f', die ersten {FAILED_CHECKS_SHOWN}' if failed > FAILED_CHECKS_SHOWN else ''})"))
    for r in rows:
        table.rows.append([r["check_kind"], r["source"], r["municipality_name"], r["check_name"],
                           "Fehler" if r["severity"] == "error" else "Warnung",
                           format_de(r["rows_failed"]), format_de(r["rows_evaluated"]),
                           r["message_de"] or ""])
    return [table]


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------
FIGURE_LABELS = {
    "kpi_rvr_disconnection_rate_actual_pct": "Abkopplungsgrad Region (Ist)",
    "kpi_rvr_disconnection_target_path_pct": "Zielpfad Abkopplung",
    "kpi_rvr_evaporation_change_actual_pp": "ΔV Region (Ist)",
    "kpi_rvr_evaporation_target_path_pp": "Zielpfad ΔV",
    "budget_approved_eur_cumulative": "Bewilligt seit Programmstart",
    "budget_paid_eur_cumulative": "Ausgezahlt seit Programmstart",
    "budget_envelope_eur_cumulative": "Plafond seit Programmstart",
    "trees_campaign_cumulative": "Bäume der Klimabäume-Aktion",
    "trees_campaign_target": "Ziel der Aktion",
    "trees_total_cumulative": "Neue Bäume insgesamt",
    "trees_regional_aspiration": "Regionales Ziel",
    "dq_forecast_files": "Prognose-Dateien im Quartal",
    "dq_forecast_files_failed": "davon gescheitert/zurückgehalten",
    "dq_forecast_rows_rejected": "abgewiesene Zeilen im Quartal",
    "dq_checks_total": "Prüfungen im neuesten Lauf",
    "dq_checks_failed": "davon fehlgeschlagen",
    "dq_checks_failed_error": "davon blockierend (error)",
}


def figure_label(figure: Figure) -> str:
    key = re.sub(r"_(\d{4}(-Q[1-4])?)$", "", figure.key)
    return FIGURE_LABELS.get(key, figure.key)


def build_sections(con: duckdb.DuckDBPyConnection, period: str) -> list[Section]:
    year, _quarter = parse_period(period)
    return [
        section_summary(con, year),
        section_kpi_region(con, year),
        section_kpi_municipalities(con, year),
        section_budget(con, year),
        section_pipeline(con, period),
        section_trees(con, year),
        section_forecast_accuracy(con, period),
        section_data_quality(con, period),
    ]


def render_html(sections: list[Section], period: str, source: Path) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.tests["figure"] = lambda value: isinstance(value, Figure)
    env.filters["label"] = figure_label
    template = env.get_template(TEMPLATE_NAME)
    css = (TEMPLATE_DIR / "quarterly.css").read_text(encoding="utf-8")
    published_at = datetime.fromtimestamp(source.stat().st_mtime, tz=timezone.utc)
    return template.render(
        period=period,
        sections=sections,
        css=css,
        source=str(source),
        published_at=published_at.strftime("%d.%m.%Y %H:%M UTC"),
        created_at=datetime.now(timezone.utc).strftime("%d.%m.%Y %H:%M UTC"),
    )


def report_dir(period: str, paths: config.Paths | None = None) -> Path:
    return (paths or config.paths()).reports / "quarterly" / period


def write_report(
    period: str | None = None,
    published: Path | None = None,
    out_dir: Path | None = None,
    pdf: bool = True,
    progress: Callable[[str], None] = lambda _msg: None,
) -> ReportResult:
    """Render the report of ``period`` (default: the latest quarter with data) as bericht.html and bericht.pdf."""
    from zi_warehouse.reports.chromium import Browser, ChromiumMissing, print_pdf

    started = time.perf_counter()
    paths = config.paths()
    source = published or paths.published_duckdb
    if not source.exists():
        raise FileNotFoundError(f"Kein veröffentlichtes Warehouse unter {source}: zuerst `zi build` ausführen.")
    # Chromium starts now and gets ready (about a second) while the marts are read and the charts drawn.
    browser = None
    if pdf:
        try:
            browser = Browser().start()
        except ChromiumMissing:
            pass  # the HTML is still written; print_pdf below raises the same error afterwards
    try:
        progress("Marts werden gelesen …")
        con = duckdb.connect(str(source), read_only=True)
        try:
            period = resolve_period(con, period)
            progress(f"Diagramme für {period} …")
            sections = build_sections(con, period)
        finally:
            con.close()
        target = out_dir or report_dir(period, paths)
        target.mkdir(parents=True, exist_ok=True)
        html_path = target / "bericht.html"
        html_path.write_text(render_html(sections, period, source), encoding="utf-8")
        pdf_path = None
        if pdf:
            progress("PDF wird gedruckt (Chromium) …")
            pdf_path = print_pdf(html_path, target / "bericht.pdf", browser=browser)
    finally:
        if browser is not None:
            browser.close(wait=False)  # quitting Chromium and removing its profile need not hold up the caller
    charts = [c.key for s in sections for c in s.charts]
    figures = sum(1 for s in sections for f in _all_figures(s))
    return ReportResult(period, html_path, pdf_path, charts, figures, time.perf_counter() - started)


def _all_figures(section: Section):
    yield from section.figures
    for table in [*(c.table for c in section.charts), *section.tables]:
        for row in table.rows:
            yield from (cell for cell in row if isinstance(cell, Figure))


def report_command(quarter: str | None = None, pdf: bool = True) -> ReportResult:
    """`zi report [--quarter JJJJ-Qn]`: write the quarterly report of the published warehouse (HTML and PDF)."""
    import typer
    from rich.console import Console

    console = Console()
    try:
        with console.status("Quartalsbericht …") as status:
            result = write_report(quarter, pdf=pdf, progress=status.update)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        console.print(f"[red]Fehler:[/red] {exc}")
        raise typer.Exit(1)
    console.print(f"[green]Quartalsbericht {result.period}[/green] in {result.seconds:.1f} s: "
                  f"{len(result.charts)} Diagramme, {format_de(result.figures)} Kennzahlen")
    console.print(f"  HTML: {result.html_path}")
    if result.pdf_path:
        console.print(f"  PDF:  {result.pdf_path}")
    return result
