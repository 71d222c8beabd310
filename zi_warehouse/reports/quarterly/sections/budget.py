"""Section 4 of the quarterly report, Mittelverwendung: envelope, approved and paid EUR per programme year.

What belongs here: the figures, chart (Abb. 5) and table from ``marts.mart_budget_year``.
"""

from __future__ import annotations

from zi_warehouse import warehouse
from zi_warehouse.reports.quarterly.charts import COLOURS, chart_svg, german_ticks, plotted
from zi_warehouse.reports.quarterly.figures import Chart, DataTable, Figure, Section, mart_number

BUDGET_COLUMNS = {"envelope_eur": "Plafond", "approved_eur": "Bewilligt", "paid_eur": "Ausgezahlt"}


def section_budget(con, year: int) -> Section:
    rows = warehouse.rows(con, "select * from marts.mart_budget_year order by year")
    section = Section(
        "budget",
        "Mittelverwendung",
        intro=(
            "Plafond laut Haushaltsplan, bewilligte Fördermittel (Erstbescheide des Jahres, aktueller Betrag) und "
            "Auszahlungen (Mittelabrufe) je Programmjahr. Quelle: marts.mart_budget_year."
        ),
    )
    shown = [r for r in rows if r["year"] <= year or (r["envelope_eur"] or 0) > 0]

    def draw(fig, axes):
        ax = axes[0][0]
        width = 0.27
        xs = [r["year"] for r in shown]
        for i, (column, label) in enumerate(BUDGET_COLUMNS.items()):
            colour = COLOURS[column.removesuffix("_eur")]
            ax.bar(
                [x + (i - 1) * width for x in xs],
                [plotted(r[column]) / 1e6 for r in shown],
                width,
                label=label,
                color=colour,
            )
        ax.set_ylabel("Mio. EUR")
        ax.yaxis.set_major_formatter(german_ticks())
        ax.set_xticks(xs)
        ax.set_xticklabels([str(x) for x in xs])
        ax.legend(loc="upper left", ncol=3)

    key = "budget_year"
    svg = chart_svg(key, draw, (7.2, 3.2), "marts.mart_budget_year")
    table = DataTable(
        [
            "Jahr",
            "Plafond (EUR)",
            "Bewilligt (EUR)",
            "Ausgezahlt (EUR)",
            "Bewilligt kumuliert (EUR)",
            "Ausgezahlt kumuliert (EUR)",
            "Mittelbindung",
            "Mittelverwendung",
        ],
        [],
        key=key,
    )
    for r in shown:
        y = r["year"]
        table.rows.append(
            [
                str(y),
                *[Figure(f"budget_{c}_{y}", mart_number(r[c])) for c in BUDGET_COLUMNS],
                Figure(f"budget_approved_eur_cumulative_{y}", mart_number(r["approved_eur_cumulative"])),
                Figure(f"budget_paid_eur_cumulative_{y}", mart_number(r["paid_eur_cumulative"])),
                Figure(f"budget_absorption_pct_{y}", mart_number(r["absorption_pct"]), 1, "%"),
                Figure(f"budget_utilisation_pct_{y}", mart_number(r["utilisation_pct"]), 1, "%"),
            ]
        )
    section.charts.append(Chart(key, "Plafond, Bewilligungen und Auszahlungen je Jahr (Mio. EUR)", svg, table))
    current = next((r for r in rows if r["year"] == year), None)
    if current:
        section.figures = [
            Figure(f"budget_{c}_cumulative_{year}", mart_number(current[f"{c}_cumulative"]), 0, "EUR")
            for c in ("approved_eur", "paid_eur", "envelope_eur")
        ]
    return section
