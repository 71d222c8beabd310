"""Section 7 of the quarterly report, Prognosegüte: the previous quarter's forecast against the actual figures.

What belongs here: the forecast measures, the chart (Abb. 8) and table summed over the municipalities
with a forecast, from ``marts.mart_forecast_accuracy_municipality_quarter`` up to the reporting quarter.
"""

from __future__ import annotations

from typing import Any

from zi_warehouse import german, warehouse
from zi_warehouse.reports.quarterly.charts import COLOURS, chart_svg, german_ticks, plotted, quarter_axis
from zi_warehouse.reports.quarterly.figures import Chart, DataTable, Figure, Section, mart_number
from zi_warehouse.reports.quarterly.periods import period_index

#: Forecast measures of mart_forecast_accuracy_municipality_quarter: (column stem, label, decimals).
FORECAST_MEASURES = {
    "applications": ("Anträge", 0),
    "approvals": ("Bescheide", 0),
    "payments_eur": ("Auszahlungen (EUR)", 0),
    "completions": ("Abschlüsse", 0),
}


def section_forecast_accuracy(con, period: str) -> Section:
    sums = ", ".join(f"sum(forecast_{m}) as forecast_{m}, sum(actual_{m}) as actual_{m}" for m in FORECAST_MEASURES)
    rows = warehouse.rows(
        con,
        f"select period, year, quarter, {sums}, "
        "count(*) filter (where has_forecast) as forecasts "
        "from marts.mart_forecast_accuracy_municipality_quarter "
        "where has_forecast and is_actual_complete and year * 4 + quarter - 1 <= ? group by period, year, quarter "
        "order by year, quarter",
        [period_index(period)],
    )
    # Quarters with a forecast whose actual is not complete yet: still running at the funding data's Stichtag.
    open_quarters = warehouse.rows(
        con,
        "select period, max(actual_as_of_date) as as_of from marts.mart_forecast_accuracy_municipality_quarter "
        "where has_forecast and not is_actual_complete and year * 4 + quarter - 1 <= ? group by period, year, quarter "
        "order by year, quarter",
        [period_index(period)],
    )
    section = Section(
        "forecast_accuracy",
        "Prognosegüte",
        intro=(
            "Was die angenommenen Meldungen des Vorquartals für ein Quartal erwarten ließen, gegen das Ist der "
            "Förderdatenbank, summiert über die Kommunen mit Vorquartalsmeldung. "
            "Quelle: marts.mart_forecast_accuracy_municipality_quarter."
        ),
    )

    def draw(fig, axes):
        flat = [ax for row in axes for ax in row]
        xs = list(range(len(rows)))
        for ax, (m, (label, _dec)) in zip(flat, FORECAST_MEASURES.items()):
            scale = 1e6 if m.endswith("_eur") else 1
            ax.plot(
                xs,
                [plotted(r[f"forecast_{m}"]) / scale for r in rows],
                ls="--",
                marker="o",
                ms=2,
                color=COLOURS["planned"],
                label="Prognose",
            )
            ax.plot(
                xs,
                [plotted(r[f"actual_{m}"]) / scale for r in rows],
                marker="o",
                ms=2,
                color=COLOURS["actual"],
                label="Ist",
            )
            ax.set_title(label.replace("(EUR)", "(Mio. EUR)"), fontsize=8)
            quarter_axis(ax, [r["period"] for r in rows], max_labels=6)
            ax.tick_params(axis="x", labelsize=6)
            ax.yaxis.set_major_formatter(german_ticks())
        flat[0].legend(loc="upper right")

    key = "forecast_accuracy"
    svg = chart_svg(
        key,
        draw,
        (7.2, 4.2),
        "marts.mart_forecast_accuracy_municipality_quarter",
        nrows=2,
        ncols=2,
        margins=dict(left=0.08, right=0.98, top=0.94, bottom=0.08, hspace=0.4, wspace=0.2),
    )
    headers = ["Quartal", "Meldungen"]
    for _m, (label, _dec) in FORECAST_MEASURES.items():
        headers += [f"{label} Prognose", f"{label} Ist"]
    table = DataTable(headers, [], key=key)
    for r in rows:
        cells: list[Any] = [r["period"], Figure(f"forecast_reports_{r['period']}", r["forecasts"])]
        for m, (_label, dec) in FORECAST_MEASURES.items():
            cells += [
                Figure(f"forecast_{m}_forecast_{r['period']}", mart_number(r[f"forecast_{m}"]), dec),
                Figure(f"forecast_{m}_actual_{r['period']}", mart_number(r[f"actual_{m}"]), dec),
            ]
        table.rows.append(cells)
    section.charts.append(Chart(key, "Prognose des Vorquartals und Ist je Quartal", svg, table))
    if open_quarters:
        as_of = open_quarters[0]["as_of"]
        section.notes.append(
            f"Ohne {', '.join(q['period'] for q in open_quarters)}: "
            + (
                f"am Stichtag der jüngsten Förderdaten ({german.format_date(as_of)}) noch nicht abgeschlossen"
                if as_of
                else "noch keine Förderdaten geladen"
            )
            + ", das Ist ist also noch unvollständig."
        )
    if not rows:
        section.notes.append(
            f"Bis {period} liegt kein abgeschlossenes Quartal mit Vorquartalsmeldung vor, an dem sich eine Prognose "
            "prüfen ließe."
        )
    return section
