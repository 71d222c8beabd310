"""The Dagster Definitions load and match the committed snapshot, so a rename shows up in review.

Update the snapshot deliberately with: UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_definitions.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dagster import AssetKey

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
#: Assets that never open the working warehouse (they read data/published/), so need no pool.
READS_ONLY_THE_PUBLISHED_COPY = {AssetKey("published_postgres"), AssetKey("quarterly_report")}


def _describe() -> dict:
    from dagster_zi.definitions import defs

    repo = defs.get_repository_def()
    graph = repo.asset_graph
    return {
        "assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
        "asset_checks": sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys),
        "schedules": sorted(s.name for s in repo.schedule_defs),
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
    }


def test_definitions_match_snapshot():
    current = _describe()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert current == json.loads(SNAPSHOT.read_text(encoding="utf-8"))


def test_every_warehouse_writer_is_in_the_single_pool():
    from dagster_zi.constants import WAREHOUSE_POOL
    from dagster_zi.definitions import defs

    graph = defs.get_repository_def().asset_graph
    checked = 0
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable or key in READS_ONLY_THE_PUBLISHED_COPY:
            continue
        assert node.pools == {WAREHOUSE_POOL}, key
        checked += 1
    assert checked > 50


def test_public_marts_and_key_sources_are_assets():
    names = set(_describe()["assets"])
    for expected in (
        "raw_ingestion/ingestion_files",
        "raw_ingestion/rejected_rows",
        "marts/mart_budget_year",
        "marts/mart_ingestion_files",
        "marts/mart_rejected_rows",
        "marts/fct_measure",
        "marts/mart_kpi_municipality_year",
        "published_warehouse",
    ):
        assert expected in names, expected
    families = {name.split("/")[0] for name in names if name.startswith("raw_")}
    assert {"raw_forecasts", "raw_funding", "raw_climate", "raw_trees", "raw_surfaces"} <= families
