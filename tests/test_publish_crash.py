"""A publish killed at every step leaves the stable paths on one whole release; the next publish completes.

The publish runs in a separate process (a harness that imported everything once and forks one child per
publish). In the child every file-system operation (mkdir, link, copy, rename, replace, symlink, chmod,
fsync, unlink, rmtree) and every statement that writes a mart into the new release's DuckDB or Parquet files
is counted; the child kills itself with SIGKILL right before operation k. A run of operations of one kind (the
chmods that make a release read-only) is one step. The test runs the publish once to list the operations,
then once per step, killed before its first operation, each time on a fresh copy of the same published
folder, and checks:

- ``published/zi.duckdb`` and every ``published/parquet/<mart>.parquet`` (the quality history: its folder of
  monthly files) show the same release, and that is
  the complete previous or the complete new one (content of every mart, compared by a fingerprint);
- a publish afterwards completes, shows the new release, and no staging folder or old-layout file is left.

Three situations: an update of an existing release (the incremental path: DuckDB file copied, unchanged
Parquet files linked, the quality history's new runs replaced in the copy), the first publish into an empty folder, and the first publish over the layout before
releases (a real zi.duckdb and a parquet link to a version folder).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pytest

from conftest import published_parquet, read_parquet_sql
from zi_warehouse import releases
from zi_warehouse.publish import publish

REPO_ROOT = Path(__file__).resolve().parent.parent

HARNESS = r'''
import json, os, shutil, signal, sys
from pathlib import Path
import duckdb
from zi_warehouse import publish as publish_module

state = {"n": 0, "kill_at": 0, "log": []}


def step(label):
    state["n"] += 1
    state["log"].append(label)
    if state["n"] == state["kill_at"]:
        os.kill(os.getpid(), signal.SIGKILL)


def counted(module, name):
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        step(f"{module.__name__}.{name}")
        return original(*args, **kwargs)

    setattr(module, name, wrapper)


for name in ("mkdir", "rename", "replace", "symlink", "link", "chmod", "fsync", "unlink", "rmdir"):
    counted(os, name)
for name in ("copyfile", "rmtree"):
    counted(shutil, name)

#: Writing a mart into the new DuckDB file or a Parquet file (comments, attach and detach add no new state).
WRITES = ("create table published", "delete from published", "insert into published", "copy ")
real_connect = duckdb.connect


class Counted:
    """The publish's DuckDB connection: a statement that writes the new release is a step."""

    def __init__(self, con):
        self._con = con

    def execute(self, query, *args, **kwargs):
        text = " ".join(query.split()).lower()
        if text.startswith(WRITES):
            step("duckdb: " + text[:40])
        return self._con.execute(query, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


duckdb.connect = lambda *args, **kwargs: Counted(real_connect(*args, **kwargs))

for line in sys.stdin:
    order = json.loads(line)
    pid = os.fork()
    if pid == 0:
        state["kill_at"] = order["kill_at"]
        publish_module.publish(Path(order["warehouse"]), Path(order["published"]), run_id=order["run_id"])
        Path(order["report"]).write_text(json.dumps({"steps": state["n"], "log": state["log"]}))
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    print(json.dumps({"killed": killed, "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}),
          flush=True)
'''


class Harness:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HARNESS], cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def publish(self, warehouse: Path, published: Path, kill_at: int, report: Path) -> dict:
        order = {
            "warehouse": str(warehouse),
            "published": str(published),
            "kill_at": kill_at,
            "run_id": f"crash-{kill_at:04d}",
            "report": str(report),
        }
        self.proc.stdin.write(json.dumps(order) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def harness():
    h = Harness()
    yield h
    h.close()


def build_warehouse(path: Path, version: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("create schema if not exists marts")
    con.execute(
        f"create or replace table marts.mart_a as select range as id, range * {version} as v from range({10 * version})"
    )
    con.execute("create or replace table marts.mart_b as select 'Bochum' as municipality_name, 2020 as year")
    if version == 2:
        con.execute("create or replace table marts.mart_c as select 1 as x")
    con.execute("comment on table marts.mart_a is 'Grain: eine Zeile je id'")
    # The quality history (published run by run, one Parquet file per month): version 2 adds a run.
    runs = [("r1", "2026-10-01"), ("r2", "2026-11-01")] + ([("r3", "2026-11-02")] if version == 2 else [])
    values = ", ".join(f"('{run}', timestamptz '{day} 08:00+00')" for run, day in runs)
    con.execute(
        "create or replace table marts.mart_data_quality as select run_id, run_started_at, "
        f"run_id = '{runs[-1][0]}' as is_latest_run, check_no from (values {values}) as r(run_id, run_started_at), "
        "range(4) as c(check_no)"
    )
    con.close()


FINGERPRINT = "select count(*), coalesce(sum(hash(t)), 0) from {} t"


def shown(published: Path) -> dict | None:
    """What the stable paths show: one fingerprint per mart, or None when nothing is published; fails when
    the DuckDB file and the Parquet files show different content (a mix of two releases)."""
    if not (published / "zi.duckdb").exists():
        assert not (published / "parquet").exists() or not list((published / "parquet").glob("*.parquet"))
        return None
    con = duckdb.connect()
    try:
        con.execute(f"attach '{published / 'zi.duckdb'}' as shown (read_only)")
        names = [
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where database_name = 'shown' order by 1"
            ).fetchall()
        ]
        in_duckdb = {n: con.execute(FINGERPRINT.format(f'shown.marts."{n}"')).fetchone() for n in names}
        in_parquet = {
            name: con.execute(FINGERPRINT.format(read_parquet_sql(path))).fetchone()
            for name, path in published_parquet(published / "parquet").items()
        }
    finally:
        con.close()
    assert in_duckdb == in_parquet, "the DuckDB file and the Parquet files show different releases"
    return in_duckdb


def legacy_layout(published: Path, warehouse: Path) -> None:
    """A published folder as the code before releases left it."""
    published.mkdir(parents=True)
    version = published / ".parquet-0123456789ab"
    version.mkdir()
    con = duckdb.connect()
    con.execute(f"attach '{warehouse}' as w (read_only)")
    con.execute(f"attach '{published / 'zi.duckdb'}' as p (storage_version 'v1.0.0')")
    con.execute("create schema p.marts")
    for (name,) in con.execute("select table_name from duckdb_tables() where database_name = 'w'").fetchall():
        con.execute(f"create table p.marts.{name} as select * from w.marts.{name}")
        con.execute(f"copy w.marts.{name} to '{version / (name + '.parquet')}' (format parquet)")
    con.close()
    (published / "parquet").symlink_to(version.name)


@pytest.fixture
def scratch(tmp_path) -> Path:
    """Memory-backed when the machine has one: the kills test process crashes, not power loss, and ~500
    publishes with their fsyncs would otherwise take minutes on a shared disk."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="zi-publish-crash-", dir=shm))
        yield folder
        releases.remove_tree(folder)
    else:
        yield tmp_path


@pytest.mark.parametrize("situation", ["update", "first", "legacy"])
def test_a_publish_killed_at_every_step_leaves_one_whole_release(harness, scratch, situation):
    tmp_path = scratch
    v1, v2 = tmp_path / "v1.duckdb", tmp_path / "v2.duckdb"
    build_warehouse(v1, 1)
    build_warehouse(v2, 2)
    template = tmp_path / "template" / "published"
    if situation == "update":
        publish(v1, template)
        publish(v1, template)  # a second release: the first was linked from, then removed
    elif situation == "legacy":
        legacy_layout(template, v1)
    else:
        template.mkdir(parents=True)
    before = shown(template)
    assert (before is None) == (situation == "first")

    # The new release, published without a kill: what a completed publish shows, and how many steps it has.
    done = tmp_path / "done" / "published"
    shutil.copytree(template, done, symlinks=True)
    report = tmp_path / "report.json"
    assert harness.publish(v2, done, 0, report) == {"killed": False, "exit": 0}
    steps = json.loads(report.read_text())["steps"]
    log = json.loads(report.read_text())["log"]
    after = shown(done)
    assert after != before and set(after) == {"mart_a", "mart_b", "mart_c", "mart_data_quality", "mart_restatements"}
    assert steps >= 30, log

    outcomes = {"previous": 0, "new": 0}
    # One kill per step: a run of operations of the same kind (the chmods that make a release read-only,
    # the unlinks that remove an old one) is one step, killed before its first operation.
    kill_points = [k for k in range(1, steps + 1) if k == 1 or log[k - 1] != log[k - 2]]
    for k in kill_points:
        work = Path(tempfile.mkdtemp(dir=tmp_path)) / "published"
        shutil.copytree(template, work, symlinks=True)
        assert harness.publish(v2, work, k, report)["killed"], f"step {k} ({log[k - 1]}) was not reached"
        now = shown(work)
        assert now in (before, after), f"killed before step {k} ({log[k - 1]}): neither the old nor the new release"
        outcomes["previous" if now == before else "new"] += 1
        # The next publish completes and tidies up what the killed one left.
        assert harness.publish(v2, work, 0, report) == {"killed": False, "exit": 0}, f"re-run after step {k}"
        assert shown(work) == after
        left = sorted(p.name for p in work.iterdir())
        assert left == [".releases.lock", "current", "parquet", "releases", "zi.duckdb"], (k, left)
        assert not [p.name for p in (work / "releases").iterdir() if p.name.startswith(".")], k
        releases.remove_tree(work.parent)
    assert outcomes["previous"] > 0 and outcomes["new"] > 0, outcomes
    print(f"{situation}: {steps} operations, {len(kill_points)} steps, killed before each: {outcomes}")
