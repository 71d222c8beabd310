"""Section 5 of the quarterly report, Projektpipeline: projects per life-cycle status at each quarter end.

What belongs here: the life-cycle statuses with their German labels, and the chart (Abb. 6) and tables
summed over municipalities from ``marts.mart_pipeline_municipality_quarter`` up to the reporting quarter.
"""

from __future__ import annotations

from zi_warehouse import warehouse
from zi_warehouse.reports.quarterly.charts import PIPELINE_COLOURS, chart_svg, german_ticks, quarter_axis
from zi_warehouse.reports.quarterly.figures import Chart, DataTable, Figure, Section, mart_number
from zi_warehouse.reports.quarterly.periods import period_index

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


def section_pipeline(con, period: str) -> Section:
    projects = ", ".join(f"sum({s}_projects)::bigint as {s}_projects" for s in PIPELINE_STATUSES)
    volumes = ", ".join(f"sum({s}_eur) as {s}_eur" for s in PIPELINE_STATUSES)
    rows = warehouse.rows(
        con,
        f"select period, year, quarter, {projects}, {volumes}, "
        "sum(total_projects)::bigint as total_projects "
        "from marts.mart_pipeline_municipality_quarter where year * 4 + quarter - 1 <= ? "
        "group by period, year, quarter order by year, quarter",
        [period_index(period)],
    )
    section = Section(
        "pipeline",
        "Projektpipeline",
        intro=(
            "Projekte je Lebenszyklus-Status zum Quartalsende, summiert über alle Kommunen; Volumen: bewilligter "
            "Betrag, sonst beantragter. Quelle: marts.mart_pipeline_municipality_quarter."
        ),
    )

    def draw(fig, axes):
        ax = axes[0][0]
        xs = list(range(len(rows)))
        bottom = [0.0] * len(rows)
        for (status, label), colour in zip(PIPELINE_STATUSES.items(), PIPELINE_COLOURS):
            values = [float(r[f"{status}_projects"] or 0) for r in rows]
            ax.bar(xs, values, 0.8, bottom=bottom, label=label, color=colour)
            bottom = [b + v for b, v in zip(bottom, values)]
        quarter_axis(ax, [r["period"] for r in rows])
        ax.set_xlabel("Quartal (Jahreszahl am ersten Quartal)")
        ax.set_ylabel("Projekte")
        ax.yaxis.set_major_formatter(german_ticks())
        # Below the axes: inside it would cover the bars of the early quarters as the pipeline grows.
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=4)

    key = "pipeline_quarter"
    svg = chart_svg(key, draw, (7.2, 3.6), "marts.mart_pipeline_municipality_quarter")
    table = DataTable(["Quartal", *PIPELINE_STATUSES.values(), "Insgesamt"], [], key=key)
    for r in rows:
        table.rows.append(
            [
                r["period"],
                *[Figure(f"pipeline_{s}_projects_{r['period']}", r[f"{s}_projects"]) for s in PIPELINE_STATUSES],
                Figure(f"pipeline_total_projects_{r['period']}", r["total_projects"]),
            ]
        )
    section.charts.append(Chart(key, "Projekte je Status und Quartal", svg, table))
    current = next((r for r in rows if r["period"] == period), None)
    if current:
        volume = DataTable(
            ["Status", "Projekte", "Volumen (EUR)"],
            [],
            key="pipeline_current",
            caption=f"Pipeline zum Ende von {period}",
        )
        for s, label in PIPELINE_STATUSES.items():
            volume.rows.append(
                [
                    label,
                    Figure(f"pipeline_{s}_projects_{period}", current[f"{s}_projects"]),
                    Figure(f"pipeline_{s}_eur_{period}", mart_number(current[f"{s}_eur"])),
                ]
            )
        section.tables.append(volume)
    return section
