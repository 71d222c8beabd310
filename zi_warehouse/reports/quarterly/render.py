"""HTML of the quarterly report: the sections through the Jinja2 template ``templates/quarterly.html.j2``.

What belongs here: the labels of the headline figures (the cards on top of a section), the template's
``figure`` test and ``label`` filter, and the cover's data (period, when the data were published and the
report written, in local time with the zone named). The report names no file or server path: it is sent
to people who cannot open either.
The template writes every :class:`Figure` with ``data-figure``/``data-value``; styles come inline from
``templates/quarterly.css``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from zi_warehouse.german import format_datetime
from zi_warehouse.reports.quarterly.figures import Figure, Section
from zi_warehouse.reports.rendering import TEMPLATE_DIR, environment

TEMPLATE_NAME = "quarterly.html.j2"

#: Labels of the headline figures, by key without its year or quarter.
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
    "dq_checks_failed_error": "davon blockierend (Fehler)",
    "restatements_total": "geänderte Kennzahlen",
    "restatements_municipalities": "betroffene Kommunen",
}


def figure_label(figure: Figure) -> str:
    key = re.sub(r"_(\d{4}(-Q[1-4])?)$", "", figure.key)
    return FIGURE_LABELS.get(key, figure.key)


def render_html(sections: list[Section], period: str, source: Path, frozen: bool = False) -> str:
    env = environment()
    env.tests["figure"] = lambda value: isinstance(value, Figure)
    env.filters["label"] = figure_label
    template = env.get_template(TEMPLATE_NAME)
    css = (TEMPLATE_DIR / "quarterly.css").read_text(encoding="utf-8")
    published_at = datetime.fromtimestamp(source.stat().st_mtime, tz=UTC)
    return template.render(
        period=period,
        sections=sections,
        css=css,
        published_at=format_datetime(published_at),
        created_at=format_datetime(datetime.now(UTC)),
        frozen=frozen,
    )
