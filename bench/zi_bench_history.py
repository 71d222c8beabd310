"""What months of operation cost a delivery: the quality history grown to N runs, then one new workbook.

Usage: ``.venv/bin/python bench/zi_bench_history.py DATA_DIR [--runs 1000]`` — DATA_DIR is a data directory with
a finished build (e.g. a copy of one ``make bench`` kept with ``--keep``); it is changed. The newest quality
run of ``marts.mart_data_quality`` is copied under ``--runs`` earlier run ids (3 hours apart, all before it), as
if the pipeline had run that often; then one forecast workbook is taken out and put back, and the build that
loads it again is timed with its step times (docs/performance.md, fix 23 and Open points).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb

ZI = str(Path(sys.executable).parent / "zi")


def grow_history(warehouse: Path, runs: int) -> tuple[int, int]:
    """Copies of the newest run under ``runs`` earlier run ids; returns (rows, runs) of the history afterwards."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            """
            insert into marts.mart_data_quality
            select * exclude (i) replace (
                md5(result_id || '-' || i) as result_id,
                run_id || '-' || i as run_id,
                run_started_at - i * interval 3 hour as run_started_at,
                false as is_latest_run)
            from marts.mart_data_quality, range(1, ? + 1) as copies(i)
            where is_latest_run
            """,
            [runs],
        )
        return con.execute("select count(*), count(distinct run_id) from marts.mart_data_quality").fetchone()


def build(data_dir: Path) -> dict:
    timings = data_dir / "history-bench-timings.json"
    env = {**os.environ, "ZI_DATA_DIR": str(data_dir), "ZI_BUILD_TIMINGS": str(timings), "DO_NOT_TRACK": "1"}
    env.pop("DAGSTER_HOME", None)
    started = time.perf_counter()
    done = subprocess.run([ZI, "build", "--no-demo-if-empty"], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"zi build failed:\n{done.stdout[-3000:]}")
    detail = json.loads(timings.read_text())
    top = sorted(detail["step_seconds"].items(), key=lambda item: -item[1])[:6]
    return {"seconds": round(time.perf_counter() - started, 2), "slowest_steps": dict(top)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    rows, runs = grow_history(args.data_dir / "warehouse" / "zi.duckdb", args.runs)
    print(f"quality history: {rows} rows, {runs} runs", flush=True)
    workbook = sorted((args.data_dir / "landing" / "forecasts").glob("*.xlsx"))[0]
    held = args.data_dir / workbook.name
    workbook.rename(held)
    print("workbook taken out:", build(args.data_dir), flush=True)
    held.rename(workbook)
    print("workbook put back:", build(args.data_dir), flush=True)


if __name__ == "__main__":
    main()
