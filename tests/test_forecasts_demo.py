"""The demo forecast workbooks: fast, deterministic, calibrated, and every injected mistake is caught."""

from __future__ import annotations

import duckdb
import pytest

from zi_warehouse.demo import forecast_workbooks as fw
from zi_warehouse.demo.programme import DemoProgramme, build_programme
from zi_warehouse.ingest import ingest
from zi_warehouse.sources import forecasts as src

#: Higher than the default so every kind of mistake occurs at scale 0.05 (and the calibration must hold).
MISTAKE_RATE = 0.1


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_forecasts") / "landing"
    programme = build_programme(0.05, 7)
    rendered = fw.render(root / "forecasts", programme, seed=7, mistake_rate=MISTAKE_RATE)
    con = duckdb.connect(":memory:")
    summary = ingest(con, src, root, log=lambda m: None)
    yield programme, rendered, con, summary
    con.close()


def test_writes_one_workbook_per_submission(demo):  # its speed: `make bench` (landing areas of every scale)
    programme, rendered, _, _ = demo
    submissions = list(programme.submissions())
    assert len({p.name for p in rendered.paths}) == len(rendered.paths)  # nothing overwritten
    assert len(rendered.paths) >= len(submissions) - 5  # a municipality without projects yet sends nothing


def test_every_kind_of_mistake_is_injected(demo):
    kinds = {m.kind for m in demo[1].mistakes}
    assert set(fw.REJECTING) <= kinds
    assert set(fw.FORMATTING) <= kinds
    assert {"duplicate_delivery", "file_name_other_municipality"} <= kinds
    assert kinds & {"corrupt_file", "renamed_header"}


def test_every_rejecting_mistake_is_caught_with_its_rule(demo):
    _, rendered, con, _ = demo
    rejected = set(con.execute("select source_file, row_number, rule from raw.rejected_rows").fetchall())
    for m in rendered.mistakes:
        if m.rule is not None:
            assert (m.source_file, m.row_number, m.rule) in rejected, m


def test_nothing_else_is_rejected(demo):
    _, rendered, con, _ = demo
    injected = {(m.source_file, m.row_number) for m in rendered.mistakes if m.rule is not None}
    rejected = set(con.execute("select source_file, row_number from raw.rejected_rows").fetchall())
    assert rejected == injected


def test_formatting_mess_loads_with_the_right_value(demo):
    _, rendered, con, _ = demo
    rejected_rows = {(m.source_file, m.row_number) for m in rendered.mistakes if m.rule is not None}
    checked = 0
    for m in rendered.mistakes:
        if m.rule is not None or (m.source_file, m.row_number) in rejected_rows:
            continue
        value = con.execute(
            f'select "{m.column}" from raw.forecasts__projects where _source_file = ? and _row_number = ?',
            [m.source_file, m.row_number],
        ).fetchone()
        assert value is not None, m
        if isinstance(m.expected, float):
            assert value[0] == pytest.approx(m.expected), m
        else:
            assert value[0] == m.expected, m
        checked += 1
    assert checked > 10


def test_calibration_91_projects_first_reported_in_2020(demo):
    programme, _, con, _ = demo
    first_2020 = con.execute(
        "select count(*) from (select project_id from raw.forecasts__projects group by 1 "
        "having min(reporting_year) = 2020)"
    ).fetchone()[0]
    assert first_2020 == sum(1 for p in programme.projects if p.idea_date.year == 2020) == 91


def test_rows_balance_and_every_project_is_loaded(demo):
    programme, _, con, summary = demo
    assert summary.rows_read == summary.rows_loaded + summary.rows_rejected
    loaded = {r[0] for r in con.execute("select distinct project_id from raw.forecasts__projects").fetchall()}
    listed = {p.project_id for p in programme.projects}
    assert loaded == listed  # every project of the truth reaches the warehouse, nothing invented


def test_deterministic(tmp_path, demo):
    programme, rendered, _, _ = demo
    # Render two municipalities again: same bytes, same mistakes as in the full run.
    keep = sorted(programme.active_from)[:2]
    part = DemoProgramme(
        programme.scale,
        programme.seed,
        [p for p in programme.projects if p.municipality_key in keep],
        {k: programme.active_from[k] for k in keep},
    )
    again = fw.render(tmp_path / "forecasts", part, seed=7, mistake_rate=MISTAKE_RATE)
    first = {p.name: p for p in rendered.paths}
    assert again.paths and all(p.read_bytes() == first[p.name].read_bytes() for p in again.paths)
    assert set(again.mistakes) <= set(rendered.mistakes)
