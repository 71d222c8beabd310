"""The demo programme truth: calibrated 2020 figures at every scale, deterministic, plausible."""

from __future__ import annotations

import datetime as dt

import pytest

from zi_warehouse.demo.programme import (
    APPLICATIONS_2020,
    APPROVALS_2020,
    IDEAS_2020,
    REQUESTED_EUR_2020,
    build_programme,
    quarter_end,
)
from zi_warehouse.reference import municipality_by_key


@pytest.mark.parametrize("scale,seed", [(0.05, 7), (0.2, 1), (1.0, 7)])
def test_2020_calibration_holds_at_every_scale(scale, seed):
    projects = build_programme(scale, seed).projects
    ideas = [p for p in projects if p.idea_date.year == 2020]
    applications = [p for p in projects if p.application_date and p.application_date.year == 2020]
    approvals = [p for p in projects if p.decision == "approved" and p.decision_date.year == 2020]
    assert len(ideas) == IDEAS_2020 == 91
    assert len(applications) == APPLICATIONS_2020 == 64
    assert round(sum(p.requested_eur for p in applications), 2) == REQUESTED_EUR_2020 == 5_200_000
    assert len(approvals) == APPROVALS_2020 == 60


def test_same_seed_same_truth_other_seed_other_truth():
    a, b, c = build_programme(0.05, 7), build_programme(0.05, 7), build_programme(0.05, 8)
    assert [vars(p) for p in a.projects] == [vars(p) for p in b.projects]
    assert [p.total_cost_eur for p in a.projects] != [p.total_cost_eur for p in c.projects]


def test_scale_grows_the_programme_and_the_municipalities():
    small, full = build_programme(0.05, 7), build_programme(1.0, 7)
    assert len(full.projects) > 5 * len(small.projects)
    assert len(full.active_from) == 53 and len(small.active_from) >= 16


def test_life_cycles_money_and_keys_are_consistent():
    programme = build_programme(0.3, 3)
    known = municipality_by_key()
    ids = [p.project_id for p in programme.projects]
    assert len(ids) == len(set(ids))
    for p in programme.projects:
        assert p.municipality_key in known
        assert 0 < p.funding_rate <= 1.0 and p.requested_eur <= p.total_cost_eur + 0.01
        if p.application_date:
            assert p.application_date >= p.idea_date
        if p.decision_date:
            assert p.application_date and p.decision_date >= p.application_date
        if p.completion_date:
            assert p.construction_start <= p.completion_date <= quarter_end(2026, 3)
        paid = sum(x.amount_eur for x in p.payments)
        assert paid <= (p.current_approved_eur or 0) + 0.01
        if p.payments:
            assert all(x.paid_on >= p.construction_start for x in p.payments)
        assert p.status_on(p.idea_date - dt.timedelta(days=1)) is None
        assert p.status_on(dt.date(2026, 9, 30)) is not None
