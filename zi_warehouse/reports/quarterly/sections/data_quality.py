"""Section 8 of the quarterly report, Datenqualität: row balance per source, rejection rules, failed checks.

What belongs here: the row balance per source family and the chart (Abb. 9) from
``marts.mart_ingestion_files``, the most frequent rejection rules from ``marts.mart_rejected_rows``, and
the failed checks of the latest check run from ``marts.mart_data_quality`` (optional: older warehouses
lack it; docs/data-quality.md owns that mart).
"""

from __future__ import annotations

from zi_warehouse import warehouse
from zi_warehouse.german import format_number
from zi_warehouse.reports.labels import (
    check_kind_label,
    check_label,
    family_label,
    rule_label,
    severity_label,
    source_label,
)
from zi_warehouse.reports.quarterly.charts import COLOURS, chart_svg, german_ticks, plotted
from zi_warehouse.reports.quarterly.figures import Chart, DataTable, Figure, Section, mart_number

#: Rows of the rejection-rule table (the full list is in marts.mart_rejected_rows).
TOP_RULES = 15
FAILED_CHECKS_SHOWN = 50
#: The report reads the published marts only; the pipeline's own checks are in the quality report.
PIPELINE_CHECKS_NOTE = (
    "Die Prüfungen der Marts stehen hier; die Prüfungen der Pipeline beim Laden (z. B. Förderdaten: mehr bewilligt "
    "als beantragt, Zeilenbilanzen, Klimadaten) zeigt der Qualitätsbericht des Laufs unter „Was warnt“ und "
    "„Was blockiert“."
)


def section_data_quality(con, period: str) -> Section:
    families = warehouse.rows(
        con,
        """
        select source_family, count(*)::bigint as files, sum(rows_read)::bigint as rows_read,
               sum(rows_loaded)::bigint as rows_loaded, sum(rows_rejected)::bigint as rows_rejected,
               (count(*) filter (where outcome in ('failed', 'blocked')))::bigint as files_failed,
               100.0 * sum(rows_rejected) / nullif(sum(rows_read), 0) as rejected_pct
        from marts.mart_ingestion_files group by source_family order by source_family""",
    )
    rules = warehouse.rows(
        con,
        f"""
        select source_family, rule, count(*)::bigint as rejections from marts.mart_rejected_rows
        group by source_family, rule order by rejections desc, source_family, rule limit {TOP_RULES}""",
    )
    submissions = warehouse.rows(
        con,
        """
        select count(*)::bigint as files, (count(*) filter (where outcome in ('failed', 'blocked')))::bigint as failed,
               coalesce(sum(rows_rejected), 0)::bigint as rows_rejected
        from marts.mart_ingestion_files where source_family = 'forecasts' and period = ?""",
        [period],
    )[0]
    section = Section(
        "data_quality",
        "Datenqualität",
        intro=(
            "Zeilenbilanz je Quelle über alle angelieferten Dateien (gelesen = geladen + abgewiesen), "
            "gescheiterte oder zurückgehaltene Dateien (eine inhaltsgleiche Kopie einer bereits geladenen Lieferung "
            "zählt als Datei, aber weder als gescheitert noch als Ablehnung), die häufigsten Ablehnungsgründe und "
            "die fehlgeschlagenen Prüfungen des neuesten Prüflaufs. Quellen: marts.mart_ingestion_files, "
            "marts.mart_rejected_rows, marts.mart_data_quality."
        ),
    )

    def draw(fig, axes):
        ax = axes[0][0]
        names = [family_label(r["source_family"]) for r in families][::-1]
        ax.barh(names, [plotted(r["rejected_pct"]) for r in families][::-1], color=COLOURS["target"])
        for i, r in enumerate(families[::-1]):
            ax.text(
                plotted(r["rejected_pct"]) if r["rejected_pct"] is not None else 0,
                i,
                " " + format_number(r["rejected_pct"], 2, "%"),
                va="center",
                fontsize=7,
            )
        ax.set_xlim(
            0, 1.2 * max([plotted(r["rejected_pct"]) for r in families if r["rejected_pct"] is not None] + [0.1])
        )  # room for the value labels
        ax.set_xlabel("Abgewiesene Zeilen (% der gelesenen)")
        ax.xaxis.set_major_formatter(german_ticks())
        ax.grid(axis="y", visible=False)

    key = "data_quality_rejections"
    svg = chart_svg(key, draw, (7.2, 0.3 * max(len(families), 1) + 0.9), "marts.mart_ingestion_files")
    table = DataTable(
        [
            "Quelle",
            "Dateien",
            "gelesen",
            "geladen",
            "abgewiesen",
            "Anteil abgewiesen",
            "Dateien gescheitert/zurückgehalten",
        ],
        [],
        key=key,
    )
    for r in families:
        f = r["source_family"]
        table.rows.append(
            [
                family_label(f),
                *[Figure(f"dq_{f}_{c}", r[c]) for c in ("files", "rows_read", "rows_loaded", "rows_rejected")],
                Figure(f"dq_{f}_rejected_pct", mart_number(r["rejected_pct"]), 2, "%"),
                Figure(f"dq_{f}_files_failed", r["files_failed"]),
            ]
        )
    section.charts.append(Chart(key, "Abgewiesene Zeilen je Quelle", svg, table))
    section.figures = [
        Figure(f"dq_forecast_files_{period}", submissions["files"]),
        Figure(f"dq_forecast_files_failed_{period}", submissions["failed"]),
        Figure(f"dq_forecast_rows_rejected_{period}", submissions["rows_rejected"]),
    ]
    rule_table = DataTable(
        ["Quelle", "Regel", "Ablehnungen"],
        [],
        key="data_quality_rules",
        caption=f"Die {TOP_RULES} häufigsten Ablehnungsgründe",
    )
    for r in rules:
        rule_table.rows.append(
            [
                family_label(r["source_family"]),
                rule_label(r["source_family"], r["rule"]),
                Figure(f"dq_rule_{r['source_family']}_{r['rule']}", r["rejections"]),
            ]
        )
    section.tables.append(rule_table)
    section.tables.extend(failed_checks(con, section))
    return section


#: Columns of marts.mart_data_quality this report reads (docs/data-quality.md owns the mart).
QUALITY_COLUMNS = (
    "is_latest_run",
    "check_kind",
    "source",
    "municipality_name",
    "check_name",
    "description_de",
    "severity",
    "rows_evaluated",
    "rows_failed",
    "outcome",
    "message_de",
)
SEVERITY_ORDER = "case severity when 'error' then 0 else 1 end"


def failed_checks(con, section: Section) -> list[DataTable]:
    """Failed checks of the latest check run from marts.mart_data_quality, when the warehouse has that mart.

    The mart is optional for this report (older warehouses lack it): without it, or without the columns
    read here, the section says so and shows the row balance only.
    """
    if not warehouse.table_exists(con, "marts", "mart_data_quality"):
        section.notes.append(
            "Die Prüfergebnisse (marts.mart_data_quality) sind in diesem Warehouse nicht "
            "veröffentlicht; der Abschnitt zeigt die Zeilenbilanz."
        )
        return []
    columns = {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'marts' "
            "and table_name = 'mart_data_quality'"
        ).fetchall()
    }
    if missing := [c for c in QUALITY_COLUMNS if c not in columns]:
        section.notes.append(
            f"marts.mart_data_quality ohne die Spalten {', '.join(missing)}: "
            "fehlgeschlagene Prüfungen werden nicht gezeigt."
        )
        return []
    total, failed, failed_error = con.execute(
        "select count(*), count(*) filter (where outcome = 'failed'), "
        "count(*) filter (where outcome = 'failed' and severity = 'error') "
        "from marts.mart_data_quality where is_latest_run"
    ).fetchone()
    section.figures += [
        Figure("dq_checks_total", total),
        Figure("dq_checks_failed", failed),
        Figure("dq_checks_failed_error", failed_error),
    ]
    if not failed:
        section.notes.append(
            "Alle Prüfungen des neuesten Prüflaufs (marts.mart_data_quality) sind bestanden."
            if total
            else "marts.mart_data_quality enthält noch keinen Prüflauf."
        )
        section.notes.append(PIPELINE_CHECKS_NOTE)
        return []
    rows = warehouse.rows(
        con,
        f"""
        select check_kind, source, coalesce(municipality_name, 'regionweit') as municipality_name, check_name,
               description_de, severity, rows_failed, rows_evaluated, message_de
        from marts.mart_data_quality where is_latest_run and outcome = 'failed'
        order by {SEVERITY_ORDER}, rows_failed desc, check_name, source, municipality_name
        limit {FAILED_CHECKS_SHOWN}""",
    )
    table = DataTable(
        ["Art", "Quelle", "Kommune", "Prüfung", "Schwere", "Zeilen verletzt / geprüft", "Ergebnis"],
        [],
        key="data_quality_failed_checks",
        caption=(
            f"Fehlgeschlagene Prüfungen des neuesten Prüflaufs ({format_number(failed)}"
            f"{f', die ersten {FAILED_CHECKS_SHOWN}' if failed > FAILED_CHECKS_SHOWN else ''})"
        ),
    )
    for r in rows:
        table.rows.append(
            [
                check_kind_label(r["check_kind"]),
                source_label(r["source"]),
                r["municipality_name"],
                check_label(r["check_name"], r["description_de"]),
                severity_label(r["severity"], short=True),
                f"{format_number(r['rows_failed'])} / {format_number(r['rows_evaluated'])}",
                r["message_de"] or "",
            ]
        )
    section.notes.append(PIPELINE_CHECKS_NOTE)
    return [table]
