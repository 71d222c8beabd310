"""The KPIs recomputed by hand from fct_measure, the parcel surfaces and the factor table equal the mart.

An independent Python implementation of docs/domain.md#kpis (not the SQL of the marts): if a join, a filter
or a formula in the dbt models changes the figures, this test disagrees.
"""

from __future__ import annotations

import csv

import duckdb
import pandas as pd
import pytest

from zi_warehouse.config import SEEDS_DIR

BASELINE_YEAR = 2020


@pytest.fixture(scope="module")
def warehouse(demo_build):
    con = duckdb.connect(str(demo_build["data_dir"] / "warehouse" / "zi.duckdb"), read_only=True)
    yield con
    con.close()


def _element_kinds() -> dict[str, str]:
    with open(SEEDS_DIR / "surface_types.csv", encoding="utf-8") as fh:
        return {r["element_type"]: r["element_kind"] for r in csv.DictReader(fh)}


def _recompute(con, municipality: str, year: int) -> dict:
    parcels = con.execute(
        "select area_m2, surface_type, sewer_connection from staging.stg_surfaces__parcels where municipality_key = ?",
        [municipality],
    ).df()
    factors = (
        con.execute(
            "select element_type, runoff_share_a, evaporation_share_v from intermediate.int_water_balance__factors "
            "where municipality_key = ?",
            [municipality],
        )
        .df()
        .set_index("element_type")
    )
    measures = con.execute(
        "select * from marts.fct_measure where municipality_key = ? and status_key not in ('withdrawn', 'rejected')",
        [municipality],
    ).df()
    completed = measures[measures["completion_date"].notna()]
    completed = completed[pd.to_datetime(completed["completion_date"]).dt.year <= year]

    connected = parcels.loc[parcels["sewer_connection"] == "combined", "area_m2"].sum()
    total_area = parcels["area_m2"].sum()
    v = parcels["surface_type"].map(factors["evaporation_share_v"])
    baseline_weighted = (parcels["area_m2"] * v).sum()

    kinds = _element_kinds()
    change = 0.0
    for m in completed.itertuples():
        before, after = m.affected_surface_type, m.surface_after_type
        if not isinstance(before, str) or not isinstance(after, str) or pd.isna(m.surface_change_m2):
            continue
        if kinds[after] == "facility":  # runoff of the old surface routed into the facility
            change += (
                m.surface_change_m2 * factors.loc[before, "runoff_share_a"] * factors.loc[after, "evaporation_share_v"]
            )
        else:  # the surface itself is replaced
            change += m.surface_change_m2 * (
                factors.loc[after, "evaporation_share_v"] - factors.loc[before, "evaporation_share_v"]
            )
    return {
        "baseline_connected_area_m2": connected,
        "disconnection_rate_actual_pct": 100 * completed["disconnected_area_m2"].fillna(0).sum() / connected,
        "evaporation_rate_baseline_pct": 100 * baseline_weighted / total_area,
        "evaporation_change_actual_pp": 100 * change / total_area,
    }


def test_disconnection_and_evaporation_recomputed_by_hand_equal_the_mart(warehouse):
    municipality, year = warehouse.execute(
        "select municipality_key, max(year(completion_date)) from marts.fct_measure where is_completed "
        "group by 1 order by count(*) desc, 1 limit 1"
    ).fetchone()
    expected = _recompute(warehouse, municipality, year)
    row = warehouse.execute(
        "select baseline_connected_area_m2, disconnection_rate_actual_pct, evaporation_rate_baseline_pct, "
        "evaporation_change_actual_pp from marts.mart_kpi_municipality_year where municipality_key = ? and year = ?",
        [municipality, year],
    ).fetchone()
    actual = dict(zip(expected, row))
    assert expected["disconnection_rate_actual_pct"] > 0  # the demo has completed measures here
    assert expected["evaporation_change_actual_pp"] != 0
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


def test_region_is_sum_of_municipalities_and_2020_budget_is_calibrated(warehouse):
    ideas, applications, requested, approvals = warehouse.execute(
        "select project_ideas, applications, requested_eur, approvals from marts.mart_budget_year where year = 2020"
    ).fetchone()
    assert (ideas, applications, float(requested), approvals) == (91, 64, 5_200_000.0, 60)
    region, summed = warehouse.execute(
        "select r.disconnected_actual_m2, (select sum(disconnected_actual_m2) from marts.mart_kpi_municipality_year m "
        "where m.year = r.year) from marts.mart_kpi_region_year r where region_key = 'rvr' and year = 2026"
    ).fetchone()
    assert region == pytest.approx(summed)


def test_campaign_tree_total_is_10000(warehouse):
    total = warehouse.execute(
        "select sum(trees) from marts.mart_trees_municipality_year where tree_source = 'campaign'"
    ).fetchone()[0]
    assert total == 10_000
