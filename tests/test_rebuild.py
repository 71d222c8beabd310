"""Starting the working warehouse over (`zi build --rebuild`: the run tag zi/rebuild, done by the executor in
dagster_zi/execution.py with zi_warehouse/rebuild.py): everything from the landing area again, but the quality
history and the funding snapshots, which no landing file can rebuild, are kept; a rebuild that ends without
publishing leaves the working warehouse as it was, one that published keeps its new file.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from conftest import REPO_ROOT, ZI, copy_built_data_dir, run_zi, zi_env
from pg_server import postgres_server
from zi_warehouse import rebuild


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _histories(path: Path) -> dict[str, set]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            name: set(con.execute(f"select * from {name}").fetchall())
            for name in rebuild.history_tables(con, con.execute("select current_database()").fetchone()[0])
        }
    finally:
        con.close()


def _runs(path: Path, table: str) -> set[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {r[0] for r in con.execute(f"select distinct run_id from {table}").fetchall()}
    finally:
        con.close()


@pytest.mark.postgres
def test_a_rebuild_keeps_the_histories_and_one_that_does_not_publish_changes_nothing(demo_data_dir, tmp_path):
    data_dir = copy_built_data_dir(demo_data_dir, tmp_path / "data")
    warehouse = data_dir / "warehouse" / "zi.duckdb"
    published = data_dir / "published" / "zi.duckdb"
    before = _histories(warehouse)
    assert set(before) == {
        "raw.data_quality_results",
        "snapshots.snap_funding__application_status",
        "snapshots.snap_funding__approval_status",
    }
    assert all(before.values()), {name: len(rows) for name, rows in before.items()}
    runs_before = _runs(warehouse, "raw.data_quality_results")

    # A funding delta two numbers after the last one: held back, its blocking check fails the build.
    funding = data_dir / "landing" / "funding"
    last = max(funding.glob("zi_foerderung_*_antraege.csv"), key=lambda p: int(p.name.split("_")[2]))
    sequence = int(last.name.split("_")[2])
    gap = funding / re.sub(r"^zi_foerderung_\d+", f"zi_foerderung_{sequence + 2:03d}", last.name)
    shutil.copy(last, gap)
    working, release = _digest(warehouse), _digest(published)
    feedback = data_dir / "feedback" / "forecasts"
    written_before = sorted(p.relative_to(feedback) for p in feedback.rglob("*.xlsx"))
    assert written_before
    shutil.rmtree(feedback)

    failed = run_zi(data_dir, "build", "--rebuild", check=False)

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Neuaufbau fehlgeschlagen" in failed.stdout
    missing = f"zi_foerderung_{sequence + 1:03d}_*_antraege.csv (fehlt)"
    assert missing in " ".join(failed.stdout.split()), failed.stdout  # what to do: the summary names the gap
    # The funding gap holds back publishing, not the coordinators' feedback.
    assert sorted(p.relative_to(feedback) for p in feedback.rglob("*.xlsx")) == written_before
    assert _digest(warehouse) == working  # the old working file, untouched
    assert _digest(published) == release
    assert not rebuild.aside_path(warehouse).exists()

    gap.unlink()
    # This time a step after the publish fails (PostgreSQL refuses a reader role that is the publishing
    # account): the release was made from the new file, so the new file stays, as after any build.
    with postgres_server() as pg:
        env = {**zi_env(data_dir), "ZI_POSTGRES_DSN": pg.dsn, "ZI_POSTGRES_READER_ROLE": pg.user}
        done = subprocess.run([ZI, "build", "--rebuild"], cwd=REPO_ROOT, env=env, capture_output=True, text=True)

    assert done.returncode == 1 and "published_postgres" in done.stdout, done.stdout + done.stderr
    assert "Neuaufbau: neues Arbeits-Warehouse" in done.stdout and "raw.data_quality_results" in done.stdout
    assert "Neuaufbau fehlgeschlagen" not in done.stdout
    assert not rebuild.aside_path(warehouse).exists()
    after = _histories(warehouse)
    for name, rows in before.items():
        assert rows <= after[name], name  # every earlier row kept as it was (snapshots: their valid-from times)
    new_runs = _runs(warehouse, "raw.data_quality_results") - runs_before
    assert len(new_runs) == 1  # the rebuild's own quality run on top of the history
    assert _runs(published, "marts.mart_data_quality") == runs_before | new_runs


def test_start_over_and_finish_move_the_working_file_aside_and_back(demo_data_dir, tmp_path):
    warehouse = tmp_path / "zi.duckdb"
    shutil.copy(demo_data_dir / "warehouse" / "zi.duckdb", warehouse)
    original = _digest(warehouse)
    histories = _histories(warehouse)

    kept = rebuild.start_over(warehouse)

    assert kept == {name: len(rows) for name, rows in histories.items()}
    assert _digest(rebuild.aside_path(warehouse)) == original
    assert _histories(warehouse) == histories
    con = duckdb.connect(str(warehouse))
    assert con.execute("select count(*) from duckdb_tables() where schema_name = 'marts'").fetchone()[0] == 0
    con.execute("create table half_built as select 1 as x")  # what a build that then fails leaves
    con.close()
    rebuild.finish(warehouse, published=False)
    assert _digest(warehouse) == original and not rebuild.aside_path(warehouse).exists()

    # Interrupted after the swap: the file in place is the one in use, the one aside is stale and goes.
    rebuild.start_over(warehouse)
    in_use = _digest(warehouse)
    kept_again = rebuild.start_over(warehouse)
    assert kept_again == kept
    rebuild.finish(warehouse, published=False)
    assert _digest(warehouse) == in_use
    # Interrupted between the two renames (nothing in place): the old file comes back first.
    rebuild.aside_path(warehouse).write_bytes(warehouse.read_bytes())
    warehouse.unlink()
    assert rebuild.start_over(warehouse) == kept
    rebuild.finish(warehouse, published=True)
    assert not rebuild.aside_path(warehouse).exists() and _histories(warehouse) == histories
