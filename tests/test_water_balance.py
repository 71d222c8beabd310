"""DWA-M 102-4 factors: the worked values in docs/domain.md#worked-values (P 800, ETp 600, standard parameters)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from zi_warehouse import water_balance as wb
from zi_warehouse.config import SEEDS_DIR

P, ETP = 800.0, 600.0
TOL = 0.005

# (element type in seeds/surface_types.csv, expected a, g, v) as printed in docs/domain.md#worked-values.
WORKED = [
    ("pitched_roof", 0.909, 0.0, 0.091),
    ("flat_roof", 0.832, 0.0, 0.168),
    ("asphalt", 0.746, 0.0, 0.254),
    ("green_roof_extensive", 0.535, 0.0, 0.465),
    ("green_roof_intensive", 0.425, 0.0, 0.575),
    ("paving", 0.215, 0.608, 0.177),
    ("porous_paving", 0.003, 0.593, 0.405),
    ("swale", 0.003, 0.950, 0.047),
]


@pytest.mark.parametrize("element_type,a,g,v", WORKED)
def test_worked_values_of_domain_section_4(element_type, a, g, v):
    s = wb.element_shares(element_type, P, ETP)
    assert s.a == pytest.approx(a, abs=TOL)
    assert s.g == pytest.approx(g, abs=TOL)
    assert s.v == pytest.approx(v, abs=TOL)


def test_swale_standard_facility_area_is_13_7_pct_for_kf_36():
    assert wb.facility_area_share_pct("swale", 36) == pytest.approx(13.7, abs=0.05)


def test_equations_called_directly_with_explicit_parameters():
    s = wb.shares("green_roof", P, ETP, substrate_height_mm=300, kf_mm_per_h=70, water_capacity=0.5)
    assert s.a == pytest.approx(0.425, abs=TOL)
    s = wb.shares("flat_surface", P, ETP, storage_height_mm=2.5)
    assert s.a == pytest.approx(0.746, abs=TOL)


def test_shares_sum_to_one_for_every_element_and_a_range_of_p():
    precipitation = np.array([500.0, 650.0, 800.0, 1000.0, 1300.0, 1700.0])
    for row in wb.element_types():
        s = wb.element_shares(row["element_type"], precipitation, ETP)
        total = np.asarray(s.a) + np.asarray(s.g) + np.asarray(s.v)
        assert np.allclose(total, 1.0), row["element_type"]
        for share in (s.a, s.g, s.v):
            assert (np.asarray(share) >= 0).all() and (np.asarray(share) <= 1).all(), row["element_type"]


def test_more_rain_means_more_runoff_from_a_flat_roof():
    s = wb.element_shares("flat_roof", np.array([700.0, 1100.0]), ETP)
    assert s.a[1] > s.a[0]


def test_pond_evaporation_follows_the_area_ratio():
    s = wb.shares("pond", P, ETP, inflow_area_ratio=0.0)
    assert s.v == pytest.approx(0.75)  # open water with no inflow: ETp / P
    s = wb.shares("pond", 500.0, 700.0, inflow_area_ratio=0.0)
    assert s.v == 1.0  # capped: cannot evaporate more than arrives


def test_every_surface_of_the_measure_types_is_an_element_type():
    known = {r["element_type"] for r in wb.element_types()}
    with open(SEEDS_DIR / "measure_types.csv", newline="", encoding="utf-8") as fh:
        used = {r[c] for r in csv.DictReader(fh) for c in ("surface_before", "surface_after") if r[c]}
    assert used <= known, used - known


def test_unknown_edition_and_missing_parameter_fail_loudly():
    with pytest.raises(ValueError, match="edition"):
        wb.shares("flat_surface", P, ETP, edition="DWA-M 102-4 1999", storage_height_mm=1)
    with pytest.raises(wb.MissingParameter):
        wb.shares("flat_surface", P, ETP)


def test_factor_table_rows_and_edition_column():
    table = wb.factor_table(["bochum", "essen"], [800.0, 900.0], ETP)
    n_elements = len(wb.element_types())
    assert table.num_rows == 2 * n_elements
    assert set(table.column("equation_edition").to_pylist()) == {wb.DEFAULT_EDITION}
    rows = [r for r in table.to_pylist() if r["municipality_key"] == "bochum" and r["element_type"] == "asphalt"]
    assert rows[0]["runoff_share_a"] == pytest.approx(0.746, abs=TOL)
    assert all(table.column("is_in_valid_range").to_pylist())
