"""The quality report as a reader sees it, rendered in headless Chromium.

- A constructed run with everything a report can hold (a blocking check for one municipality and one for the
  region, warnings, a late and a missing forecast, rejected rows, feedback workbooks with long names, long
  example values): the summary on top names what blocks, what warns and which forecasts are late, each
  linking to the details below; every link has its anchor; laid out for A4 print and in a 1280 px laptop
  window no element is wider than the page; no internal key and no server path is shown; times are local.
- The report the demo build wrote: the same layout and wording checks on real data, summary in the first
  screen.
"""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from zi_warehouse import config, reference
from zi_warehouse.quality import results as qr
from zi_warehouse.reports.chromium import Browser, rendered_dom
from zi_warehouse.reports.quality import PipelineCheck, render, report_data, write_report

try:  # tests/ is not a package; pytest puts it on sys.path
    from report_layout import describe, overflowing_elements, printable_width_px, visible_text
except ImportError:  # pragma: no cover - when tests/ becomes a package
    from tests.report_layout import describe, overflowing_elements, printable_width_px, visible_text

LAPTOP_WIDTH_PX = 1280


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


#: German descriptions of the constructed checks (what mart_data_quality.description_de holds).
DESCRIPTIONS = {
    "reconciliation.paid_within_approved": "Ausgezahlt ≤ bewilligt je Maßnahme",
    "reconciliation.approved_within_envelope": "Bewilligt ≤ Plafond, kumuliert",
    "mart_budget_year.paid_eur_non_negative": "Ausgezahlte EUR sind nicht negativ",
    "mart_budget_year.year_unique": "Jedes Jahr einmal",
    "freshness.funding_extract_daily": "Förderdaten-Extrakt täglich",
    "freshness.forecasts_due": "Quartalsprognose fristgerecht",
}


def _result(kind, source, name, severity, failed, muni=None, message="", examples=(), evaluated=10):
    return qr.CheckResult(
        kind,
        source,
        name,
        severity,
        DESCRIPTIONS[name],
        evaluated,
        failed,
        municipality_key=muni,
        examples=list(examples),
        message_de=message,
    )


def constructed_run(data_dir: Path) -> tuple[Path, dict]:
    """A working warehouse with one quality run and rejected rows; returns its path and what it holds."""
    paths = config.Paths(data_dir).ensure()
    con = duckdb.connect(str(paths.warehouse))
    long_example = "approval_id=ZI-B-2021-000123, paid_eur=1234567.89, approved_eur=1184567.89, " + "x" * 60
    results = [
        _result(
            "reconciliation",
            "funding×forecasts",
            "reconciliation.paid_within_approved",
            "error",
            2,
            "herne",
            "2 Bewilligungen mit Auszahlungen über dem bewilligten Betrag.",
            [long_example, "ZI-B-2022-000007"],
        ),
        _result(
            "reconciliation",
            "fct_measure×mart_budget_year",
            "reconciliation.approved_within_envelope",
            "error",
            1,
            None,
            "Bewilligt über Plafond in 2024.",
            ["year=2024"],
        ),
        _result(
            "suite",
            "mart_budget_year",
            "mart_budget_year.paid_eur_non_negative",
            "warn",
            1,
            None,
            "1 Zeile verletzt die Erwartung.",
            ["-5.00"],
        ),
        _result("suite", "mart_budget_year", "mart_budget_year.year_unique", "error", 0),
        _result(
            "freshness",
            "funding",
            "freshness.funding_extract_daily",
            "warn",
            1,
            None,
            "Letzter Förderdaten-Extrakt vom 01.10.2026 (3 Tage alt).",
            [],
            1,
        ),
    ]
    due = ("freshness", "forecasts", "freshness.forecasts_due", "warn")
    results += [
        _result(
            *due,
            1,
            "bochum",
            "Prognose 2026-Q3 verspätet eingereicht am 20.11.2026 (fällig am 14.11.2026).",
            ["period=2026-Q3"],
            1,
        ),
        _result(*due, 1, "essen", "Prognose 2026-Q3 fehlt (fällig am 14.11.2026).", ["period=2026-Q3"], 1),
        _result(*due, 0, "dortmund", "Prognose 2026-Q3 fristgerecht am 10.11.2026 eingereicht.", [], 1),
    ]
    started = dt.datetime(2026, 12, 1, 6, 30, tzinfo=dt.UTC)  # 07:30 MEZ
    run_id = qr.append_results(con, results, run_started_at=started)
    con.execute("create schema marts")
    # Herne: rows 5 and 6 rejected, row 6 for two reasons, and a file notice (no row): 2 rows, 3 reasons.
    con.execute("""create table marts.mart_rejected_rows as select * from (values
        ('forecasts', 'herne', 'required', 'forecasts/h.xlsx', 'Projekte', 5),
        ('forecasts', 'herne', 'required', 'forecasts/h.xlsx', 'Projekte', 6),
        ('forecasts', 'herne', 'type', 'forecasts/h.xlsx', 'Projekte', 6),
        ('forecasts', 'herne', 'file_name_period_mismatch', 'forecasts/h.xlsx', null, null),
        ('trees', 'bochum', 'height_plausible', 'trees/b.csv', null, 12),
        ('surfaces', 'essen', 'area_m2_positive', 'surfaces/e.csv', null, 3),
        ('funding', null, 'unknown_measure_type', 'funding/delta_024.csv', null, 2))
        v(source_family, municipality_key, rule, source_file, sheet, row_number)""")
    # a DWD archive refused as a whole: no municipality, no row (the report reads the ledger, as ingests write it)
    con.execute("""create table raw.ingestion_files as select * from (values
        ('climate', 'tageswerte_KL_13670_akt.zip', 'failed', 'file_unreadable'),
        ('forecasts', 'h.xlsx', 'partially_loaded', null))
        v(source_family, file_name, outcome, error_rule)""")
    con.close()
    feedback = paths.feedback / "forecasts" / "herne"
    feedback.mkdir(parents=True)
    long_name = "2026-Q3_Quartalsmeldung_Herne_Stadtentwaesserung_Abteilung_Klimaanpassung_2026-Q3_Rueckmeldung.xlsx"
    (feedback / long_name).write_bytes(b"")
    return paths.warehouse, {"run_id": run_id, "started": started, "results": results, "paths": paths}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.order: list[str] = []  # ids of the top-level parts in page order

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
            self.order.append(a["id"])
        if tag == "a" and a.get("href", "").startswith("#"):
            self.hrefs.append(a["href"][1:])


def _section_text(html: str, element_id: str) -> str:
    """Visible text of the element with ``element_id`` (one that holds no element of its own kind)."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, element_id
    return visible_text(match.group(2))


@pytest.fixture(scope="module")
def constructed(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("quality_report")
    warehouse, run = constructed_run(data_dir)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        written = write_report(con, run["paths"])
    finally:
        con.close()
    html = rendered_dom(written.index_path)
    return {"report": written, "html": html, "data_dir": data_dir, **run}


def test_summary_on_top_names_what_blocks_warns_and_is_late(constructed):
    html = constructed["html"]
    links = _Links()
    links.feed(html)
    order = [
        i
        for i in links.order
        if i
        in (
            "status",
            "glance-blocking",
            "glance-warnings",
            "glance-forecasts",
            "scorecard",
            "einzelheiten",
            "kommune-herne",
            "regionweit",
            "alle-pruefungen",
        )
    ]
    assert order == [
        "status",
        "glance-blocking",
        "glance-warnings",
        "glance-forecasts",
        "scorecard",
        "einzelheiten",
        "kommune-herne",
        "regionweit",
        "alle-pruefungen",
    ]
    assert 'data-status="blocked"' in html
    blocking = _section_text(html, "glance-blocking")
    # checks with their own row in the rule texts are named by it, with what to do
    paid = reference.rule_text("reconciliation.paid_within_approved", "quality_check")
    assert f"{paid.label_de}: Herne {paid.explanation_de}" in blocking
    envelope = reference.rule_text("reconciliation.approved_within_envelope", "quality_check")
    assert f"{envelope.label_de}: regionweit" in blocking
    assert re.search(r'id="glance-blocking".*?href="#kommune-herne"', html, re.S)
    warnings = _section_text(html, "glance-warnings")
    # a generated suite check: the pattern's label and the check's own description (naming the column)
    negative = reference.rule_text("mart_budget_year.paid_eur_non_negative", "quality_check")
    assert f"{negative.label_de}: Ausgezahlte EUR sind nicht negativ: regionweit" in warnings
    extract = reference.rule_text("freshness.funding_extract_daily", "quality_check").label_de
    assert f"{extract}: regionweit" in warnings
    due = reference.rule_text("freshness.forecasts_due", "quality_check").label_de
    assert f"{due}: Bochum Essen" in warnings
    late = _section_text(html, "glance-forecasts")
    assert "Bochum: verspätet" in late and "Essen: fehlt" in late and "Dortmund" not in late
    # every link of the page has its target, and every municipality with a finding has its details
    assert set(links.hrefs) <= links.ids, sorted(set(links.hrefs) - links.ids)
    assert {"kommune-herne", "kommune-bochum", "kommune-essen"} <= links.ids
    assert "kommune-dortmund" not in links.ids  # on time, nothing rejected: listed under "Ohne Befund"
    assert "Dortmund" in _section_text(html, "ohne-befund")


def test_failed_pipeline_checks_count_in_what_blocks_and_warns(constructed):
    # Dagster asset checks outside mart_data_quality (here a funding warning and a blocking row accounting)
    # stand in the summary with their German label, and count, as zi build's summary counts them.
    at = dt.datetime(2026, 12, 1, 6, 35, tzinfo=dt.UTC)
    checks = [
        PipelineCheck("intermediate/int_funding__approvals", "funding_approved_within_requested", "warn", at),
        PipelineCheck("raw_forecasts/forecasts__projects", "forecast_row_accounting", "error", at),
    ]
    con = duckdb.connect(str(constructed["paths"].warehouse), read_only=True)
    try:
        without = report_data(con, constructed["paths"])
        data = report_data(con, constructed["paths"], pipeline_checks=checks)
    finally:
        con.close()
    assert data["failed_warn"] == without["failed_warn"] + 1
    assert data["failed_error"] == without["failed_error"] + 1
    html = render(data)
    warnings, blocking = _section_text(html, "glance-warnings"), _section_text(html, "glance-blocking")
    approved = reference.rule_text("funding_approved_within_requested", "asset_check")
    assert f"{approved.label_de}: Prüfung der Pipeline, zuletzt am 01.12.2026 07:35 MEZ" in warnings
    assert approved.explanation_de in warnings
    assert reference.rule_text("forecast_row_accounting", "asset_check").label_de in blocking
    assert "funding_approved_within_requested" not in visible_text(html)  # the key only in data-check


def test_rejected_rows_are_counted_once_however_many_reasons(constructed):
    # The ledger's "rows rejected": a row with two reasons is one row, a file notice is none.
    html = constructed["html"]
    assert (
        "Abgewiesene Zeilen: 2. Je Grund (eine Zeile kann mehrere Gründe haben; ein Hinweis zur Datei"
        in _section_text(html, "kommune-herne")
    )
    card = re.search(r'<h2>Abgewiesene Zeilen</h2>\s*<div class="count">([^<]+)</div>', html)
    assert card and card.group(1).strip() == "5"  # Herne 2, Bochum 1, Essen 1, a funding row of no municipality


def test_rejections_of_no_municipality_and_files_refused_whole_are_in_the_summary(constructed):
    """Funding extracts and DWD files name no municipality: their rejected rows and refused files are counted
    and named at the top, not only in the marts (the per-municipality view cannot show them)."""
    box = _section_text(constructed["html"], "glance-rejected")
    assert "Förderdaten: 1 (davon 1 keiner Kommune zugeordnet)" in box
    assert "Prognosen: 2" in box and "Prognosen: 2 (davon" not in box
    assert (
        "Ganze Dateien abgewiesen oder zurückgehalten: 1" in box and 'href="#dateien-abgewiesen"' in constructed["html"]
    )
    listed = _section_text(constructed["html"], "files-refused")
    assert listed == "Klimadaten: tageswerte_KL_13670_akt.zip (abgewiesen: Klimadatei nicht lesbar)"


def test_a_later_build_stopped_by_a_blocking_check_turns_the_latest_report_red(tmp_path):
    """A build stopped by a blocking pipeline check before its quality step writes no report of its own; the
    latest report (`zi quality-report`) then says that publishing is withheld. A failure evaluated before this
    run's checks (and not again since) is listed, but did not withhold anything after it."""
    paths = config.Paths(tmp_path).ensure()
    started = dt.datetime(2026, 12, 1, 6, 30, tzinfo=dt.UTC)
    with duckdb.connect(str(paths.warehouse)) as con:
        qr.append_results(
            con,
            [_result("suite", "mart_budget_year", "mart_budget_year.year_unique", "error", 0)],
            run_started_at=started,
        )
    sequence = ("raw_funding_db/funding_db_extracts", "funding_delta_sequence_complete", "error")
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        data = {
            when: report_data(
                con, paths, pipeline_checks=[PipelineCheck(*sequence, started + dt.timedelta(hours=hours))]
            )
            for when, hours in (("later", 24), ("earlier", -24))
        }
    assert data["later"]["is_publishing_blocked"] and not data["earlier"]["is_publishing_blocked"]
    assert 'data-status="blocked"' in render(data["later"]) and 'data-status="ok"' in render(data["earlier"])
    label = reference.rule_text("funding_delta_sequence_complete", "asset_check").label_de
    assert label in _section_text(render(data["earlier"]), "glance-blocking")  # still listed


def test_a_dagster_check_of_one_mart_rule_is_named_as_the_report_names_the_rule():
    # zi build lists "freshness_funding_extract_daily" (a Dagster check); the report lists the rule
    # "freshness.funding_extract_daily": a person matching the two by their label must find the same words.
    from zi_warehouse.reports.labels import asset_check_label

    for kind, rule in (("freshness", "funding_extract_daily"), ("reconciliation", "paid_within_approved")):
        assert asset_check_label(f"{kind}_{rule}") == check_label_of(f"{kind}.{rule}")
    assert asset_check_label("funding_approved_within_requested") == "Bewilligt mehr als beantragt"


def check_label_of(check_name: str) -> str:
    return reference.rule_text(check_name, "quality_check").label_de


def test_every_failed_result_appears_once_in_the_details(constructed):
    html = constructed["html"]
    rows = re.findall(r'<tr data-check="([^"]+)" data-municipality="([^"]*)" data-severity="(\w+)"', html)
    failed = [(r.check_name, r.municipality_key or "", r.severity) for r in constructed["results"] if not r.passed]
    assert sorted(rows) == sorted(failed)
    assert len(re.findall(r'<tr data-municipality="', html)) == len(reference.municipalities())


@pytest.mark.parametrize("media,width", [("print", None), ("screen", LAPTOP_WIDTH_PX)])
def test_no_element_is_wider_than_the_page_or_window(constructed, browser, media, width):
    path = constructed["report"].index_path
    width = width or printable_width_px(path.read_text(encoding="utf-8"))
    found = overflowing_elements(browser, path, media=media, width_px=width)
    assert not found["found"], f"{media}, {width} px:\n" + describe(found)


def internal_keys(results) -> set[str]:
    keys = {r.check_name for r in results} | {r.check_kind for r in results} | {r.severity for r in results}
    keys |= {"passed", "failed", "forecasts", "funding", "trees", "surfaces", "climate"}
    keys |= {
        "required",
        "type",
        "height_plausible",
        "area_m2_positive",
        "file_name_period_mismatch",
    }  # rules of the run
    return keys


def test_no_internal_key_or_server_path_is_shown(constructed):
    text = visible_text(constructed["html"])
    shown = sorted(
        k for k in internal_keys(constructed["results"]) if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w])", text)
    )
    assert not shown, f"interne Schlüssel im Bericht: {shown}"
    assert str(constructed["data_dir"]) not in constructed["html"]
    assert not re.search(r"(?:^|\s)/(?:[^\s/]+/)+", text)
    # the feedback workbook is linked relative to the report (it opens wherever the data directory is mounted)
    assert re.search(r'href="\.\./\.\./\.\./feedback/forecasts/herne/2026-Q3_[^"]+\.xlsx"', constructed["html"])


def test_times_are_local_with_the_zone_named(constructed):
    text = visible_text(constructed["html"])
    assert "01.12.2026 07:30 MEZ" in text  # the run started 06:30 UTC
    assert "UTC" not in text


def test_the_demo_builds_report_reads_well(demo_build, browser):
    path = demo_build["data_dir"] / "reports" / "quality" / "latest" / "index.html"
    html = path.read_text(encoding="utf-8")
    for media, width in (("print", printable_width_px(html)), ("screen", LAPTOP_WIDTH_PX)):
        found = overflowing_elements(browser, path, media=media, width_px=width)
        assert not found["found"], f"{media}, {width} px:\n" + describe(found)
    # the summary is in the first screen of a laptop
    top = browser.evaluate(
        path,
        "document.getElementById('glance').getBoundingClientRect().bottom",
        width_px=LAPTOP_WIDTH_PX,
        height_px=800,
    )
    assert top < 800, top
    con = duckdb.connect(str(demo_build["data_dir"] / "warehouse" / "zi.duckdb"), read_only=True)
    try:
        keys = {v for (v,) in con.execute("select distinct check_name from raw.data_quality_results").fetchall()}
        keys |= {v for (v,) in con.execute("select distinct rule from marts.mart_rejected_rows").fetchall()}
        keys |= {v for (v,) in con.execute("select distinct source_family from marts.mart_ingestion_files").fetchall()}
    finally:
        con.close()
    # The folded list of every mart check quotes each check's own description, which names columns and
    # their allowed values as the data holds them ("Quelle ist ein zulässiger Wert (climate, forecasts, …)");
    # everything a reader sees unfolded must use labels.
    dom = rendered_dom(path)
    text = visible_text(re.sub(r"<details>.*?</details>", "", dom, flags=re.S))
    shown = sorted(k for k in keys if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w])", text))
    assert not shown, f"interne Schlüssel im Bericht: {shown[:20]}"
    assert str(demo_build["data_dir"]) not in html
    # What zi build's summary lists as warnings outside the marts' suites, the report's "Was warnt" lists too.
    warned = re.findall(r"Warnung .*\(([^()]+):(\w+)\)$", demo_build["stdout"], re.M)
    outside = {name for asset, name in warned if asset != "marts/mart_data_quality"}
    assert outside, "the demo build warned about no pipeline check: nothing to compare"
    box = re.search(r'id="glance-warnings".*?</section>', html, re.S).group(0)
    assert outside <= set(re.findall(r'data-check="([^"]+)"', box)), (outside, box[:500])


_HOLD_LOCK = """
import sys, time
from pathlib import Path
from zi_warehouse import writer_lock
with writer_lock.hold(Path(sys.argv[1]), run_id="", launched_by="zi build"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_zi_quality_report_waits_for_a_build_and_says_where_it_wrote(constructed):
    """Beside a build, `zi quality-report` opened the working file and one of the two failed on DuckDB's lock;
    now it waits for the writer lock like `zi build`, then writes and names the report."""
    import os
    import subprocess
    import sys
    import time

    data_dir = constructed["data_dir"]
    env = {**os.environ, "ZI_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(config.Paths(data_dir).warehouse_dir), "4"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "zi"), "quality-report"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "läuft bereits ein Build" in proc.stdout and "zi quality-report wartet" in proc.stdout
    assert waited >= 2.5  # it did not open the warehouse before the holder let go
    report = constructed["report"]
    assert f"Datenqualitätsbericht des Laufs {report.run_id[:8]}" in proc.stdout
    # blocking failures and warnings apart, as the report's summary counts them (a warning is no failure)
    assert 0 < report.checks_warned < report.checks_failed
    blocking, warned = report.checks_failed - report.checks_warned, report.checks_warned
    errors_de = f"{blocking} blockierender Fehler" if blocking == 1 else f"{blocking} blockierende Fehler"
    assert f"{errors_de}, {warned} Warnung" in proc.stdout
    assert str(report.latest_path) in proc.stdout


def test_zi_quality_report_without_a_warehouse_says_so_and_creates_nothing(tmp_path):
    import os
    import subprocess
    import sys

    data_dir = tmp_path / "leer"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "zi"), "quality-report"],
        capture_output=True,
        text=True,
        env={**os.environ, "ZI_DATA_DIR": str(data_dir), "COLUMNS": "200"},
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Fehler: Kein Warehouse unter" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    assert not data_dir.exists()


def test_the_latest_report_after_a_build_stopped_by_a_gap_in_the_funding_deltas_is_red(demo_build, tmp_path):
    """A delta taken out of the sequence: the blocking check stops the build before its quality step, so that build
    writes no report; `zi quality-report` then shows the check, with the missing file, in a red report."""
    from conftest import copy_built_data_dir, run_zi

    data_dir = copy_built_data_dir(demo_build["data_dir"], tmp_path / "data", with_instance=True)
    gap = sorted((data_dir / "landing" / "funding").glob("zi_foerderung_*_delta_*_antraege.csv"))[-2]
    gap.unlink()
    unreadable = sorted((data_dir / "landing" / "funding").glob("zi_foerderung_*_delta_*_zahlungen.csv"))[-1]
    unreadable.write_text("kein Extrakt\n", encoding="utf-8")  # refused as a whole by this build's ingest
    good_reports = {p: p.read_bytes() for p in (data_dir / "reports" / "quality").glob("2*/index.html")}
    assert good_reports, "the demo build wrote its quality report"
    build = run_zi(data_dir, "build", check=False)
    assert build.returncode == 1 and "Nichts veröffentlicht" in build.stdout, build.stdout
    stopped = re.search(r"Dagster-Lauf ([0-9a-f-]{36})", build.stdout).group(1)
    out = run_zi(data_dir, "quality-report").stdout
    # The report is the stopped run's, in a folder of its own; the last good run's report stays as it was.
    assert f"nach Lauf {stopped[:8]}" in out, out
    assert [p for p in good_reports if p.read_bytes() != good_reports[p]] == []
    [own] = (data_dir / "reports" / "quality").glob(f"2*_{stopped[:8]}/index.html")
    html = (data_dir / "reports" / "quality" / "latest" / "index.html").read_text(encoding="utf-8")
    assert html == own.read_text(encoding="utf-8") and stopped in _section_text(html, "blocked-by")
    assert "Prüfergebnisse dieses Laufs" not in html  # they are the earlier run's
    assert unreadable.name in _section_text(html, "files-refused")  # from the ledger: dbt did not run
    assert 'data-status="blocked"' in html
    blocking = _section_text(html, "glance-blocking")
    assert reference.rule_text("funding_delta_sequence_complete", "asset_check").label_de in blocking
    seq = gap.name.split("_")[2]
    assert f"zi_foerderung_{seq}_*_antraege.csv (fehlt)" in blocking  # the check's own words name the file
