"""The dbt unit tests (models/marts/*/_*__unit_tests.yml: KPI rates, target paths, budget sums) run here, on a
copy of the session's demo warehouse (dbt needs the models' parents to exist), not in every build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT


def test_every_dbt_unit_test_passes(demo_build, tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "warehouse").mkdir(parents=True)
    shutil.copyfile(demo_build["data_dir"] / "warehouse" / "zi.duckdb", data_dir / "warehouse" / "zi.duckdb")
    env = {**os.environ, "ZI_DATA_DIR": str(data_dir), "DBT_TARGET_PATH": str(tmp_path / "target")}
    proc = subprocess.run([str(Path(sys.executable).with_name("zi-dbt")), "test", "--select", "test_type:unit"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    manifest = json.loads((REPO_ROOT / "target" / "manifest.json").read_text())
    declared = {uid for uid in manifest["unit_tests"]}
    assert declared and {r["unique_id"] for r in results} == declared, proc.stdout[-3000:]
    assert all(r["status"] == "pass" for r in results), proc.stdout[-3000:]
    assert proc.returncode == 0, proc.stdout[-3000:]
