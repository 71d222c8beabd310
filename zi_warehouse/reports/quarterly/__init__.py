"""The quarterly controlling report for the steering committee: German HTML with charts, printed to PDF.

It reads only the *published* warehouse (``published/zi.duckdb``, read-only, so the report never waits for
or blocks the pipeline) and turns the public marts into figures, charts and tables. Where things are:

- ``command.py``: ``write_report``, ``write_report_if_changed`` (called by the Dagster asset ``quarterly_report``;
  no redraw when no mart changed) and ``zi report``; opens the published copy, prints the PDF with headless Chromium (``reports/chromium.py``);
- ``periods.py``: the reporting quarter (``JJJJ-Qn``), checked against the marts' calendar;
- ``sections/``: one module per subject with the SQL, figures and charts of its sections
  (``sections/__init__.py`` lists which section reads which mart);
- ``figures.py``: :class:`Figure` (one number with a stable key), tables, charts, sections;
- ``charts.py``: matplotlib style, colours, "Abb. n" order, SVG output, German axis ticks;
- ``render.py``: the HTML through ``templates/quarterly.html.j2`` (and ``quarterly.css``).

Every number the report shows is a Figure; the template writes it with ``data-figure="<key>"`` and the
unformatted value in ``data-value`` so a test (and anyone curious) can compare the report with the marts.
Each chart has a ``<table>`` with the numbers it plots. How each figure is computed: docs/report.md (and
docs/marts.md for the marts).
"""

from zi_warehouse.reports.quarterly.command import ReportResult, report_command, write_report

__all__ = ["ReportResult", "report_command", "write_report"]
