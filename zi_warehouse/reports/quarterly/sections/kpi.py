"""Sections 1-3 of the quarterly report: the two strategic KPIs of the region and of every municipality.

What belongs here: the summary (section 1, ``mart_kpi_region_year`` in the reporting year), the regional
KPI paths (section 2, Abb. 1-2, ``mart_kpi_region_year``) and the KPIs per municipality (section 3,
Abb. 3-4 and the table of all 53, ``mart_kpi_municipality_year``), with the KPI columns' labels.
"""

from __future__ import annotations

import math
from typing import Any

from zi_warehouse import warehouse
from zi_warehouse.german import format_number, sort_key
from zi_warehouse.reports.quarterly.charts import COLOURS, chart_svg, german_ticks, plotted, year_axis
from zi_warehouse.reports.quarterly.figures import Chart, DataTable, Figure, Section, mart_number

REGION_LABELS = {"rvr": "Metropole Ruhr (53 Kommunen)", "zi_members": "Zukunftsinitiative (Gründungsmitglieder)"}
REGION_SHORT = {"rvr": "Metropole Ruhr", "zi_members": "ZI-Gründungsmitglieder"}
#: How many municipalities the small multiples show at each end of the ranking (the table shows all).
SMALL_MULTIPLES_EACH_END = 6
KPI_COLUMNS = {
    # column: (label, decimals, unit)
    "disconnection_rate_actual_pct": ("Abkopplungsgrad Ist", 2, "%"),
    "disconnection_rate_planned_pct": ("Abkopplungsgrad geplant", 2, "%"),
    "disconnection_target_path_pct": ("Zielpfad Abkopplung", 2, "%"),
    "evaporation_change_actual_pp": ("ΔV Ist", 3, "pp"),
    "evaporation_change_planned_pp": ("ΔV geplant", 3, "pp"),
    "evaporation_target_path_pp": ("Zielpfad ΔV", 3, "pp"),
}


#: The on-track flags of the KPI marts and their labels.
ON_TRACK_FLAGS = {
    "is_disconnection_on_track": "Abkopplung im Plan",
    "is_evaporation_on_track": "Verdunstung im Plan",
}
#: The designated areas' (Gestaltungsräume) own figures and flags, shown in the summary below the whole region's:
#: they have their own target horizon (docs/marts.md).
DESIGNATED_KPI_COLUMNS = {
    "disconnection_rate_actual_designated_pct": ("Abkopplungsgrad Ist, Gestaltungsräume", 2, "%"),
    "disconnection_target_path_designated_pct": ("Zielpfad Abkopplung, Gestaltungsräume", 2, "%"),
    "evaporation_change_actual_designated_pp": ("ΔV Ist, Gestaltungsräume", 3, "pp"),
    "evaporation_change_planned_designated_pp": ("ΔV geplant, Gestaltungsräume", 3, "pp"),
    "evaporation_target_path_designated_pp": ("Zielpfad ΔV, Gestaltungsräume", 3, "pp"),
}
DESIGNATED_ON_TRACK_FLAGS = {
    "is_disconnection_designated_on_track": "Abkopplung im Plan, Gestaltungsräume",
    "is_evaporation_designated_on_track": "Verdunstung im Plan, Gestaltungsräume",
}


def kpi_figure(prefix: str, column: str, year: int, value: Any) -> Figure:
    _label, decimals, unit = {**KPI_COLUMNS, **DESIGNATED_KPI_COLUMNS}[column]
    return Figure(f"{prefix}_{column}_{year}", mart_number(value), decimals, unit)


def section_summary(con, year: int) -> Section:
    rows = warehouse.rows(con, "select * from marts.mart_kpi_region_year where year = ? order by region_key", [year])
    section = Section(
        "summary",
        "Zusammenfassung: die beiden strategischen KPIs",
        intro=(
            f"Stand Jahr {year}: Jahreswerte der Marts, für das laufende Jahr zum Datenstand. "
            "Abkopplungsgrad: Anteil der an den Mischwasserkanal "
            "angeschlossenen befestigten Fläche, der abgekoppelt ist (Ziel 25 % bis 2040). ΔV: Veränderung der "
            "Verdunstungsrate gegenüber dem Basisjahr in Prozentpunkten (Ziel +10 pp bis 2040). Dieselben Kennzahlen "
            "für die Gestaltungsräume allein stehen darunter (eigener Zielhorizont)."
        ),
    )
    # One column per region, one row per KPI: two regions fit the page with room for the labels.
    ordered = sorted(rows, key=lambda r: (r["region_key"] != "rvr", r["region_key"]))
    table = DataTable(
        ["Kennzahl", *[REGION_LABELS.get(r["region_key"], r["region_name"]) for r in ordered]], [], key="summary"
    )
    for column, (label, _decimals, _unit) in KPI_COLUMNS.items():
        table.rows.append([label, *[kpi_figure(f"kpi_{r['region_key']}", column, year, r[column]) for r in ordered]])
    for flag, label in ON_TRACK_FLAGS.items():
        table.rows.append([label, *[Figure(f"kpi_{r['region_key']}_{flag}_{year}", r[flag]) for r in ordered]])
    for column, (label, _decimals, _unit) in DESIGNATED_KPI_COLUMNS.items():
        table.rows.append([label, *[kpi_figure(f"kpi_{r['region_key']}", column, year, r[column]) for r in ordered]])
    for flag, label in DESIGNATED_ON_TRACK_FLAGS.items():
        table.rows.append([label, *[Figure(f"kpi_{r['region_key']}_{flag}_{year}", r[flag]) for r in ordered]])
    for r in ordered:
        if r["region_key"] == "rvr":
            prefix = f"kpi_{r['region_key']}"
            section.notes.append(status_sentence(r, year))
            section.figures = [
                kpi_figure(prefix, "disconnection_rate_actual_pct", year, r["disconnection_rate_actual_pct"]),
                kpi_figure(prefix, "disconnection_target_path_pct", year, r["disconnection_target_path_pct"]),
                kpi_figure(prefix, "evaporation_change_actual_pp", year, r["evaporation_change_actual_pp"]),
                kpi_figure(prefix, "evaporation_target_path_pp", year, r["evaporation_target_path_pp"]),
            ]
    section.tables.append(table)
    return section


def status_sentence(r: dict, year: int) -> str:
    """One sentence per KPI for the steering committee: where the region stands against its path."""

    def verdict(on_track: Any) -> str:
        if on_track is None:
            return "keine Bewertung (kein Ist-Jahr)"
        return "im Plan" if on_track else "hinter dem Zielpfad"

    return (
        f"{REGION_LABELS['rvr']}, {year}: "
        f"Abkopplungsgrad {format_number(r['disconnection_rate_actual_pct'], 2, '%')} "
        f"(geplant {format_number(r['disconnection_rate_planned_pct'], 2, '%')}) gegen den Zielpfad "
        f"{format_number(r['disconnection_target_path_pct'], 2, '%')}: {verdict(r['is_disconnection_on_track'])}. "
        f"Verdunstung ΔV {format_number(r['evaporation_change_actual_pp'], 3, 'pp')} gegen den Zielpfad "
        f"{format_number(r['evaporation_target_path_pp'], 3, 'pp')}: {verdict(r['is_evaporation_on_track'])}."
    )


def section_kpi_region(con, year: int) -> Section:
    rows = warehouse.rows(con, "select * from marts.mart_kpi_region_year order by region_key, year")
    section = Section(
        "kpi_region",
        "KPI-Verläufe der Region gegen den Zielpfad",
        intro=(
            "Ist-Werte (abgeschlossene Maßnahmen) und geplante Werte (bewilligte Maßnahmen) bis zum Berichtsjahr, "
            "Zielpfade bis 2040. Quelle: marts.mart_kpi_region_year."
        ),
    )
    shown = [r for r in rows if r["year"] <= year]
    path_to_year = [r for r in shown if r["region_key"] == "rvr"]
    by_region: dict[str, list[dict]] = {}
    for r in rows:
        by_region.setdefault(r["region_key"], []).append(r)

    def draw(measure: str, target: str, planned: str, label: str):
        # Left: the whole horizon to the target year; right: the years with data, enlarged, because the
        # early actual values are small against the target and would otherwise lie flat on the axis.
        def _draw(fig, axes):
            for ax, last_year in ((axes[0][0], None), (axes[0][1], year)):
                for region, colour in (("rvr", COLOURS["actual"]), ("zi_members", COLOURS["zi"])):
                    actual = [r for r in by_region.get(region, []) if r["year"] <= year]
                    ax.plot(
                        [r["year"] for r in actual],
                        [plotted(r[measure]) for r in actual],
                        marker="o",
                        ms=3,
                        color=colour,
                        label=f"{REGION_SHORT[region]}: Ist",
                    )
                    ax.plot(
                        [r["year"] for r in actual],
                        [plotted(r[planned]) for r in actual],
                        ls="--",
                        color=colour,
                        alpha=0.6,
                        label=f"{REGION_SHORT[region]}: geplant",
                    )
                path = [r for r in by_region.get("rvr", []) if last_year is None or r["year"] <= last_year]
                ax.plot(
                    [r["year"] for r in path],
                    [plotted(r[target]) for r in path],
                    color=COLOURS["target"],
                    lw=1.2,
                    label="Zielpfad",
                )
                ax.set_ylabel(label)
                ax.yaxis.set_major_formatter(german_ticks())
                year_axis(ax)
            axes[0][0].axvline(year, color="#888888", lw=0.6, ls=":")
            axes[0][0].set_title("bis zum Zieljahr")
            zoom = axes[0][1]
            values = [plotted(r[c]) for r in rows if r["year"] <= year for c in (measure, planned)]
            top = max((v for v in values if not math.isnan(v)), default=0.0)
            bottom = min([0.0, *(v for v in values if not math.isnan(v))])
            target_now = max((plotted(r[target]) for r in path_to_year), default=0.0)
            clipped = top > 0 and target_now > 1.5 * top
            if clipped:  # the actual values would lie flat under the target path: enlarge them
                zoom.set_ylim(bottom - 0.05 * (1.5 * top - bottom), 1.5 * top)
            zoom.set_title(f"bis {year} (vergrößert{'; Zielpfad teils außerhalb' if clipped else ''})")
            handles, labels = axes[0][0].get_legend_handles_labels()
            fig.legend(handles=handles, labels=labels, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0.04))

        return _draw

    for key, measure, planned, target, title, unit in (
        (
            "kpi_region_disconnection",
            "disconnection_rate_actual_pct",
            "disconnection_rate_planned_pct",
            "disconnection_target_path_pct",
            "Abkopplungsgrad (%) gegen den Zielpfad 25 % bis 2040",
            "%",
        ),
        (
            "kpi_region_evaporation",
            "evaporation_change_actual_pp",
            "evaporation_change_planned_pp",
            "evaporation_target_path_pp",
            "Veränderung der Verdunstungsrate ΔV (pp) gegen den Zielpfad +10 pp bis 2040",
            "pp",
        ),
    ):
        svg = chart_svg(
            key,
            draw(measure, target, planned, unit),
            (7.2, 3.4),
            "marts.mart_kpi_region_year",
            nrows=1,
            ncols=2,
            margins=dict(left=0.08, right=0.98, top=0.9, bottom=0.3, wspace=0.3),
        )
        table = DataTable(
            ["Region", "Jahr", KPI_COLUMNS[measure][0], KPI_COLUMNS[planned][0], KPI_COLUMNS[target][0]], [], key=key
        )
        for r in shown:
            prefix = f"kpi_{r['region_key']}"
            table.rows.append(
                [
                    REGION_LABELS.get(r["region_key"], r["region_name"]),
                    str(r["year"]),
                    *[kpi_figure(prefix, c, r["year"], r[c]) for c in (measure, planned, target)],
                ]
            )
        section.charts.append(Chart(key, title, svg, table))
    return section


def section_kpi_municipalities(con, year: int) -> Section:
    rows = warehouse.rows(
        con,
        "select * from marts.mart_kpi_municipality_year where year = ? order by municipality_name collate de",
        [year],
    )
    history = warehouse.rows(
        con, "select * from marts.mart_kpi_municipality_year where year <= ? order by municipality_key, year", [year]
    )
    section = Section(
        "kpi_municipalities",
        "KPIs je Kommune",
        intro=(
            f"Alle 53 Kommunen im Jahr {year} (Quelle: marts.mart_kpi_municipality_year). Kommunen ohne "
            "Flächendaten haben keine Basis; ihr Abkopplungsgrad bleibt leer („–“)."
        ),
    )
    # All 53 in one bar chart, sorted by the actual rate.
    ranked = sorted(
        rows,
        key=lambda r: (
            r["disconnection_rate_actual_pct"] is None,
            -(r["disconnection_rate_actual_pct"] or 0),
            sort_key(r["municipality_name"]),
        ),
    )
    target = next((r["disconnection_target_path_pct"] for r in rows), None)

    def draw_bars(fig, axes):
        ax = axes[0][0]
        names = [r["municipality_name"] for r in ranked][::-1]
        ax.barh(
            names,
            [plotted(r["disconnection_rate_planned_pct"]) for r in ranked][::-1],
            color=COLOURS["planned"],
            label="geplant (bewilligt)",
        )
        ax.barh(
            names,
            [plotted(r["disconnection_rate_actual_pct"]) for r in ranked][::-1],
            color=COLOURS["actual"],
            height=0.5,
            label="Ist (abgeschlossen)",
        )
        if target is not None:
            ax.axvline(float(target), color=COLOURS["target"], lw=1.2, label=f"Zielpfad {year}")
        ax.xaxis.set_major_formatter(german_ticks())
        ax.set_xlabel("Abkopplungsgrad (%)")
        ax.tick_params(axis="y", labelsize=6)
        ax.grid(axis="y", visible=False)
        ax.set_ylim(-0.7, len(names) - 0.3)
        ax.legend(loc="lower right")

    key = "kpi_municipalities_disconnection"
    svg = chart_svg(key, draw_bars, (7.2, 9.0), "marts.mart_kpi_municipality_year")
    bars = DataTable(["Kommune", "Abkopplungsgrad Ist", "Abkopplungsgrad geplant", "Zielpfad Abkopplung"], [], key=key)
    for r in ranked:
        prefix = f"kpi_{r['municipality_key']}"
        bars.rows.append(
            [
                r["municipality_name"],
                *[
                    kpi_figure(prefix, c, year, r[c])
                    for c in (
                        "disconnection_rate_actual_pct",
                        "disconnection_rate_planned_pct",
                        "disconnection_target_path_pct",
                    )
                ],
            ]
        )
    section.charts.append(
        Chart(key, f"Abkopplungsgrad {year} je Kommune (Ist und geplant) gegen den Zielpfad", svg, bars)
    )

    # Small multiples: trajectories of the municipalities at both ends of the ranking.
    with_rate = [r for r in ranked if r["disconnection_rate_actual_pct"] is not None]
    n = SMALL_MULTIPLES_EACH_END
    # The lowest end in ascending order, so that among municipalities tied at the lowest rate (often many at
    # 0 % in the early years) the alphabetically first are shown, as the caption says, and the caption says
    # how many share that rate.
    lowest = sorted(with_rate, key=lambda r: (r["disconnection_rate_actual_pct"], sort_key(r["municipality_name"])))[:n]
    chosen = with_rate[:n] + [r for r in with_rate if r in lowest and r not in with_rate[:n]]
    bottom_rate = lowest[-1]["disconnection_rate_actual_pct"] if lowest else None
    tied = sum(1 for r in with_rate if r["disconnection_rate_actual_pct"] == bottom_rate)
    caption = (
        f"Verläufe: die {n} Kommunen mit dem höchsten Abkopplungsgrad {year} und {n} der {tied} Kommunen mit dem "
        f"niedrigsten ({format_number(bottom_rate, 1, '%')}), alphabetisch ausgewählt"
        if tied > n and bottom_rate == with_rate[-1]["disconnection_rate_actual_pct"]
        else f"Verläufe: die {n} Kommunen mit dem höchsten und die {n} mit dem niedrigsten Abkopplungsgrad {year} "
        "(bei Gleichstand alphabetisch)"
    )
    series: dict[str, list[dict]] = {}
    for r in history:
        series.setdefault(r["municipality_key"], []).append(r)
    full_path = warehouse.rows(
        con,
        "select year, disconnection_target_path_pct from marts.mart_kpi_region_year "
        "where region_key = 'rvr' and year <= ? order by year",
        [year],
    )

    def draw_multiples(fig, axes):
        from matplotlib.lines import Line2D  # here: matplotlib is imported only when a chart is drawn

        flat = [ax for row in axes for ax in row]
        for ax, r in zip(flat, chosen):
            s = series[r["municipality_key"]]
            ax.plot(
                [p["year"] for p in full_path],
                [plotted(p["disconnection_target_path_pct"]) for p in full_path],
                color=COLOURS["target"],
                lw=1,
            )
            ax.plot(
                [x["year"] for x in s],
                [plotted(x["disconnection_rate_planned_pct"]) for x in s],
                ls="--",
                color=COLOURS["planned"],
            )
            ax.plot(
                [x["year"] for x in s],
                [plotted(x["disconnection_rate_actual_pct"]) for x in s],
                color=COLOURS["actual"],
                marker="o",
                ms=2,
            )
            ax.set_title(r["municipality_name"], fontsize=7)
            ax.tick_params(labelsize=6)
            year_axis(ax, nbins=3)
            ax.yaxis.set_major_formatter(german_ticks())
        for ax in flat[len(chosen) :]:
            ax.set_visible(False)
        fig.legend(
            labels=["Zielpfad", "geplant", "Ist"],
            loc="lower center",
            ncol=3,
            bbox_to_anchor=(0.5, 0.02),
            handles=[
                Line2D([], [], color=COLOURS["target"]),
                Line2D([], [], color=COLOURS["planned"], ls="--"),
                Line2D([], [], color=COLOURS["actual"]),
            ],
        )

    key = "kpi_municipalities_trajectories"
    cols = 4
    nrows = max(1, math.ceil(len(chosen) / cols))
    svg = chart_svg(
        key,
        draw_multiples,
        (7.2, 1.7 * nrows + 0.4),
        "marts.mart_kpi_municipality_year",
        nrows=nrows,
        ncols=cols,
        sharex=True,
        sharey=True,
        margins=dict(
            left=0.07, right=0.99, top=0.94, bottom=0.6 / (1.7 * nrows + 0.4) + 0.08, hspace=0.45, wspace=0.12
        ),
    )
    table = DataTable(["Kommune", "Jahr", "Abkopplungsgrad Ist", "Abkopplungsgrad geplant"], [], key=key)
    for r in chosen:
        for x in series[r["municipality_key"]]:
            prefix = f"kpi_{x['municipality_key']}"
            table.rows.append(
                [
                    x["municipality_name"],
                    str(x["year"]),
                    kpi_figure(prefix, "disconnection_rate_actual_pct", x["year"], x["disconnection_rate_actual_pct"]),
                    kpi_figure(
                        prefix, "disconnection_rate_planned_pct", x["year"], x["disconnection_rate_planned_pct"]
                    ),
                ]
            )
    section.charts.append(
        Chart(
            key,
            caption,
            svg,
            table,
        )
    )

    # The table of all 53.
    all_table = DataTable(
        ["Kommune", *[KPI_COLUMNS[c][0] for c in KPI_COLUMNS], *ON_TRACK_FLAGS.values()],
        [],
        key="kpi_municipalities_all",
        caption=f"Alle Kommunen, Jahr {year}",
    )
    for r in rows:
        prefix = f"kpi_{r['municipality_key']}"
        all_table.rows.append(
            [
                r["municipality_name"],
                *[kpi_figure(prefix, c, year, r[c]) for c in KPI_COLUMNS],
                *[Figure(f"{prefix}_{flag}_{year}", r[flag]) for flag in ON_TRACK_FLAGS],
            ]
        )
    section.tables.append(all_table)
    return section
