"""Contact names and e-mails stay in the raw layer: staging and intermediate forecasts models carry none.

Builds the forecasts dbt models (and the seeds they ref) in an isolated copy of the dbt project, so the
test does not depend on other families' models being complete, then scans every column of every
relation outside ``raw`` for e-mail addresses and contact columns.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from zi_warehouse.config import REPO_ROOT
from zi_warehouse.demo import forecast_workbooks as fw
from zi_warehouse.demo.programme import DemoProgramme, build_programme
from zi_warehouse.ingest import ingest
from zi_warehouse.sources import forecasts as src

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", re.IGNORECASE)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbt_forecasts")
    project = root / "project"
    (project / "models" / "staging").mkdir(parents=True)
    (project / "models" / "intermediate").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "dbt_project.yml", project)
    shutil.copytree(REPO_ROOT / "seeds", project / "seeds")
    shutil.copytree(REPO_ROOT / "dbt_project" / "macros", project / "dbt_project" / "macros")
    shutil.copy(REPO_ROOT / "dbt_project" / "profiles.yml", project / "dbt_project")
    shutil.copytree(REPO_ROOT / "models" / "staging" / "forecasts", project / "models" / "staging" / "forecasts")
    shutil.copytree(
        REPO_ROOT / "models" / "intermediate" / "forecasts", project / "models" / "intermediate" / "forecasts"
    )
    data = root / "data"
    full = build_programme(0.05, 7)
    keep = sorted(full.active_from)[:3]  # three municipalities are plenty and keep the test fast
    part = DemoProgramme(
        full.scale,
        full.seed,
        [p for p in full.projects if p.municipality_key in keep],
        {k: full.active_from[k] for k in keep},
    )
    fw.render(data / "landing" / "forecasts", part, seed=7, mistake_rate=0.1)
    (data / "warehouse").mkdir(parents=True)
    with duckdb.connect(str(data / "warehouse" / "zi.duckdb")) as con:
        ingest(con, src, data / "landing", log=lambda m: None)
    env = {**os.environ, "ZI_DATA_DIR": str(data), "DO_NOT_TRACK": "1"}
    dbt = Path(sys.executable).with_name("dbt")
    proc = subprocess.run(
        [str(dbt), "build", "--exclude-resource-type", "test", "--profiles-dir", "dbt_project"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    con = duckdb.connect(str(data / "warehouse" / "zi.duckdb"), read_only=True)
    yield con
    con.close()


def test_raw_holds_contacts_so_the_scan_is_meaningful(built):
    n = built.execute("select count(*) from raw.forecasts__projects where contact_email like '%@%'").fetchone()[0]
    assert n > 0


def test_no_contact_column_or_email_outside_raw(built):
    relations = built.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema not in ('raw', 'reference', 'information_schema', 'main')"
    ).fetchall()
    assert {(s, n) for s, n in relations} >= {
        ("staging", "stg_forecasts__projects"),
        ("staging", "stg_forecasts__payment_forecasts"),
        ("intermediate", "int_forecasts__submission_history"),
        ("intermediate", "int_forecasts__current_projects"),
    }
    for schema, name in relations:
        columns = built.execute(
            "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()
        for column, data_type in columns:
            assert not re.search(r"contact|e_?mail|phone", column), (schema, name, column)
            if data_type.upper().startswith("VARCHAR"):
                hits = built.execute(
                    f'select count(*) from "{schema}"."{name}" where regexp_matches("{column}", ?)', [EMAIL.pattern]
                ).fetchone()[0]
                assert hits == 0, (schema, name, column)


def test_required_public_columns(built):
    def cols(name):
        return [
            r[0]
            for r in built.execute(
                "select column_name from information_schema.columns where table_name = ? order by ordinal_position",
                [name],
            ).fetchall()
        ]

    assert cols("stg_forecasts__projects") == [
        "submission_id",
        "municipality_key",
        "reporting_period",
        "reporting_year",
        "reporting_quarter",
        "template_version",
        "project_id",
        "title",
        "measure_type_key",
        "status_key",
        "total_cost_eur",
        "requested_funding_eur",
        "funding_rate",
        "planned_application_period",
        "planned_start_date",
        "planned_completion_date",
        "expected_disconnected_area_m2",
        "affected_surface_type",
        "surface_change_m2",
        "expected_trees",
        "is_in_designated_area",
        "designated_area_name",
        "_source_file",
        "_sheet",
        "_row_number",
    ]
    assert cols("stg_forecasts__payment_forecasts") == [
        "submission_id",
        "project_id",
        "payment_period",
        "forecast_payment_eur",
    ]
    assert "is_current_submission" in cols("int_forecasts__submission_history")


def test_corrected_resubmission_replaces_but_keeps_history(built):
    rows = built.execute(
        "select municipality_key, reporting_period, count(distinct submission_id), "
        "count(distinct submission_id) filter (where is_current_submission) "
        "from intermediate.int_forecasts__submission_history group by 1, 2"
    ).fetchall()
    assert all(current == 1 for *_, current in rows)
    assert any(n > 1 for _, _, n, _ in rows)  # the demo sends corrections: history kept
    winners = built.execute(
        "select h.revision, max(h2.revision) from intermediate.int_forecasts__submission_history h "
        "join intermediate.int_forecasts__submission_history h2 using (municipality_key, reporting_period) "
        "where h.is_current_submission group by h.submission_id, h.revision"
    ).fetchall()
    assert all(rev == best for rev, best in winners)
    dup = built.execute(
        "select count(*) - count(distinct project_id) from intermediate.int_forecasts__current_projects"
    ).fetchone()
    assert dup[0] == 0
