"""The quarterly controlling report on the demo build: every chart is there, and its numbers are the marts'.

The report is materialised once through its Dagster asset (into a copy of the demo build), then
- headless Chromium renders the HTML: one non-empty <svg> per chart, and every number shown
  (``data-figure``/``data-value``) equals what this test computes from the published marts with its own SQL;
- the printed PDF has pages and contains every chart (the "Abb. n" label written inside each chart's SVG);
- the HTML references nothing external (no http(s) resource, only the SVG namespace declarations);
- laid out for print on A4 (the layout Chromium paginates), no element is wider than the page and no two
  labels of a chart are drawn over each other; the page and the PDF show no internal key (rule, check,
  source family, severity) and no server path, and times are local with the zone named;
- `report_command` renders an earlier quarter, and refuses a quarter without data.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from zi_warehouse.config import REPO_ROOT
from zi_warehouse.reports.chromium import Browser, rendered_dom

try:  # tests/ is not a package; pytest puts it on sys.path
    from report_layout import describe, overflowing_elements, overlapping_chart_texts, printable_width_px, visible_text
except ImportError:  # pragma: no cover - when tests/ becomes a package
    from tests.report_layout import (
        describe,
        overflowing_elements,
        overlapping_chart_texts,
        printable_width_px,
        visible_text,
    )

#: The charts in report order; each carries "Abb. n" (its position here, 1-based) inside its SVG.
EXPECTED_CHARTS = [
    "kpi_region_disconnection",
    "kpi_region_evaporation",
    "kpi_municipalities_disconnection",
    "kpi_municipalities_trajectories",
    "budget_year",
    "pipeline_quarter",
    "trees_cumulative",
    "forecast_accuracy",
    "data_quality_rejections",
]
SECTION_TITLES = [
    "Zusammenfassung",
    "KPI-Verläufe der Region",
    "KPIs je Kommune",
    "Mittelverwendung",
    "Projektpipeline",
    "Bäume",
    "Prognosegüte",
    "Datenqualität",
]
KPI_COLUMNS = [
    "disconnection_rate_actual_pct",
    "disconnection_rate_planned_pct",
    "disconnection_target_path_pct",
    "evaporation_change_actual_pp",
    "evaporation_change_planned_pp",
    "evaporation_target_path_pp",
]
DESIGNATED_COLUMNS = [
    "disconnection_rate_actual_designated_pct",
    "disconnection_target_path_designated_pct",
    "evaporation_change_actual_designated_pp",
    "evaporation_change_planned_designated_pp",
    "evaporation_target_path_designated_pp",
    "is_disconnection_designated_on_track",
    "is_evaporation_designated_on_track",
]
STATUSES = [
    "idea",
    "application_in_preparation",
    "application_filed",
    "approved",
    "in_construction",
    "completed",
    "withdrawn",
    "rejected",
]
FORECAST_MEASURES = ["applications", "approvals", "payments_eur", "completions"]


# ------------------------------------------------------------------------------------------------
# Reading the rendered page
# ------------------------------------------------------------------------------------------------
class _DomReader(HTMLParser):
    """Collects data-figure elements (key, data-value, visible text) and each chart's SVG content."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.figures: list[tuple[str, str, str]] = []
        self.charts: dict[str, dict] = {}
        self._figure: list | None = None
        self._chart: str | None = None
        self._svg_depth = 0
        self._in_text = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-figure" in a:
            self._figure = [a["data-figure"], a.get("data-value", ""), ""]
        if tag == "svg" and "data-chart" in a:
            self._chart = a["data-chart"]
            self.charts[self._chart] = {"elements": 0, "texts": []}
            self._svg_depth = 0
        if self._chart:
            self._svg_depth += 1
            self.charts[self._chart]["elements"] += 1
            self._in_text = tag == "text"

    def handle_endtag(self, tag):
        if self._figure is not None and tag in ("td", "span"):
            self.figures.append(tuple(self._figure))
            self._figure = None
        if self._chart:
            self._svg_depth -= 1
            if tag == "text":
                self._in_text = False
            if self._svg_depth == 0:
                self._chart = None

    def handle_data(self, data):
        if self._figure is not None:
            self._figure[2] += data
        if self._chart and self._in_text:
            self.charts[self._chart]["texts"].append(data)


def parse_german(text: str) -> float | None:
    """'1.234,5 %' -> 1234.5; '–' -> None (independent of the report's formatter)."""
    number = text.replace("\u00a0", " ").strip().split(" ")[0]
    if number == "–":
        return None
    return float(number.replace(".", "").replace(",", "."))


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def report(demo_data_dir, tmp_path_factory) -> dict:
    """The latest quarter's report, materialised through the Dagster asset into a copy of the demo build
    (the session's demo build is shared by other tests and never written to)."""
    from dagster import materialize

    from conftest import copy_built_data_dir
    from dagster_zi.reports import quarterly_report

    data_dir = copy_built_data_dir(demo_data_dir, tmp_path_factory.mktemp("quarterly") / "data")
    previous = os.environ.get("ZI_DATA_DIR")
    os.environ["ZI_DATA_DIR"] = str(data_dir)
    try:
        result = materialize([quarterly_report])
    finally:
        if previous is None:
            os.environ.pop("ZI_DATA_DIR", None)
        else:
            os.environ["ZI_DATA_DIR"] = previous
    assert result.success
    metadata = result.asset_materializations_for_node("quarterly_report")[0].metadata
    period = metadata["period"].value
    published = data_dir / "published" / "zi.duckdb"
    with duckdb.connect(str(published), read_only=True) as con:
        latest = con.execute(
            "select period from marts.mart_pipeline_municipality_quarter order by year desc, quarter desc limit 1"
        ).fetchone()[0]
    folder = data_dir / "reports" / "quarterly" / period
    dom = _DomReader()
    html_path = folder / "bericht.html"
    dom.feed(rendered_dom(html_path))
    return {
        "period": period,
        "latest": latest,
        "folder": folder,
        "html": html_path,
        "pdf": folder / "bericht.pdf",
        "published": published,
        "dom": dom,
        "metadata": metadata,
        "data_dir": data_dir,
    }


# ------------------------------------------------------------------------------------------------
# What the marts say (the test's own SQL)
# ------------------------------------------------------------------------------------------------
def expected_figures(published: Path, period: str) -> dict[str, object]:
    year, quarter = int(period[:4]), int(period[-1])
    index = year * 4 + quarter - 1
    expected: dict[str, object] = {}
    con = duckdb.connect(str(published), read_only=True)
    try:
        cols = ", ".join(KPI_COLUMNS)
        for region, y, *values in con.execute(
            f"select region_key, year, {cols} from marts.mart_kpi_region_year where year <= ?", [year]
        ).fetchall():
            expected.update({f"kpi_{region}_{c}_{y}": v for c, v in zip(KPI_COLUMNS, values)})
        # The designated areas' figures of the reporting year (summary table).
        for region, *values in con.execute(
            f"select region_key, {', '.join(DESIGNATED_COLUMNS)} from marts.mart_kpi_region_year where year = ?",
            [year],
        ).fetchall():
            expected.update({f"kpi_{region}_{c}_{year}": v for c, v in zip(DESIGNATED_COLUMNS, values)})
        for region, on_d, on_e in con.execute(
            "select region_key, is_disconnection_on_track, is_evaporation_on_track from marts.mart_kpi_region_year "
            "where year = ?",
            [year],
        ).fetchall():
            expected[f"kpi_{region}_is_disconnection_on_track_{year}"] = on_d
            expected[f"kpi_{region}_is_evaporation_on_track_{year}"] = on_e
        municipalities = con.execute(
            f"select municipality_key, {cols}, is_disconnection_on_track, is_evaporation_on_track "
            "from marts.mart_kpi_municipality_year where year = ?",
            [year],
        ).fetchall()
        assert len(municipalities) == 53
        for key, *values in municipalities:
            expected.update({f"kpi_{key}_{c}_{year}": v for c, v in zip(KPI_COLUMNS, values)})
            expected[f"kpi_{key}_is_disconnection_on_track_{year}"] = values[-2]
            expected[f"kpi_{key}_is_evaporation_on_track_{year}"] = values[-1]
        # Small multiples: the trajectories of the municipalities shown (checked against the mart below).
        for key, y, actual, planned in con.execute(
            "select municipality_key, year, disconnection_rate_actual_pct, disconnection_rate_planned_pct "
            "from marts.mart_kpi_municipality_year where year <= ?",
            [year],
        ).fetchall():
            expected.setdefault(f"kpi_{key}_disconnection_rate_actual_pct_{y}", actual)
            expected.setdefault(f"kpi_{key}_disconnection_rate_planned_pct_{y}", planned)

        budget_cols = [
            "envelope_eur",
            "approved_eur",
            "paid_eur",
            "approved_eur_cumulative",
            "paid_eur_cumulative",
            "absorption_pct",
            "utilisation_pct",
            "envelope_eur_cumulative",
        ]
        for y, *values in con.execute(f"select year, {', '.join(budget_cols)} from marts.mart_budget_year").fetchall():
            expected.update({f"budget_{c}_{y}": v for c, v in zip(budget_cols, values)})

        sums = ", ".join(f"sum({s}_projects), sum({s}_eur)" for s in STATUSES)
        for p, total, *values in con.execute(
            f"select period, sum(total_projects), {sums} from marts.mart_pipeline_municipality_quarter "
            "where year * 4 + quarter - 1 <= ? group by period",
            [index],
        ).fetchall():
            expected[f"pipeline_total_projects_{p}"] = total
            for i, s in enumerate(STATUSES):
                expected[f"pipeline_{s}_projects_{p}"] = values[2 * i]
                expected[f"pipeline_{s}_eur_{p}"] = values[2 * i + 1]

        baseline = con.execute("select min(year) from marts.mart_kpi_region_year").fetchone()[0]
        running = {"campaign": 0, "all": 0}
        for y in range(baseline, year + 1):
            per_source = dict(
                con.execute(
                    "select tree_source, sum(trees) from marts.mart_trees_municipality_year where year = ? group by 1",
                    [y],
                ).fetchall()
            )
            for source in ("campaign", "register", "funded_measures"):
                expected[f"trees_{source}_{y}"] = per_source.get(source, 0)
            running["campaign"] += per_source.get("campaign", 0)
            running["all"] += sum(per_source.values())
            expected[f"trees_total_cumulative_{y}"] = running["all"]
        expected[f"trees_campaign_cumulative_{year}"] = running["campaign"]
        target, aspiration = con.execute(
            "select max(campaign_target_trees), max(regional_aspiration_trees) from marts.mart_trees_municipality_year"
        ).fetchone()
        expected["trees_campaign_target"], expected["trees_regional_aspiration"] = target, aspiration

        measures = ", ".join(f"sum(forecast_{m}), sum(actual_{m})" for m in FORECAST_MEASURES)
        for p, reports, *values in con.execute(
            f"select period, count(*), {measures} from marts.mart_forecast_accuracy_municipality_quarter "
            "where has_forecast and is_actual_complete and year * 4 + quarter - 1 <= ? group by period",
            [index],
        ).fetchall():
            expected[f"forecast_reports_{p}"] = reports
            for i, m in enumerate(FORECAST_MEASURES):
                expected[f"forecast_{m}_forecast_{p}"] = values[2 * i]
                expected[f"forecast_{m}_actual_{p}"] = values[2 * i + 1]

        for family, files, read, loaded, rejected, failed in con.execute(
            "select source_family, count(*), sum(rows_read), sum(rows_loaded), sum(rows_rejected), "
            "count(*) filter (where outcome in ('failed', 'blocked')) from marts.mart_ingestion_files "
            "group by 1"
        ).fetchall():
            expected.update(
                {
                    f"dq_{family}_files": files,
                    f"dq_{family}_rows_read": read,
                    f"dq_{family}_rows_loaded": loaded,
                    f"dq_{family}_rows_rejected": rejected,
                    f"dq_{family}_files_failed": failed,
                    f"dq_{family}_rejected_pct": 100 * rejected / read if read else None,
                }
            )
        for family, rule, count in con.execute(
            "select source_family, rule, count(*) from marts.mart_rejected_rows group by 1, 2"
        ).fetchall():
            expected[f"dq_rule_{family}_{rule}"] = count
        files, failed, rejected = con.execute(
            "select count(*), count(*) filter (where outcome in ('failed', 'blocked')), "
            "coalesce(sum(rows_rejected), 0) from marts.mart_ingestion_files "
            "where source_family = 'forecasts' and period = ?",
            [period],
        ).fetchone()
        expected.update(
            {
                f"dq_forecast_files_{period}": files,
                f"dq_forecast_files_failed_{period}": failed,
                f"dq_forecast_rows_rejected_{period}": rejected,
            }
        )
        if con.execute(
            "select count(*) from information_schema.tables where table_schema = 'marts' "
            "and table_name = 'mart_data_quality'"
        ).fetchone()[0]:
            total, failed, failed_error = con.execute(
                "select count(*), count(*) filter (where outcome = 'failed'), "
                "count(*) filter (where outcome = 'failed' and severity = 'error') "
                "from marts.mart_data_quality where is_latest_run"
            ).fetchone()
            expected.update(
                {"dq_checks_total": total, "dq_checks_failed": failed, "dq_checks_failed_error": failed_error}
            )
    finally:
        con.close()
    return expected


def same(shown: str, expected: object) -> bool:
    if expected is None:
        return shown == ""
    if isinstance(expected, bool):
        return shown == ("true" if expected else "false")
    if shown == "":
        return False
    return math.isclose(float(shown), float(expected), rel_tol=1e-9, abs_tol=1e-9)


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------
def test_default_quarter_is_the_latest_with_data(report):
    assert report["period"] == report["latest"]
    assert report["html"].exists() and report["pdf"].exists()
    assert report["metadata"]["charts"].value == len(EXPECTED_CHARTS)


def test_every_chart_is_rendered(report):
    charts = report["dom"].charts
    assert list(charts) == EXPECTED_CHARTS
    for n, key in enumerate(EXPECTED_CHARTS, start=1):
        chart = charts[key]
        assert chart["elements"] > 50, f"{key}: SVG fast leer ({chart['elements']} Elemente)"
        texts = " ".join(chart["texts"])
        assert f"Abb. {n} · Quelle: marts." in texts, key


def test_figures_shown_equal_the_marts(report):
    expected = expected_figures(report["published"], report["period"])
    shown: dict[str, set[str]] = {}
    for key, value, text in report["dom"].figures:
        shown.setdefault(key, set()).add(value)
        # The visible text is the value in German notation, rounded to the shown decimals.
        if value in ("", "true", "false"):
            assert text == {"": "–", "true": "ja", "false": "nein"}[value], (key, value, text)
            continue
        number = parse_german(text)
        decimals = len(text.split(",")[1].split("\u00a0")[0]) if "," in text else 0
        assert number == pytest.approx(float(value), abs=0.5 * 10**-decimals + 1e-9), (key, value, text)
    assert len(shown) > 1000
    unverified = sorted(set(shown) - set(expected))
    assert not unverified, f"Zahlen im Bericht ohne Gegenprobe: {unverified[:20]}"
    for key, values in shown.items():
        assert len(values) == 1, f"{key} erscheint mit verschiedenen Werten: {values}"
        assert same(next(iter(values)), expected[key]), f"{key}: Bericht {values}, Mart {expected[key]!r}"
    # Everything the report promises is there: all 53 municipalities, every quarter, every source family.
    assert not (missing := sorted(required_figures(expected, report["period"]) - set(shown))), (
        f"Im Bericht fehlen: {missing[:20]}"
    )
    rules = [k for k in expected if k.startswith("dq_rule_")]
    assert len([k for k in shown if k.startswith("dq_rule_")]) == min(15, len(rules))


def required_figures(expected: dict, period: str) -> set[str]:
    """The keys the report must show (expected also holds years and quarters it need not show)."""
    year = period[:4]
    required = set()
    for key in expected:
        if (
            key.startswith(("kpi_rvr_", "kpi_zi_members_"))
            or re.match(rf"kpi_.*_{year}$", key)
            or key.startswith("budget_")
            and "envelope_eur_cumulative" not in key
            or key.startswith("pipeline_")
            and ("_projects_" in key or key.endswith(period))
            or key.startswith(("trees_", "forecast_", "dq_"))
            and not key.startswith("dq_rule_")
        ):
            required.add(key)
    required.add(f"budget_envelope_eur_cumulative_{year}")
    return required


def test_pdf_has_pages_and_every_chart(report):
    pdfinfo, pdftotext = shutil.which("pdfinfo"), shutil.which("pdftotext")
    if not (pdfinfo and pdftotext):
        pytest.skip("poppler-utils fehlt: scripts/install-system-packages.sh installiert es")
    info = subprocess.run([pdfinfo, str(report["pdf"])], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    # Cover with summary, then each further section starts on a new page.
    assert pages >= len(SECTION_TITLES), pages
    text = subprocess.run(
        [pdftotext, "-layout", str(report["pdf"]), "-"], capture_output=True, text=True, check=True
    ).stdout
    for title in SECTION_TITLES:
        assert title in text, title
    for n in range(1, len(EXPECTED_CHARTS) + 1):
        assert re.search(rf"Abb\.\s+{n}\s+·\s+Quelle:", text), f"Abb. {n} fehlt im PDF"
    # Chart text (axis labels, legends) is text, not paths.
    for label in ("bis zum Zieljahr", "Mio. EUR", "Bäume (kumuliert)", "Abgewiesene Zeilen"):
        assert label in text, label


def test_no_table_caption_stands_alone_at_the_foot_of_a_page(report):
    # A caption (with the header row under it) printed as a page's last lines, its rows on the next page,
    # reads as an empty table. Checked on the printed PDF: no caption among the last three lines of a page.
    html = report["html"].read_text(encoding="utf-8")
    captions = {re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<caption>(.*?)</caption>", html, re.S)}
    assert captions
    text = subprocess.run(
        ["pdftotext", "-layout", str(report["pdf"]), "-"], capture_output=True, text=True, check=True
    ).stdout
    alone = []
    for number, page in enumerate(text.split("\f"), start=1):
        last = [line.strip() for line in page.splitlines() if line.strip()][-3:]
        alone += [(number, c) for c in captions if any(line.startswith(c[:40]) for line in last)]
    assert not alone, alone


def test_the_data_quality_section_points_to_the_pipelines_checks(report):
    # The report reads the published marts only; the checks run while loading are in the quality report.
    from zi_warehouse.reports.quarterly.sections.data_quality import PIPELINE_CHECKS_NOTE

    assert PIPELINE_CHECKS_NOTE in visible_text(report["html"].read_text(encoding="utf-8"))


def test_the_pipelines_report_is_marked_as_a_draft(report):
    html = report["html"].read_text(encoding="utf-8")
    assert 'data-release-state="draft"' in html and "Entwurf" in visible_text(html)


def test_html_references_nothing_external(report):
    html = report["html"].read_text(encoding="utf-8")
    urls = re.findall(r"https?://[^\s\"'<>)]+", html)
    assert set(urls) <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, set(urls)
    for pattern in (
        r"<script\b[^>]*\bsrc=",
        r"<link\b",
        r"@import",
        r"url\(\s*['\"]?(?!#)",
        r"<img\b[^>]*\bsrc=\"(?!data:)",
    ):
        assert not re.search(pattern, html, re.I), pattern
    assert 'href="//' not in html and 'src="//' not in html


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


def test_no_element_is_wider_than_its_page(report, browser):
    html = report["html"].read_text(encoding="utf-8")
    width = printable_width_px(html)
    assert 650 < width < 720, width  # A4 portrait minus the margins
    printed = overflowing_elements(browser, report["html"], media="print", width_px=width)
    assert not printed["found"], "Gedruckt breiter als die Seite:\n" + describe(printed)
    assert printed["scrollWidth"] <= width
    # On a laptop screen as well (the HTML is also read in a browser).
    screen = overflowing_elements(browser, report["html"], media="screen", width_px=1280)
    assert not screen["found"], "Breiter als ein 1280-px-Fenster:\n" + describe(screen)


def test_no_chart_writes_labels_over_each_other(report, browser):
    width = printable_width_px(report["html"].read_text(encoding="utf-8"))
    overlaps = overlapping_chart_texts(browser, report["html"], width_px=width)
    assert not overlaps, [(o["chart"], o["a"], o["b"]) for o in overlaps[:10]]


def internal_keys(published: Path) -> set[str]:
    """Keys of the marts a controller should never have to read: rules, checks, source families, kinds of
    checks, severities, outcomes, region keys."""
    con = duckdb.connect(str(published), read_only=True)
    try:
        keys = {r for (r,) in con.execute("select distinct rule from marts.mart_rejected_rows").fetchall()}
        keys |= {f for (f,) in con.execute("select distinct source_family from marts.mart_ingestion_files").fetchall()}
        keys |= {r for (r,) in con.execute("select distinct region_key from marts.mart_kpi_region_year").fetchall()}
        keys |= {m for (m,) in con.execute("select municipality_key from marts.dim_municipality").fetchall()}
        for column in ("check_name", "check_kind", "severity", "outcome"):
            keys |= {v for (v,) in con.execute(f"select distinct {column} from marts.mart_data_quality").fetchall()}
        # What a check looked at: source families are keys; marts are the public names controllers query.
        marts = {
            t
            for (t,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        }
        for (source,) in con.execute("select distinct source from marts.mart_data_quality").fetchall():
            keys |= set(source.split("×")) - marts
    finally:
        con.close()
    return keys - {None}


def shown_keys(text: str, keys: set[str]) -> list[str]:
    """The keys that appear in ``text`` as words of their own (case-sensitive: 'Herne' is not 'herne')."""
    return sorted(k for k in keys if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w])", text))


def server_paths(text: str, data_dir: Path) -> list[str]:
    found = [p for p in (str(data_dir), str(REPO_ROOT), "docs/", "/tmp/", "/home/", "/srv/") if p in text]
    return found + re.findall(r"(?:^|[\s(„\"'])(/(?:[^\s/]+/)+[^\s]*)", text)


def test_no_internal_key_or_server_path_in_page_or_pdf(report):
    keys = internal_keys(report["published"])
    assert {"required", "reconciliation.paid_within_approved", "forecasts", "error"} <= keys  # the test sees them
    page = visible_text(rendered_dom(report["html"]))
    pdf = subprocess.run(["pdftotext", str(report["pdf"]), "-"], capture_output=True, text=True, check=True).stdout
    for name, text in (("HTML", page), ("PDF", pdf)):
        assert not shown_keys(text, keys), f"{name} zeigt interne Schlüssel: {shown_keys(text, keys)}"
        assert not server_paths(text, report["data_dir"]), (
            f"{name} zeigt Pfade: {server_paths(text, report['data_dir'])}"
        )
    # the attributes carry no path either (the data directory must not travel with the file)
    assert str(report["data_dir"]) not in report["html"].read_text(encoding="utf-8")


def test_times_are_local_with_the_zone_named(report):
    page = visible_text(rendered_dom(report["html"]))
    moments = re.findall(r"\d\d\.\d\d\.\d{4} \d\d:\d\d(?: (\w+))?", page)
    assert len(moments) >= 2 and set(moments) <= {"MEZ", "MESZ"}, moments
    assert "UTC" not in page


def test_report_command_renders_an_earlier_quarter(report, tmp_path):
    import typer

    from zi_warehouse.reports.quarterly import report_command

    data_dir = report["data_dir"]
    previous = os.environ.get("ZI_DATA_DIR")
    os.environ["ZI_DATA_DIR"] = str(data_dir)
    try:
        result = report_command("2024-Q2", pdf=False)
        with pytest.raises(typer.Exit):
            report_command("2010-Q1", pdf=False)
        with pytest.raises(typer.Exit):
            report_command("2024-Q5", pdf=False)
    finally:
        if previous is None:
            os.environ.pop("ZI_DATA_DIR", None)
        else:
            os.environ["ZI_DATA_DIR"] = previous
    assert result.html_path == data_dir / "reports" / "quarterly" / "2024-Q2" / "bericht.html"
    html = result.html_path.read_text(encoding="utf-8")
    periods = set(re.findall(r'data-figure="pipeline_total_projects_(\d{4}-Q[1-4])"', html))
    assert max(periods, key=lambda p: (int(p[:4]), int(p[-1]))) == "2024-Q2"
    assert 'data-figure="kpi_rvr_disconnection_rate_actual_pct_2024"' in html
    assert 'data-figure="kpi_rvr_disconnection_rate_actual_pct_2025"' not in html


def test_the_report_is_drawn_again_only_when_a_mart_changed(report, tmp_path, monkeypatch):
    """The pipeline's report asset redraws only when a mart (its checksum in the current release's manifest) or
    the code changed since the last drawing; a report file gone is drawn again too."""
    import json

    from conftest import copy_built_data_dir
    from zi_warehouse import releases
    from zi_warehouse.reports.quarterly.command import write_report_if_changed

    data_dir = copy_built_data_dir(report["data_dir"], tmp_path / "data")
    monkeypatch.setenv("ZI_DATA_DIR", str(data_dir))
    first, _ = write_report_if_changed()
    assert first.html_path.parent == data_dir / "reports" / "quarterly" / first.period
    drawn_at = first.html_path.stat().st_mtime_ns
    again, drawn = write_report_if_changed()
    assert not drawn and again.html_path == first.html_path and again.figures == first.figures
    assert first.html_path.stat().st_mtime_ns == drawn_at

    manifest_path = releases.current_release(data_dir / "published") / releases.MANIFEST_FILE
    manifest_path.chmod(0o644)
    manifest = json.loads(manifest_path.read_text())
    mart = sorted(manifest["marts"])[0]
    manifest["marts"][mart]["checksum"] = "0" * 32  # what a publish with that mart changed writes
    manifest_path.write_text(json.dumps(manifest))
    _, drawn = write_report_if_changed()
    assert drawn and first.html_path.stat().st_mtime_ns != drawn_at
    assert not write_report_if_changed()[1]
    first.pdf_path.unlink()
    assert write_report_if_changed()[1] and first.pdf_path.exists()


def test_failed_checks_come_from_the_latest_run_of_mart_data_quality():
    """The scorecard's check part reads marts.mart_data_quality when present (its contract's columns)."""
    from zi_warehouse.reports.quarterly.figures import Section
    from zi_warehouse.reports.quarterly.sections.data_quality import failed_checks

    con = duckdb.connect()
    section = Section("data_quality", "Datenqualität")
    assert failed_checks(con, section) == [] and "nicht veröffentlicht" in section.notes[0]
    con.execute("create schema marts")
    con.execute("""create table marts.mart_data_quality (
        result_id varchar, run_id varchar, run_started_at timestamptz, is_latest_run boolean, check_kind varchar,
        source varchar, municipality_key varchar, municipality_name varchar, check_name varchar,
        description_de varchar, severity varchar, rows_evaluated bigint, rows_failed bigint, outcome varchar,
        example_values varchar, message_de varchar)""")
    rows = [  # run r1 is older: its failure must not count
        ("a", "r1", False, "suite", "mart_budget_year", None, None, "suite.old", "error", 10, 4, "failed", "alt"),
        ("b", "r2", True, "suite", "mart_budget_year", None, None, "suite.paid", "warn", 10, 1, "failed", "eine"),
        (
            "c",
            "r2",
            True,
            "reconciliation",
            "funding×forecasts",
            "herne",
            "Herne",
            "reconciliation.x",
            "error",
            5,
            2,
            "failed",
            "zwei",
        ),
        ("d", "r2", True, "freshness", "forecasts", "bochum", "Bochum", "freshness.q", "warn", 1, 0, "passed", "ok"),
    ]
    for r in rows:
        con.execute(
            "insert into marts.mart_data_quality values (?, ?, now(), ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, '[]', ?)",
            list(r),
        )
    section = Section("data_quality", "Datenqualität")
    [table] = failed_checks(con, section)
    assert {f.key: f.value for f in section.figures} == {
        "dq_checks_total": 3,
        "dq_checks_failed": 2,
        "dq_checks_failed_error": 1,
    }
    assert [row[3] for row in table.rows] == ["reconciliation.x", "suite.paid"]  # errors first
    assert table.rows[1][2] == "regionweit" and table.rows[0][4] == "Fehler"


def test_chromium_prints_with_a_long_temporary_folder_and_leaves_nothing_in_it(tmp_path, monkeypatch):
    """Chromium stopped with "Socket path too long" when TMPDIR was a deep folder (a test's, a service's): its
    singleton socket lives there. It now runs with /tmp then; the profile folder is removed afterwards."""
    import tempfile

    from zi_warehouse.reports.chromium import SINGLETON_SOCKET_SUFFIX, SOCKET_PATH_MAX, Browser, wait_for_closing

    deep = tmp_path / ("tief-" * 12) / "tmp"
    deep.mkdir(parents=True)
    assert len(str(deep) + SINGLETON_SOCKET_SUFFIX) > SOCKET_PATH_MAX
    monkeypatch.setenv("TMPDIR", str(deep))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    page = tmp_path / "seite.html"
    page.write_text("<html><body><h1>Bericht</h1></body></html>", encoding="utf-8")
    browser = Browser().start()
    try:
        pdf = browser.print_pdf(page, tmp_path / "seite.pdf")
    finally:
        browser.close(wait=False)
    wait_for_closing()
    assert pdf.read_bytes().startswith(b"%PDF")
    assert not list(deep.glob("zi-chromium-*"))


def test_a_quarter_still_running_at_the_funding_stichtag_is_left_out_of_forecast_accuracy():
    """Prognosegüte compares only quarters whose actual is complete; the ones left out are named, with the
    Stichtag of the funding data (a forecast for the running quarter against an actual of 0 said nothing)."""
    from zi_warehouse.reports.quarterly.sections.forecasts import FORECAST_MEASURES, section_forecast_accuracy

    measures = ", ".join(f"1.0 as forecast_{m}, 1.0 as actual_{m}" for m in FORECAST_MEASURES)
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute(
        "create table marts.mart_forecast_accuracy_municipality_quarter as "
        f"select period, year, quarter, true as has_forecast, year * 4 + quarter - 1 <= 8106 as is_actual_complete, "
        f"date '2026-11-15' as actual_as_of_date, {measures} "
        "from (values ('2026-Q2', 2026, 2), ('2026-Q3', 2026, 3), ('2026-Q4', 2026, 4)) as q(period, year, quarter)"
    )
    section = section_forecast_accuracy(con, "2026-Q4")
    (chart,) = section.charts
    assert [row[0] for row in chart.table.rows] == ["2026-Q2", "2026-Q3"]
    assert section.notes == [
        "Ohne 2026-Q4: am Stichtag der jüngsten Förderdaten (15.11.2026) noch nicht abgeschlossen, "
        "das Ist ist also noch unvollständig."
    ]
    assert not section_forecast_accuracy(con, "2026-Q3").notes
