"""dbt's own tests of SQL logic and the analyses, run on a copy of the session's demo warehouse (dbt needs the
models' parents to exist), not in every build: the unit tests (``_*__unit_tests.yml`` next to their models:
funding current state, KPI rates, target paths, budget sums) and the example queries in dbt_project/analyses."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from conftest import REPO_ROOT

ZI_DBT = str(Path(sys.executable).with_name("zi-dbt"))


@pytest.fixture(scope="module")
def warehouse_copy(demo_build, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("dbt_on_demo")
    data_dir = root / "data"
    (data_dir / "warehouse").mkdir(parents=True)
    shutil.copyfile(demo_build["data_dir"] / "warehouse" / "zi.duckdb", data_dir / "warehouse" / "zi.duckdb")
    return {
        "data_dir": data_dir,
        "target": root / "target",
        "env": {**os.environ, "ZI_DATA_DIR": str(data_dir), "DBT_TARGET_PATH": str(root / "target")},
    }


def test_every_dbt_unit_test_passes(warehouse_copy):
    proc = subprocess.run(
        [ZI_DBT, "test", "--select", "test_type:unit"],
        cwd=REPO_ROOT,
        env=warehouse_copy["env"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    results = json.loads((warehouse_copy["target"] / "run_results.json").read_text())["results"]
    manifest = json.loads((REPO_ROOT / "target" / "manifest.json").read_text())
    declared = {uid for uid in manifest["unit_tests"]}
    assert declared and {r["unique_id"] for r in results} == declared, proc.stdout[-3000:]
    assert all(r["status"] == "pass" for r in results), proc.stdout[-3000:]
    assert proc.returncode == 0, proc.stdout[-3000:]
    # the funding current-state chain (macro funding_current_state) is among them, deletion included
    assert any("funding_current_state" in uid and "deletion" in uid for uid in declared)


def test_every_analysis_compiles_and_answers_on_the_marts(warehouse_copy):
    analyses = sorted((REPO_ROOT / "dbt_project" / "analyses").glob("*.sql"))
    assert analyses, "dbt_project/analyses is named in dbt_project.yml: it holds the example queries"
    proc = subprocess.run(
        [ZI_DBT, "compile", "--quiet", "--select", "resource_type:analysis"],
        cwd=REPO_ROOT,
        env=warehouse_copy["env"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    compiled_dir = warehouse_copy["target"] / "compiled" / "zi_warehouse" / "dbt_project" / "analyses"
    con = duckdb.connect(str(warehouse_copy["data_dir"] / "warehouse" / "zi.duckdb"), read_only=True)
    try:
        for analysis in analyses:
            sql = (compiled_dir / analysis.name).read_text(encoding="utf-8")
            assert '"marts".' in sql and '"intermediate".' not in sql, f"{analysis.name}: controllers read marts only"
            rows = con.execute(sql).fetchall()
            assert rows, analysis.name
    finally:
        con.close()


def test_the_quality_history_s_uniqueness_tests_still_catch_a_duplicate_in_the_newest_run(demo_build, tmp_path):
    # They look at the newest run only (is_latest_run; models/marts/quality/_quality__models.yml), so that they
    # do not grow with the history: a duplicate there must still fail them.
    data_dir = tmp_path / "data"
    (data_dir / "warehouse").mkdir(parents=True)
    database = data_dir / "warehouse" / "zi.duckdb"
    shutil.copyfile(demo_build["data_dir"] / "warehouse" / "zi.duckdb", database)
    env = {**os.environ, "ZI_DATA_DIR": str(data_dir), "DBT_TARGET_PATH": str(tmp_path / "target")}

    def uniqueness_tests() -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                ZI_DBT,
                "test",
                "--select",
                "mart_data_quality,test_name:unique mart_data_quality,test_name:unique_combination",
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    clean = uniqueness_tests()
    assert clean.returncode == 0 and "PASS=2" in clean.stdout, clean.stdout[-3000:]
    compiled = sorted((tmp_path / "target" / "compiled").rglob("unique*mart_data_q*.sql"))
    assert len(compiled) == 2 and all("is_latest_run" in p.read_text() for p in compiled), compiled
    with duckdb.connect(str(database)) as con:
        con.execute(
            "insert into marts.mart_data_quality select * from marts.mart_data_quality where is_latest_run limit 1"
        )
    duplicated = uniqueness_tests()
    assert duplicated.returncode != 0, duplicated.stdout[-3000:]
    failed = re.findall(r"FAIL \d+ (unique\w*)", duplicated.stdout)
    assert sorted(failed) == [
        "unique_combination_mart_data_quality_run_id__source__municipality_key__check_name",
        "unique_mart_data_quality_result_id",
    ], duplicated.stdout[-3000:]
