"""Dagster wiring of the quarterly controlling report (zi_warehouse/reports/quarterly.py does the work).

The asset reads only the *published* copy (``published/zi.duckdb``), so it runs outside the
``zi_warehouse`` pool: it neither waits for nor blocks the pipeline's writer. It is materialised after each
publish, and drawn again only when a mart or the code changed since its last drawing; a run config
``{"quarter": "2026-Q2"}`` renders an earlier quarter.
"""

from dagster import AssetExecutionContext, AssetKey, Config, MaterializeResult, MetadataValue, asset

from zi_warehouse.reports.quarterly.command import write_report_if_changed


class QuarterlyReportConfig(Config):
    quarter: str | None = None  # JJJJ-Qn; empty: the latest quarter with data


@asset(
    name="quarterly_report",
    group_name="publish",
    deps=[AssetKey(["published_warehouse"])],
    description=(
        "Quartalsbericht für das Controlling (HTML und PDF) aus dem veröffentlichten Warehouse: KPI-Verläufe gegen "
        "die Zielpfade, Mittelverwendung, Projektpipeline, Bäume, Prognosegüte, Datenqualität. "
        "reports/quarterly/<JJJJ-Qn>/bericht.html und bericht.pdf."
    ),
    kinds={"html", "pdf"},
)
def quarterly_report(context: AssetExecutionContext, config: QuarterlyReportConfig) -> MaterializeResult:
    result, drawn = write_report_if_changed(config.quarter, progress=context.log.info)
    if drawn:
        context.log.info(f"Quartalsbericht {result.period}: {result.html_path}")
    else:
        context.log.info(f"Quartalsbericht {result.period} unverändert (keine Mart geändert): {result.html_path}")
    return MaterializeResult(
        metadata={
            "period": result.period,
            "drawn": drawn,
            "html": MetadataValue.path(str(result.html_path)),
            "pdf": MetadataValue.path(str(result.pdf_path)) if result.pdf_path else "nicht gedruckt",
            "charts": len(result.charts),
            "figures": result.figures,
            "seconds": round(result.seconds, 1),
        }
    )


assets = [quarterly_report]
asset_checks: list = []
sensors: list = []
schedules: list = []
jobs: list = []

__all__ = ["assets", "asset_checks", "sensors", "schedules", "jobs", "quarterly_report"]
