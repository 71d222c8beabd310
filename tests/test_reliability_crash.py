"""Crash safety: `zi build` killed with SIGKILL during dbt and during publishing, then run again.

The published warehouse must always be a complete copy (the previous or the new one, never a mix or a
half-written file), the re-run must complete, and no temporary files of the killed run may stay behind.
The build runs as a real subprocess in its own process group; the test kills the whole group (the dbt
child included) at a moment it observes from outside (a dbt process in the group, the staging folder of the
new release), never through a hook in the code under test. A publish killed at each of its steps:
tests/test_publish_crash.py.

The data directory starts as a copy of the session's demo build (so a previous published copy exists
without building it again); before the killed builds some forecast workbooks are removed, so the new
marts differ from the previous ones and a mix would be visible.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from conftest import REPO_ROOT, ZI, run_zi

pytestmark = pytest.mark.slow


#: Marts that keep a history across runs (run ids, run times): another run adds rows by design.
HISTORY_MARTS = {"mart_data_quality"}
#: Marts the publish adds to a release (not in the working warehouse the published copy is compared with).
RELEASE_MARTS = {"mart_restatements"}


def group_commands(pgid: int) -> list[str]:
    """Command lines of every live process in a process group (read from /proc; psutil is not installed)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
            # pgrp is the 5th field; the command name (2nd) may contain spaces, so split after its ')'
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) != pgid or fields[0] == "Z":
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                found.append(fh.read().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ValueError):
            continue  # the process ended while we looked
    return found


def start_build(data_dir: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "ZI_DATA_DIR": str(data_dir),
        "DO_NOT_TRACK": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "COLUMNS": "200",
    }
    for name in ("ZI_POSTGRES_DSN", "PGHOST", "PGHOSTADDR", "PGSERVICE", "PGDATABASE"):
        env.pop(name, None)  # PostgreSQL is not part of this test
    env.pop("DAGSTER_HOME", None)  # the data directory's own instance, as for every `zi` of the tests (zi_env)
    return subprocess.Popen(
        [ZI, "build"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while group_commands(proc.pid) and time.monotonic() < deadline:  # the dbt child dies with the group
        time.sleep(0.1)
    assert group_commands(proc.pid) == [], "processes of the killed build survived"


def wait_for(proc: subprocess.Popen, condition, timeout_s: float, poll_s: float = 0.01) -> bool:
    """Poll ``condition`` until it holds (True) or the build ended or the time ran out (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll_s)
    return False


def marts_fingerprint(db: Path) -> dict[str, tuple[int, int]]:
    """Row count and an order-independent content hash of every table in schema marts."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'marts' order by 1"
            ).fetchall()
            if r[0] not in HISTORY_MARTS | RELEASE_MARTS
        ]
        return {
            n: con.execute(f'select count(*), coalesce(sum(hash(t)), 0) from marts."{n}" t').fetchone() for n in names
        }
    finally:
        con.close()


def parquet_counts(published: Path) -> dict[str, int]:
    folder = published / "parquet"
    return {
        p.stem: pq.read_metadata(p).num_rows
        for p in sorted(folder.glob("*.parquet"))
        if p.stem not in HISTORY_MARTS | RELEASE_MARTS
    }


def counts(fingerprint: dict[str, tuple[int, int]]) -> dict[str, int]:
    return {name: rows for name, (rows, _) in fingerprint.items()}


def staging(published: Path) -> list[str]:
    """Release folders being written (``published/releases/.staging-<id>``)."""
    try:
        return [p.name for p in (published / "releases").iterdir() if p.name.startswith(".staging-")]
    except FileNotFoundError:
        return []


def assert_no_leftovers(data_dir: Path) -> None:
    published = data_dir / "published"
    assert sorted(p.name for p in published.iterdir()) == [
        ".releases.lock",
        "current",
        "parquet",
        "releases",
        "zi.duckdb",
    ]
    assert not [p.name for p in (published / "releases").iterdir() if p.name.startswith(".")], (
        "a staging folder of a killed publish stayed behind"
    )
    assert not list(data_dir.rglob("*.tmp")), "temporary files of a killed run stayed behind"
    assert not list((data_dir / "warehouse").glob("*.wal")), "the working warehouse was not checkpointed"
    con = duckdb.connect(str(data_dir / "warehouse" / "zi.duckdb"), read_only=True)
    try:
        tmp_relations = con.execute(
            "select schema_name || '.' || table_name from duckdb_tables() where table_name like '%dbt_tmp%' "
            "union all select schema_name || '.' || view_name from duckdb_views() where view_name like '%dbt_tmp%'"
        ).fetchall()
    finally:
        con.close()
    assert tmp_relations == []


def assert_published_is_complete(data_dir: Path, *allowed: dict[str, tuple[int, int]]) -> dict:
    """The published DuckDB file equals one allowed fingerprint exactly; its Parquet set has the same counts."""
    published = data_dir / "published"
    got = marts_fingerprint(published / "zi.duckdb")
    assert got in allowed, "published warehouse is neither the complete previous nor the complete new one"
    assert parquet_counts(published) in [counts(a) for a in allowed]
    return got


@pytest.fixture(scope="module")
def crash_dir(demo_build, tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("crash") / "data"
    shutil.copytree(demo_build["data_dir"], data_dir, symlinks=True)
    return data_dir


def test_kill_during_dbt_then_during_publish_then_rerun(crash_dir):
    data_dir = crash_dir
    published = data_dir / "published"
    previous = marts_fingerprint(data_dir / "warehouse" / "zi.duckdb")
    assert marts_fingerprint(published / "zi.duckdb") == previous  # the demo build published what it built

    # New input: drop every workbook of one municipality, so the new marts differ from the previous ones.
    forecasts = sorted((data_dir / "landing" / "forecasts").glob("Prognose_Bochum_*"))
    assert forecasts
    for path in forecasts:
        path.unlink()

    # 1. SIGKILL while dbt runs (some models rebuilt, others not yet).
    proc = start_build(data_dir)
    try:
        # dbt runs as `.venv/bin/zi-dbt build ...` (zi_warehouse/dbt_launcher.py)
        assert wait_for(
            proc, lambda: any("dbt build" in c for c in group_commands(proc.pid)), timeout_s=300, poll_s=0.1
        ), "the build never started dbt"
        time.sleep(4)  # let dbt replace some models in the working warehouse
        assert any("dbt build" in c for c in group_commands(proc.pid)), "dbt finished before the kill"
    finally:
        kill_group(proc)
    assert_published_is_complete(data_dir, previous)  # untouched: publishing never started
    assert not staging(published)

    # 2. Re-run, killed while publishing writes the new release (its staging folder exists).
    def publishing() -> bool:
        return bool(staging(published))

    proc = start_build(data_dir)
    try:
        caught = wait_for(proc, publishing, timeout_s=600)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert caught, f"publishing never started or the build ended first (exit code {proc.returncode})"
    new = marts_fingerprint(data_dir / "warehouse" / "zi.duckdb")  # dbt had finished: the new marts
    assert counts(new) != counts(previous)
    state = assert_published_is_complete(data_dir, previous, new)

    # 3. Re-run to the end: completes, publishes exactly the working warehouse, removes the leftovers.
    result = run_zi(data_dir, "build")
    assert "Build erfolgreich" in result.stdout
    final = marts_fingerprint(data_dir / "warehouse" / "zi.duckdb")
    assert counts(final) == counts(new)  # same input (exact equality: tests/test_reliability_determinism.py)
    assert assert_published_is_complete(data_dir, final) == final
    assert_no_leftovers(data_dir)
    print(f"published after the kill during publishing: {'previous' if state == previous else 'new'}")
