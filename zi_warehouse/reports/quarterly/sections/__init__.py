"""The nine sections of the quarterly report, one module per subject, in report order.

- ``kpi.py``: 1 Zusammenfassung, 2 KPI-Verläufe der Region, 3 KPIs je Kommune
  (``mart_kpi_region_year``, ``mart_kpi_municipality_year``)
- ``budget.py``: 4 Mittelverwendung (``mart_budget_year``)
- ``pipeline.py``: 5 Projektpipeline (``mart_pipeline_municipality_quarter``)
- ``trees.py``: 6 Bäume (``mart_trees_municipality_year``)
- ``forecasts.py``: 7 Prognosegüte (``mart_forecast_accuracy_municipality_quarter``)
- ``data_quality.py``: 8 Datenqualität (``mart_ingestion_files``, ``mart_rejected_rows``, ``mart_data_quality``)
- ``restatements.py``: 9 Änderungen gegenüber dem Berichtsstand <Quartal> (``mart_restatements``)

Each ``section_*`` function reads its marts (SQL in the function), builds the figures, draws its charts
(``charts.chart_svg``) and returns a :class:`~zi_warehouse.reports.quarterly.figures.Section`.
How each figure is computed: docs/report.md.
"""

from __future__ import annotations

import duckdb

from zi_warehouse.reports.quarterly.figures import Section
from zi_warehouse.reports.quarterly.periods import parse_period
from zi_warehouse.reports.quarterly.sections.budget import section_budget
from zi_warehouse.reports.quarterly.sections.data_quality import section_data_quality
from zi_warehouse.reports.quarterly.sections.forecasts import section_forecast_accuracy
from zi_warehouse.reports.quarterly.sections.kpi import section_kpi_municipalities, section_kpi_region, section_summary
from zi_warehouse.reports.quarterly.sections.pipeline import section_pipeline
from zi_warehouse.reports.quarterly.sections.restatements import section_restatements
from zi_warehouse.reports.quarterly.sections.trees import section_trees


def build_sections(con: duckdb.DuckDBPyConnection, period: str, frozen: bool = False) -> list[Section]:
    """All sections for ``period`` in report order (yearly marts show the year of the reporting quarter);
    ``frozen``: the report of a Berichtsstand (section 9 words its comparison for it)."""
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
        section_restatements(con, frozen),
    ]
