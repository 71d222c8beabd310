"""Section 6 of the quarterly report, Bäume: new trees since the baseline year by source against the targets.

What belongs here: the tree sources with their German labels, the cumulative sums, the chart (Abb. 7) and
the headline figures, from ``marts.mart_trees_municipality_year`` (baseline year from ``mart_kpi_region_year``).
Which trees count as "new": docs/report.md.
"""

from __future__ import annotations

from zi_warehouse import warehouse
from zi_warehouse.german import format_number
from zi_warehouse.reports.quarterly.charts import COLOURS, TREE_COLOURS, chart_svg, german_ticks
from zi_warehouse.reports.quarterly.figures import Chart, DataTable, Figure, Section

TREE_SOURCES = {
    "campaign": "Klimabäume-Aktion",
    "register": "Baumkataster",
    "funded_measures": "Geförderte Maßnahmen",
}


def section_trees(con, year: int) -> Section:
    baseline = warehouse.rows(con, "select min(year) as y from marts.mart_kpi_region_year")[0]["y"]
    rows = warehouse.rows(
        con,
        "select year, tree_source, sum(trees)::bigint as trees "
        "from marts.mart_trees_municipality_year where year between ? and ? "
        "group by year, tree_source order by year, tree_source",
        [baseline, year],
    )
    targets = warehouse.rows(
        con,
        "select max(campaign_target_trees) as campaign, "
        "max(regional_aspiration_trees) as aspiration "
        "from marts.mart_trees_municipality_year",
    )[0]
    section = Section(
        "trees",
        "Bäume",
        intro=(
            f"Neu gepflanzte Bäume seit {baseline} je Herkunft, kumuliert: Klimabäume-Aktion, Baumkataster "
            "(nach Pflanzjahr; Bäume ohne Pflanzjahr zählen nicht) und abgeschlossene geförderte Maßnahmen. "
            "Vergleich mit dem Ziel der Klimabäume-Aktion und dem regionalen Ziel. "
            "Quelle: marts.mart_trees_municipality_year."
        ),
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
        ax.stackplot(
            years,
            *[cumulative[s] for s in TREE_SOURCES],
            labels=list(TREE_SOURCES.values()),
            colors=[TREE_COLOURS[s] for s in TREE_SOURCES],
            alpha=0.9,
        )
        ax.axhline(
            targets["campaign"] or 0,
            color=COLOURS["target"],
            ls="--",
            lw=1,
            label=f"Ziel Klimabäume-Aktion ({format_number(targets['campaign'])})",
        )
        ax.axhline(
            targets["aspiration"] or 0,
            color=COLOURS["target"],
            lw=1.2,
            label=f"Regionales Ziel ({format_number(targets['aspiration'])})",
        )
        ax.set_ylim(0, 1.35 * max(targets["aspiration"] or 0, max(totals, default=0), 1))  # room for the legend
        ax.set_ylabel("Bäume (kumuliert)")
        ax.yaxis.set_major_formatter(german_ticks())
        ax.set_xticks(years)
        ax.legend(loc="upper left", ncol=2)

    key = "trees_cumulative"
    svg = chart_svg(key, draw, (7.2, 3.4), "marts.mart_trees_municipality_year")
    table = DataTable(
        ["Jahr", *[f"{label} im Jahr" for label in TREE_SOURCES.values()], "Insgesamt kumuliert"], [], key=key
    )
    for i, y in enumerate(years):
        table.rows.append(
            [
                str(y),
                *[Figure(f"trees_{s}_{y}", per.get((y, s), 0)) for s in TREE_SOURCES],
                Figure(f"trees_total_cumulative_{y}", totals[i]),
            ]
        )
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
