"""The marts' suites run only where a mart changed (zi_warehouse/quality/reuse.py), and that is exact.

On a copy of the demo build (whose quality step recorded what each suite saw): with nothing changed every
suite keeps its last records, and those are the records a new validation gives; a changed mart, and only
that mart, is validated again; changed code validates every mart again.
"""

from __future__ import annotations

import datetime as dt

from conftest import copy_built_data_dir
from zi_warehouse import warehouse
from zi_warehouse.quality import reuse, suites

STARTED = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)


def _by_check(records) -> dict:
    return {(r.check_name, r.municipality_key): r.record("run", STARTED) for r in records}


def test_unchanged_marts_keep_their_records_and_a_changed_mart_is_validated_again(demo_data_dir, tmp_path, monkeypatch):
    data_dir = copy_built_data_dir(demo_data_dir, tmp_path / "data")
    every_suite = suites.suites()
    with warehouse.connect(data_dir / "warehouse" / "zi.duckdb") as con:
        unchanged = reuse.plan(con, every_suite)
        assert unchanged.to_run == []
        assert sorted(unchanged.reused_marts) == sorted(s.mart for s in every_suite)
        assert _by_check(unchanged.reused) == _by_check(suites.run_suites(con))

        con.execute(
            "update marts.mart_budget_year set applications = applications + 1 "
            "where year = (select min(year) from marts.mart_budget_year)"
        )
        changed = reuse.plan(con, every_suite)
        assert [s.mart for s in changed.to_run] == ["mart_budget_year"]
        assert "mart_budget_year" not in changed.reused_marts

        from zi_warehouse import build_state

        real = build_state.code_fingerprint()
        monkeypatch.setattr(build_state, "code_fingerprint", lambda: {**real, "code": "other code"})
        assert len(reuse.plan(con, every_suite).to_run) == len(every_suite)
