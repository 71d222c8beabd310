"""The dbt project's documentation and layout: every model described, every mart column described, the YAML
files in one layout (scripts/dbt_yaml_layout.py), every singular data test an asset check in Dagster.

The manifest is parsed here, from the files as they are (``dbt parse`` into a temporary target, starting from
the set-up's partial-parse file), so a stale target/manifest.json cannot hide a missing description.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zi_warehouse.config import REPO_ROOT


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    target = tmp_path_factory.mktemp("dbt_parse") / "target"
    target.mkdir()
    partial = REPO_ROOT / "target" / "partial_parse.msgpack"
    if partial.exists():
        shutil.copyfile(partial, target / partial.name)
    env = {**os.environ, "DO_NOT_TRACK": "1", "ZI_DBT_DATABASE": "zi.duckdb", "DBT_TARGET_PATH": str(target)}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "parse", "--profiles-dir", "dbt_project", "--quiet"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads((target / "manifest.json").read_text(encoding="utf-8"))


def _models(manifest: dict) -> list[dict]:
    return [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]


def test_every_model_has_a_description(manifest):
    models = _models(manifest)
    assert len(models) > 40
    assert [m["name"] for m in models if not m["description"].strip()] == []


def test_every_mart_column_is_declared_and_described(manifest):
    marts = [m for m in _models(manifest) if m["fqn"][1] == "marts"]
    assert len(marts) >= 15
    undescribed = [
        f"{m['name']}.{c}" for m in marts for c, col in m["columns"].items() if not col.get("description", "").strip()
    ]
    assert undescribed == []
    # the columns are all there: an enforced contract lists every column of the mart
    assert [m["name"] for m in marts if not m["config"]["contract"]["enforced"] or not m["columns"]] == []


def test_every_seed_and_snapshot_has_a_description(manifest):
    nodes = [n for n in manifest["nodes"].values() if n["resource_type"] in ("seed", "snapshot")]
    assert len(nodes) >= 9
    assert [n["name"] for n in nodes if not n["description"].strip()] == []


def test_yaml_files_follow_one_layout():
    spec = importlib.util.spec_from_file_location("dbt_yaml_layout", REPO_ROOT / "scripts" / "dbt_yaml_layout.py")
    layout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layout)
    assert layout.problems() == []


def test_every_singular_data_test_is_an_asset_check(manifest):
    """dagster-dbt attaches a test that reads several models to the model its config names (meta dagster ref);
    without it the result is only logged as an observation and blocks nothing."""
    from dagster_dbt.asset_utils import get_asset_check_key_for_test

    from dagster_zi.dbt import ZiDbtTranslator

    singular = [
        uid
        for uid, n in manifest["nodes"].items()
        if n["resource_type"] == "test" and n["original_file_path"].startswith("dbt_project/data_tests/")
    ]
    assert len(singular) >= 2
    keys = {uid: get_asset_check_key_for_test(manifest, ZiDbtTranslator(), uid, None) for uid in singular}
    assert [uid for uid, key in keys.items() if key is None] == []
    assert {key.asset_key.to_user_string() for key in keys.values()} >= {
        "marts/mart_budget_year",
        "marts/mart_kpi_region_year",
    }
