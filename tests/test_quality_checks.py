"""The controlling layer's checks, without Dagster: every suite expectation, reconciliation and freshness rule
passes on the demo data and fails on data built to break it; results append to a history.

The demo warehouse is the session build (``demo_build``); each test that breaks data works on a private
copy of the working warehouse inside a transaction that is rolled back.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from zi_warehouse.quality import freshness, reconciliations, results, suites

REPO_ROOT = Path(__file__).resolve().parent.parent
#: A day on which every demo forecast and the demo climate data are due and delivered (Q3 2026 due 14.11.).
DEMO_FRESH_TODAY = dt.date(2026, 11, 27)
#: The day after the demo's last funding extract (zi_foerderung_023_delta_20260930).
DEMO_FUNDING_FRESH_TODAY = dt.date(2026, 10, 1)


@pytest.fixture(scope="module")
def warehouse_copy(demo_data_dir, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("quality_wh") / "zi.duckdb"
    shutil.copyfile(demo_data_dir / "warehouse" / "zi.duckdb", target)
    return target


@pytest.fixture()
def con(warehouse_copy):
    connection = duckdb.connect(str(warehouse_copy))
    connection.execute("begin transaction")
    yield connection
    connection.execute("rollback")
    connection.close()


def _failed(records) -> dict[tuple[str, str | None], results.CheckResult]:
    return {(r.check_name, r.municipality_key): r for r in records if not r.passed}


# --- suites --------------------------------------------------------------------------------------------------


def test_every_suite_passes_on_the_demo(con):
    records = suites.run_suites(con)
    assert records
    assert not _failed(records), sorted(_failed(records))[:10]
    marts = {r.source for r in records}
    assert marts == {s.mart for s in suites.suites()}


def _break(df: pd.DataFrame, spec: suites.MartSuite) -> pd.DataFrame:
    """The demo frame plus one row per expectation that violates exactly that expectation's column."""
    base = df.head(3)
    extra = []
    for e in spec.expectations:
        row = base.iloc[[0]].copy()
        if e.bad_value != "duplicate":
            column = e.example_columns[0]
            row[column] = row[column].astype(object)
            row.loc[row.index[0], column] = e.bad_value
        extra.append(row)
    broken = pd.concat([base, *extra], ignore_index=True)
    broken[suites.ROW_KEY] = range(len(broken))
    return broken


@pytest.mark.parametrize("mart", [s.mart for s in suites.suites()])
def test_every_expectation_fails_on_data_built_to_break_it(con, mart):
    spec = {s.mart: s for s in suites.suites()}[mart]
    broken = _break(suites.read_mart(con, mart), spec)
    records = suites.validate_frame(spec, broken)
    failed = {r.check_name for r in records if not r.passed}
    expected = {f"{mart}.{e.name}" for e in spec.expectations}
    assert failed == expected, f"not failing: {sorted(expected - failed)}"
    # failures are attributed to the municipality of the broken rows
    if "municipality_key" in broken.columns:
        muni = broken["municipality_key"].iloc[0]
        muni = None if pd.isna(muni) else muni
        assert any(r.municipality_key == muni and not r.passed for r in records)


@pytest.mark.parametrize("mart", [s.mart for s in suites.suites()])
def test_pre_screen_never_clears_what_gx_fails(con, mart):
    """The pandas pre-screen (suites.certainly_met) may only skip GX where GX would pass: on the demo frame and
    on the frame built to break every expectation, each expectation it clears also passes in GX itself."""
    spec = {s.mart: s for s in suites.suites()}[mart]
    demo = suites.read_mart(con, mart)
    _, batch_definition = suites._context()
    for df in (demo, _break(demo, spec)):
        batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
        for expect in spec.expectations:
            kind, kwargs = suites.expectation_spec(expect)
            if suites.certainly_met(kind, kwargs, df):
                gx_e = suites.gx_expectation(expect)
                assert batch.validate(gx_e).success, f"{mart}.{expect.name} cleared by the pre-screen but fails in GX"


@pytest.mark.parametrize("mart", [s.mart for s in suites.suites()])
def test_the_pre_screen_reads_each_expectation_as_gx_configures_it(mart):
    """The pre-screen learns an expectation's type and options without GX (``expectation_spec``): they must be
    exactly the class and configuration GX builds from the same factory, or it would judge another rule."""
    for expect in {s.mart: s for s in suites.suites()}[mart].expectations:
        gx_e = suites.gx_expectation(expect)
        assert suites.expectation_spec(expect) == (type(gx_e).__name__, dict(gx_e.configuration.kwargs)), expect.name


def test_clean_marts_are_validated_without_importing_gx(warehouse_copy, tmp_path):
    """A quality run whose every rule the pre-screen clears never imports Great Expectations (about 2 s in a
    fresh process); one broken rule brings GX in to judge it."""
    import subprocess
    import sys

    copy = tmp_path / "zi.duckdb"
    shutil.copyfile(warehouse_copy, copy)
    script = (
        "import sys, duckdb\n"
        "from zi_warehouse.quality import suites\n"
        f"con = duckdb.connect({str(copy)!r})\n"
        "failed = [r.check_name for r in suites.run_suites(con) if not r.passed]\n"
        "print(len(failed), 'great_expectations' in sys.modules)\n"
    )

    def run() -> list[str]:
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()

    assert run() == ["0", "False"]
    with duckdb.connect(str(copy)) as con:
        con.execute("insert into marts.mart_budget_year select * from marts.mart_budget_year limit 1")  # key twice
    assert run() == ["1", "True"]


def test_a_missing_mart_is_an_error(con):
    con.execute("drop table marts.mart_budget_year")
    specs = tuple(s for s in suites.suites() if s.mart in ("mart_budget_year", "dim_measure_type"))
    failed = _failed(suites.run_suites(con, specs))
    assert ("mart_budget_year.exists", None) in failed
    assert failed[("mart_budget_year.exists", None)].severity == "error"


# --- reconciliations -----------------------------------------------------------------------------------------


def test_every_reconciliation_passes_on_the_demo(con):
    records = reconciliations.run_reconciliations(con)
    assert {r.check_name for r in records} == {f"reconciliation.{n}" for n in reconciliations.CATALOGUE}
    assert not _failed(records), sorted(_failed(records))


def _one_measure(con, where="true"):
    return con.execute(
        f"select measure_id, municipality_key from marts.fct_measure where {where} order by measure_id limit 1"
    ).fetchone()


def test_paid_above_approved_fails_for_that_municipality(con):
    measure_id, muni = _one_measure(con, "approved_eur > 0")
    con.execute("update marts.fct_measure set paid_eur = approved_eur + 100 where measure_id = ?", [measure_id])
    failed = _failed(reconciliations.paid_within_approved(con))
    result = failed[("reconciliation.paid_within_approved", muni)]
    assert result.severity == "error" and result.rows_failed == 1
    assert result.examples[0]["measure_id"] == measure_id
    assert len(failed) == 1


def test_paid_above_approved_cumulated_for_the_region_fails(con):
    con.execute(
        "update marts.mart_budget_year set paid_eur_cumulative = approved_eur_cumulative + 1 "
        "where year = (select max(year) from marts.mart_budget_year)"
    )
    failed = _failed(reconciliations.paid_within_approved(con))
    assert failed[("reconciliation.paid_within_approved", None)].rows_failed == 1


def test_approved_above_envelope_warns(con):
    con.execute(
        "update marts.mart_budget_year set approved_eur_cumulative = envelope_eur_cumulative + 1 where year = 2020"
    )
    failed = _failed(reconciliations.approved_within_envelope(con))
    assert failed[("reconciliation.approved_within_envelope", None)].severity == "warn"
    assert failed[("reconciliation.approved_within_envelope", None)].examples[0]["year"] == 2020


def test_region_not_the_sum_of_municipalities_fails(con):
    con.execute(
        "update marts.mart_kpi_region_year set disconnected_planned_m2 = disconnected_planned_m2 + 10 "
        "where region_key = 'rvr' and year = 2025"
    )
    con.execute("update marts.mart_budget_year set paid_eur = paid_eur + 1 where year = 2021")
    failed = _failed(reconciliations.region_equals_sum_of_municipalities(con))
    result = failed[("reconciliation.region_equals_sum_of_municipalities", None)]
    assert result.severity == "error" and result.rows_failed == 2
    assert {(e["mart"], e["year"]) for e in result.examples} == {
        ("mart_kpi_region_year", 2025),
        ("mart_budget_year", 2021),
    }


def test_disconnecting_more_than_connected_fails(con):
    measure_id, muni = _one_measure(con, "is_completed")
    con.execute("update marts.fct_measure set disconnected_area_m2 = 1e12 where measure_id = ?", [measure_id])
    failed = _failed(reconciliations.disconnected_within_connected_area(con))
    assert set(failed) == {("reconciliation.disconnected_within_connected_area", muni)}
    assert failed[("reconciliation.disconnected_within_connected_area", muni)].severity == "error"


def test_funding_project_missing_from_forecasts_warns(con):
    project_id, muni = con.execute(
        "select project_id, municipality_key from intermediate.int_funding__applications "
        "where not is_deleted order by 1 limit 1"
    ).fetchone()
    con.execute("delete from intermediate.int_forecasts__current_projects where project_id = ?", [project_id])
    failed = _failed(reconciliations.funding_projects_in_forecasts(con))
    result = failed[("reconciliation.funding_projects_in_forecasts", muni)]
    assert result.severity == "warn" and result.examples[0]["project_id"] == project_id


def test_forecast_project_missing_from_funding_warns(con):
    project_id, muni = con.execute(
        "select project_id, municipality_key from intermediate.int_forecasts__current_projects "
        f"where status_key in {reconciliations.FILED_STATUSES} order by 1 limit 1"
    ).fetchone()
    con.execute(
        "update intermediate.int_funding__applications set project_id = 'X-' || project_id where project_id = ?",
        [project_id],
    )
    failed = _failed(reconciliations.forecast_projects_in_funding(con))
    assert failed[("reconciliation.forecast_projects_in_funding", muni)].examples[0]["project_id"] == project_id


# --- freshness -----------------------------------------------------------------------------------------------


def test_due_dates_follow_the_configured_days(monkeypatch):
    assert freshness.due_date(2026, 3, 45) == dt.date(2026, 11, 14)
    assert freshness.latest_due_quarter(dt.date(2026, 11, 14), 45) == (2026, 3)
    assert freshness.latest_due_quarter(dt.date(2026, 11, 13), 45) == (2026, 2)
    assert freshness.latest_due_quarter(dt.date(2026, 2, 1), 45) == (2025, 3)
    monkeypatch.setenv("ZI_FORECAST_DUE_DAYS", "20")
    assert freshness.forecast_due_days() == 20


def test_freshness_passes_on_the_demo(con):
    records = freshness.run_freshness(con, DEMO_FRESH_TODAY)
    forecasts = [r for r in records if r.check_name == "freshness.forecasts_due"]
    reporting = con.execute(
        "select count(distinct municipality_key) from staging.stg_forecasts__submissions"
    ).fetchone()[0]
    assert len(forecasts) == reporting
    assert all(r.passed for r in forecasts), [r.message_de for r in forecasts if not r.passed]
    assert all(r.passed for r in records if r.check_name == "freshness.climate_monthly")
    assert len([r for r in records if r.check_name == "freshness.climate_monthly"]) == 53
    assert all(r.passed for r in freshness.funding_extract_fresh(con, DEMO_FUNDING_FRESH_TODAY))


def test_missing_forecast_is_flagged_for_exactly_the_municipalities_without_a_file(con, demo_data_dir):
    # Take the latest reporting quarter, withdraw two municipalities' submissions for it (inside the
    # test's transaction), and evaluate just after that quarter fell due (45 days after quarter end).
    period = con.execute("select max(reporting_period) from staging.stg_forecasts__submissions").fetchone()[0]
    assert any((demo_data_dir / "landing" / "forecasts").rglob(f"*{period}*"))
    withdrawn = {
        m
        for (m,) in con.execute(
            "select distinct municipality_key from raw.forecasts__submissions where reporting_period = ? "
            "order by 1 limit 2",
            [period],
        ).fetchall()
    }
    con.execute(
        "delete from raw.forecasts__submissions where reporting_period = ? and municipality_key in "
        "(select unnest(?::varchar[]))",
        [period, sorted(withdrawn)],
    )
    delivered = {
        m
        for (m,) in con.execute(
            "select distinct municipality_key from staging.stg_forecasts__submissions where reporting_period = ?",
            [period],
        ).fetchall()
    }
    reporting = {
        m
        for (m,) in con.execute(
            "select distinct municipality_key from staging.stg_forecasts__submissions where reporting_period <= ?",
            [period],
        ).fetchall()
    }
    year, quarter = int(period[:4]), int(period[-1])
    quarter_end = dt.date(year + (quarter == 4), quarter * 3 % 12 + 1, 1) - dt.timedelta(days=1)
    today = quarter_end + dt.timedelta(days=46)
    failed = {r.municipality_key for r in freshness.forecasts_due(con, today, 45) if not r.passed}
    assert len(withdrawn) == 2 and withdrawn <= failed
    assert failed == reporting - delivered


def test_late_forecast_is_flagged(con):
    muni = con.execute(
        "select min(municipality_key) from staging.stg_forecasts__submissions where reporting_period = '2026-Q3'"
    ).fetchone()[0]
    # one day less to deliver than the demo municipalities took
    latest = con.execute(
        "select max(submitted_on) from staging.stg_forecasts__submissions "
        "where reporting_period = '2026-Q3' and municipality_key = ?",
        [muni],
    ).fetchone()[0]
    due_days = (latest - freshness.quarter_end(2026, 3)).days - 1
    records = freshness.forecasts_due(con, DEMO_FRESH_TODAY, due_days)
    result = next(r for r in records if r.municipality_key == muni)
    assert not result.passed and "verspätet" in result.message_de and result.severity == "warn"


def test_old_funding_extract_and_old_climate_data_are_flagged(con):
    assert not freshness.funding_extract_fresh(con, DEMO_FRESH_TODAY)[0].passed  # last extract 30.09.2026
    climate = freshness.climate_monthly(con, DEMO_FRESH_TODAY + dt.timedelta(days=120))
    assert len(climate) == 53 and not any(r.passed for r in climate)


# --- results history -----------------------------------------------------------------------------------------


def test_results_append_history_with_a_new_run_id(con):
    records = [
        results.CheckResult(
            "suite",
            "mart_x",
            "mart_x.key_unique",
            "error",
            "Schlüssel eindeutig",
            10,
            2,
            municipality_key="bochum",
            examples=[{"key": 1, "contact_email": "a@b.de"}],
        )
    ]
    first = results.append_results(con, records)
    second = results.append_results(con, records)
    assert first != second
    rows = con.execute(
        f"select run_id, outcome, example_values from {results.RESULTS_QUALIFIED} "
        "where check_name = 'mart_x.key_unique'"
    ).fetchall()
    assert len(rows) == 2 and {r[1] for r in rows} == {"failed"}
    assert "contact_email" not in rows[0][2] and json.loads(rows[0][2]) == ["key=1"]
    results.append_results(con, records, run_id=second)  # a retried step replaces its own records
    assert (
        con.execute(
            f"select count(*) from {results.RESULTS_QUALIFIED} where check_name = 'mart_x.key_unique'"
        ).fetchone()[0]
        == 2
    )


def test_staging_pre_hook_creates_the_table_with_the_results_columns():
    sql = (REPO_ROOT / "models/staging/quality/stg_quality__data_quality_results.sql").read_text()
    ddl = re.search(r"raw\.data_quality_results \((.*?)\)\"", sql, re.S)[1]
    columns = [part.split()[0] for part in ddl.replace("\n", " ").split(",")]
    assert columns == results.RESULTS_SCHEMA.names
