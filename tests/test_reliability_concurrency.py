"""Concurrent readers: a reader of the published warehouse neither blocks a build nor sees partial data.

DuckDB: during a real `zi build` (subprocess, new input so the marts change), one reader process holds
the published file open in a transaction the whole time, and a second reader re-opens the file again and
again. The build must finish while the reader holds the file; the holder keeps seeing the complete old
marts; every snapshot the re-opening reader takes is the complete old or the complete new set.

PostgreSQL: proven in tests/test_serving_postgres.py
(``test_reader_holding_a_transaction_sees_the_complete_old_then_the_complete_new_set``: a reader holding a
transaction keeps the complete old set, a polling reader sees only the complete old or new set and is
never queued behind the publish) and ``test_dagster_asset_publishes_the_published_file_or_says_it_has_nothing_to_do``
(the PostgreSQL publish never needs the working warehouse, so it cannot block the build's writer).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import run_zi
from test_reliability_crash import HISTORY_MARTS, RELEASE_MARTS, marts_fingerprint

pytestmark = pytest.mark.slow

#: A reader in its own process (DuckDB locks are per process): holds one connection and one transaction
#: open, or re-opens the file for each snapshot; prints one JSON line per snapshot.
READER = r"""
import json, sys, time, duckdb
path, mode, stop = sys.argv[1], sys.argv[2], sys.argv[3]
import os

def snapshot(con):
    names = [r[0] for r in con.execute(
        "select table_name from duckdb_tables() where schema_name = 'marts' "
        "and table_name not in ('mart_data_quality', 'mart_restatements') order by 1").fetchall()]  # as marts_fingerprint
    return {n: list(con.execute(f'select count(*), coalesce(sum(hash(t)), 0) from marts."{n}" t').fetchone())
            for n in names}

if mode == "hold":
    con = duckdb.connect(path, read_only=True)
    con.execute("begin transaction")
    print(json.dumps(snapshot(con)), flush=True)
    while not os.path.exists(stop):
        print(json.dumps(snapshot(con)), flush=True)
        time.sleep(0.5)
    con.close()
else:
    while not os.path.exists(stop):
        con = duckdb.connect(path, read_only=True)
        print(json.dumps(snapshot(con)), flush=True)
        con.close()
        time.sleep(0.05)
"""


# the reader script below leaves out the same marts (history, and the marts only a release has)
assert {"mart_data_quality", "mart_restatements"} == HISTORY_MARTS | RELEASE_MARTS


def as_json(fingerprint: dict) -> dict:
    return json.loads(json.dumps({k: list(v) for k, v in fingerprint.items()}))


def test_readers_of_the_published_file_during_a_build(demo_build, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(demo_build["data_dir"], data_dir, symlinks=True)
    published = data_dir / "published" / "zi.duckdb"
    old = as_json(marts_fingerprint(published))
    for path in sorted((data_dir / "landing" / "forecasts").glob("Prognose_Dortmund_*")):
        path.unlink()  # new input: the build's marts differ from the published ones

    stop = tmp_path / "stop"
    # Snapshots go to files, not pipes: a full pipe would stall a reader for the rest of the build.
    logs = {mode: tmp_path / f"{mode}.jsonl" for mode in ("hold", "reopen")}
    readers = {
        mode: subprocess.Popen(
            [sys.executable, "-c", READER, str(published), mode, str(stop)],
            stdout=logs[mode].open("w"),
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("hold", "reopen")
    }
    try:
        deadline = time.monotonic() + 60
        while not logs["hold"].read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.1)
        first = logs["hold"].read_text().splitlines()[0]
        assert json.loads(first) == old
        started = time.perf_counter()
        result = run_zi(data_dir, "build")  # raises if the build fails or is blocked by the reader's lock
        seconds = time.perf_counter() - started
        assert "Build erfolgreich" in result.stdout
        assert readers["hold"].poll() is None, "the holding reader ended during the build"
        time.sleep(1.0)  # a few snapshots of the new file
    finally:
        stop.touch()
        errors = {mode: proc.communicate(timeout=60)[1] for mode, proc in readers.items()}
    new = as_json(marts_fingerprint(data_dir / "warehouse" / "zi.duckdb"))
    assert new != old
    assert as_json(marts_fingerprint(published)) == new

    for mode, err in errors.items():
        assert readers[mode].returncode == 0, err
        snapshots = logs[mode].read_text().splitlines()
        seen = [json.loads(line) for line in snapshots]
        assert len(seen) >= 3, (mode, seconds)
        assert all(s in (old, new) for s in seen), f"{mode}: a reader saw a partial or mixed warehouse"
        if mode == "hold":
            assert all(s == old for s in seen)  # its open file stays the complete old copy
        else:
            assert seen[0] == old and seen[-1] == new
    print(f"build with readers attached: {seconds:.1f} s")
    assert os.path.exists(published)
