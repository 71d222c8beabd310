"""Funding models end to end: extracts and database give the same tables, history and snapshot, checks.

Warehouses are opened read-write here: in-process dbt-duckdb keeps its connection to the file open, and
DuckDB refuses a second connection with a different configuration in the same process.

dbt runs in-process (dbtRunner) on a copy of the project holding only the funding models, the seeds and
the macros they use, so other families' work in progress cannot break these tests; the copy uses the
repository's dbt_project.yml and profile unchanged.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import psycopg
import pytest

from zi_warehouse import warehouse
from zi_warehouse.config import REPO_ROOT
from zi_warehouse.demo import funding_database, funding_extracts
from zi_warehouse.demo.programme import build_programme
from zi_warehouse.ingest import ingest
from zi_warehouse.sources import funding, funding_checks, funding_db

try:
    from tests.pg_server import postgres_server
except ImportError:  # pytest puts tests/ itself on sys.path
    from pg_server import postgres_server

SEED = 7
#: The first stage loads the extracts up to this sequence number (delta of 2022-Q4).
FIRST_STAGE_LAST_SEQ = 8
FIRST_STAGE_END = dt.datetime(2022, 12, 31, 23, 59, 59)
EARLIER_QUARTER_END = dt.datetime(2022, 6, 30, 23, 59, 59)
SELECT = ["+tag:funding", "project_statuses", "measure_types", "municipalities"]
INT_TABLES = [
    "int_funding__applications",
    "int_funding__approvals",
    "int_funding__payments",
    "int_funding__measures",
    "int_funding__amendments",
]


@pytest.fixture(scope="module")
def dbt_project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dbt_funding")
    shutil.copy(REPO_ROOT / "dbt_project.yml", root / "dbt_project.yml")
    for folder in ("models/staging/funding", "models/intermediate/funding"):
        shutil.copytree(REPO_ROOT / folder, root / folder)
    shutil.copytree(REPO_ROOT / "seeds", root / "seeds")
    shutil.copytree(REPO_ROOT / "dbt_project" / "macros", root / "dbt_project" / "macros")
    (root / "dbt_project" / "snapshots").mkdir()
    for snap in (REPO_ROOT / "dbt_project" / "snapshots").glob("*funding*"):
        shutil.copy(snap, root / "dbt_project" / "snapshots" / snap.name)
    shutil.copy(REPO_ROOT / "dbt_project" / "profiles.yml", root / "dbt_project" / "profiles.yml")
    return root


def dbt_build(project: Path, data_dir: Path, with_tests: bool = True) -> None:
    """``dbt build`` of the funding models, seeds and snapshots (in-process: saves the start-up)."""
    from dbt.cli.main import dbtRunner

    os.environ["ZI_DATA_DIR"] = str(data_dir)
    os.environ["DO_NOT_TRACK"] = "1"
    result = dbtRunner().invoke(
        [
            "build",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project / "dbt_project"),
            "--select",
            *SELECT,
            *([] if with_tests else ["--exclude", "resource_type:test"]),
            "--quiet",
            "--target-path",
            str(project / "target"),
            "--log-path",
            str(project / "logs"),
        ]
    )
    failures = [r.node.name for r in (result.result or []) if r.status not in ("success", "pass")]
    assert result.success and not failures, f"dbt build failed: {failures} {result.exception}"


def _status_as_of(con, moment: dt.datetime) -> dict[str, str]:
    return dict(
        con.execute(
            "select application_id, status_key from intermediate.int_funding__application_status_history "
            "where valid_from <= ? and (valid_to is null or valid_to > ?)",
            [moment, moment],
        ).fetchall()
    )


def _table(con, name: str, exclude=()) -> list[tuple]:
    """The table's business columns; lineage columns (_source_file, _row_number) name the channel, so differ."""
    cols = [
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'intermediate' "
            "and table_name = ? order by ordinal_position",
            [name],
        ).fetchall()
        if r[0] not in exclude and not r[0].startswith("_")
    ]
    return con.execute(f"select {', '.join(cols)} from intermediate.{name} order by all").fetchall()


@pytest.fixture(scope="module")
def built(tmp_path_factory, dbt_project):
    """Two warehouses: A from the CSV extracts in two stages (with dbt runs after each), B from the database."""
    programme = build_programme(0.05, SEED)
    base = tmp_path_factory.mktemp("funding_e2e")
    all_files = base / "all"
    funding_extracts.write(all_files, programme, SEED)

    # --- A: files, first stage up to 2022-Q4, then the rest -----------------------------------------
    data_a = base / "a"
    landing = data_a / "landing"
    (landing / "funding").mkdir(parents=True)
    files = sorted((all_files / "funding").iterdir())
    later = [p for p in files if int(p.name.split("_")[2]) > FIRST_STAGE_LAST_SEQ]
    for path in files:
        if path not in later:
            shutil.copy(path, landing / "funding" / path.name)
    db_a = data_a / "warehouse" / "zi.duckdb"
    with warehouse.connect(db_a) as con:
        ingest(con, funding, landing, log=lambda m: None)
    dbt_build(dbt_project, data_a, with_tests=False)
    with warehouse.connect(db_a) as con:
        stage1 = {
            "status_end_2022": _status_as_of(con, FIRST_STAGE_END),
            "status_earlier": _status_as_of(con, EARLIER_QUARTER_END),
            "snapshot": con.execute(
                "select application_id, status_key, dbt_valid_from, dbt_valid_to "
                "from snapshots.snap_funding__application_status"
            ).fetchall(),
        }
    for path in later:
        shutil.copy(path, landing / "funding" / path.name)
    with warehouse.connect(db_a) as con:
        ingest(con, funding, landing, log=lambda m: None)
        # loading the same extracts again (forced) changes nothing downstream
        ingest(con, funding, landing, log=lambda m: None, force=True)
    dbt_build(dbt_project, data_a)

    # --- B: the database, extracted twice (full overlap), with one payment deleted in between -------
    data_b = base / "b"
    db_b = data_b / "warehouse" / "zi.duckdb"
    with postgres_server() as pg:
        dsn = pg.create_database("foerder")
        funding_database.load(dsn, programme, SEED)
        now = dt.datetime(2026, 10, 5, 6, 0, 0)
        with warehouse.connect(db_b) as con:
            funding_db.run(con, dsn, now=now, log=lambda m: None)
            funding_db.run(con, dsn, now=now + dt.timedelta(hours=1), full=True, log=lambda m: None)
            with psycopg.connect(dsn) as conn:
                (deleted,) = conn.execute(
                    "delete from foerderung.zahlung where zahlung_nr = "
                    "(select max(zahlung_nr) from foerderung.zahlung) returning zahlung_nr"
                ).fetchone()
            funding_db.run(con, dsn, now=now + dt.timedelta(hours=2), log=lambda m: None)
    dbt_build(dbt_project, data_b, with_tests=False)
    return {"a": db_a, "b": db_b, "stage1": stage1, "deleted_payment": deleted, "project": dbt_project}


def test_demo_extracts_and_demo_database_give_the_same_tables(built):
    with warehouse.connect(built["a"]) as a, warehouse.connect(built["b"]) as b:
        for name in INT_TABLES:
            exclude = ("last_extract_id",)
            rows_a, rows_b = _table(a, name, exclude), _table(b, name, exclude)
            if name == "int_funding__payments":
                # the one payment deleted in the database is flagged there, nothing else differs
                deleted_b = [r for r in rows_b if r[0] == built["deleted_payment"]]
                assert deleted_b and deleted_b[0][6] is True
                rows_a = [r for r in rows_a if r[0] != built["deleted_payment"]]
                rows_b = [r for r in rows_b if r[0] != built["deleted_payment"]]
            assert rows_a == rows_b, name
            assert rows_a
        # staged tables: the latest version per key agrees too (the files hold more history)
        for entity in funding.ENTITIES:
            stg = f"staging.stg_funding__{entity.name}"
            cols = "* exclude (extract_id, extract_channel, extract_kind, extract_seq, extract_as_of, _source_file, _row_number)"
            query = (
                f"select {cols} from {stg} where {entity.key} <> ? qualify row_number() over "
                f"(partition by {entity.key} order by updated_at desc) = 1 order by {entity.key}"
            )
            params = [built["deleted_payment"]]
            assert a.execute(query, params).fetchall() == b.execute(query, params).fetchall(), stg
        # calibration survives the whole path
        assert a.execute(
            "select count(*), sum(requested_eur) from intermediate.int_funding__applications "
            "where year(application_date) = 2020 and not is_deleted"
        ).fetchone() == (64, 5_200_000)
        assert a.execute(
            "select count(*) from intermediate.int_funding__approvals where year(notice_date) = 2020"
        ).fetchone() == (60,)


def test_a_changed_status_moves_the_snapshot_and_keeps_the_earlier_quarter(built):
    stage1 = built["stage1"]
    with warehouse.connect(built["a"]) as con:
        final = dict(
            con.execute("select application_id, status_key from intermediate.int_funding__applications").fetchall()
        )
        moved = sorted(a for a, s in stage1["status_end_2022"].items() if final[a] != s)
        assert moved, "the later deltas change some statuses"
        app = moved[0]
        rows = con.execute(
            "select status_key, dbt_valid_from, dbt_valid_to from snapshots.snap_funding__application_status "
            "where application_id = ? order by dbt_valid_from",
            [app],
        ).fetchall()
        # the first-stage row is closed, the current row carries the new status
        assert len(rows) == 2
        assert rows[0][0] == stage1["status_end_2022"][app] and rows[0][2] == rows[1][1]
        assert rows[1][0] == final[app] and rows[1][2] is None
        # the status as of earlier quarters is unchanged: from the history model (any quarter) ...
        assert _status_as_of(con, EARLIER_QUARTER_END) == stage1["status_earlier"]
        assert _status_as_of(con, FIRST_STAGE_END) == stage1["status_end_2022"]
        # ... and from the snapshot for the quarter it observed (it only knows what each dbt run saw)
        from_snapshot = dict(
            con.execute(
                "select application_id, status_key from snapshots.snap_funding__application_status "
                "where dbt_valid_from <= ? and (dbt_valid_to is null or dbt_valid_to > ?)",
                [FIRST_STAGE_END, FIRST_STAGE_END],
            ).fetchall()
        )
        assert from_snapshot == stage1["status_end_2022"]


def test_reconciliation_checks(built, tmp_path):
    copy = tmp_path / "zi.duckdb"
    shutil.copy(built["a"], copy)
    with warehouse.connect(copy) as con:
        outcomes = funding_checks.run_all(con)
        blocking = [n for n, (_, _, is_blocking) in funding_checks.CHECKS.items() if is_blocking]
        assert all(outcomes[n].passed for n in blocking), {n: outcomes[n].message_de for n in blocking}
        # amendments raise some grants above the request: flagged, not blocking
        assert not outcomes["approved_within_requested"].passed
        assert all(r["amendment_count"] > 0 for r in outcomes["approved_within_requested"].examples)

        # break each rule once in the built tables and see the check fail
        con.execute(
            "update intermediate.int_funding__payments set approval_id = 'ZI-B-99999' "
            "where payment_id = (select min(payment_id) from intermediate.int_funding__payments)"
        )
        con.execute(
            "update intermediate.int_funding__applications set funding_rate = 0.95, owner_type = 'private', "
            "municipality_key = 'atlantis' where application_id = 'ZI-A-00001'"
        )
        con.execute(
            "update intermediate.int_funding__approvals set application_id = 'ZI-A-99999' "
            "where approval_id = 'ZI-B-00001'"
        )
        con.execute(
            "update intermediate.int_funding__approvals set approved_eur = 12000 where approval_id = 'ZI-B-00002'"
        )
        # a later extract names another municipality for an application; a notice dated before its application
        con.execute(
            "insert into raw.funding__applications select * replace ('herne' as municipality_key, "
            "'Herne' as municipality_name, updated_at + interval 1 day as updated_at, 'EX-TEST' as extract_id) "
            "from raw.funding__applications where application_id = 'ZI-A-00003' "
            "order by updated_at desc limit 1"
        )
        moved_from = con.execute(
            "select municipality_key from intermediate.int_funding__applications where application_id = 'ZI-A-00003'"
        ).fetchone()[0]
        con.execute(
            "update intermediate.int_funding__approvals a set notice_date = ap.application_date - 1 "
            "from intermediate.int_funding__applications ap "
            "where ap.application_id = a.application_id and a.approval_id = 'ZI-B-00003'"
        )
        broken = funding_checks.run_all(con)
    assert not broken["payments_have_approval"].passed
    assert [r["approval_id"] for r in broken["payments_have_approval"].examples] == ["ZI-B-99999"]
    assert not broken["funding_rate_within_limits"].passed
    assert not broken["applications_municipality_known"].passed
    assert not broken["approvals_have_application"].passed
    assert broken["approvals_have_application"].examples[0]["approval_id"] == "ZI-B-00001"
    assert [r["approval_id"] for r in broken["minimum_grant_thresholds"].examples] == ["ZI-B-00002"]
    moved = broken["applications_keep_their_municipality"]
    assert not moved.passed and moved.examples == [
        {
            "application_id": "ZI-A-00003",
            "municipality_key_before": moved_from,
            "municipality_key": "herne",
            "extract_id": "EX-TEST",
        }
    ]
    assert "ZI-A-00003" in moved.message_de and "→ Herne (Extrakt EX-TEST)" in moved.message_de
    early = broken["applications_before_approval"]
    assert not early.passed and [r["approval_id"] for r in early.examples] == ["ZI-B-00003"]
    assert "ZI-B-00003 vom " in early.message_de
