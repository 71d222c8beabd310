"""What months of operation cost a delivery: the quality history grown to N runs, then one new workbook.

Usage: ``.venv/bin/python bench/zi_bench_history.py DATA_DIR [--runs 1000]`` — DATA_DIR is a data directory with
a finished build (e.g. a copy of one ``make bench`` kept with ``--keep``); it is changed. The newest quality
run of ``marts.mart_data_quality`` is copied under ``--runs`` earlier run ids (3 hours apart, all before it), as
if the pipeline had run that often; then one forecast workbook is taken out and put back, and the build that
loads it again is timed with its step times (docs/performance.md, fixes 23 and 24).

``--publish-rounds N [--compare-with CHECKOUT]`` times publishing alone instead of the workbook: each round adds
one quality run to the warehouse (as a quality run does) and publishes it, with this checkout's code and, when
given, another checkout's (e.g. ``git worktree add /tmp/before <rev>``), interleaved, each into its own copy of
the published folder (``DATA_DIR/published-<label>``; the first round of a copy may write everything).
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


PUBLISH_ONCE = """
import json, sys
from pathlib import Path
from zi_warehouse.publish import publish
result = publish(Path(sys.argv[1]), Path(sys.argv[2]))
print(json.dumps({"seconds": result.seconds, "runs_replaced": getattr(result, "runs_replaced", None)}))
"""


def add_quality_run(warehouse: Path) -> None:
    """One more quality run, an hour after the newest, which it replaces as the latest (as the dbt model does)."""
    run = f"bench-{time.time_ns()}"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            """
            insert into marts.mart_data_quality
            select * replace (md5(result_id || ?) as result_id, ? as run_id,
                run_started_at + interval 1 hour as run_started_at)
            from marts.mart_data_quality where is_latest_run
            """,
            [run, run],
        )
        con.execute("update marts.mart_data_quality set is_latest_run = run_id = ?", [run])


def publish_rounds(data_dir: Path, rounds: int, checkouts: dict[str, Path]) -> None:
    """Each round: one quality run more, then one publish per checkout (order alternating), timed by phase."""
    warehouse = data_dir / "warehouse" / "zi.duckdb"
    targets = {label: data_dir / f"published-{label}" for label in checkouts}
    for target in targets.values():
        if not target.exists():
            subprocess.run(["cp", "-a", str(data_dir / "published"), str(target)], check=True)
    for round_no in range(rounds):
        add_quality_run(warehouse)
        order = list(checkouts) if round_no % 2 == 0 else list(reversed(checkouts))
        for label in order:
            env = {**os.environ, "PYTHONPATH": str(checkouts[label])}
            done = subprocess.run(  # run in the checkout: `-c` puts the working directory first on the path
                [sys.executable, "-c", PUBLISH_ONCE, str(warehouse), str(targets[label])],
                cwd=checkouts[label],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            print(round_no, label, done.stdout.strip().splitlines()[-1], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--publish-rounds", type=int, default=0, help="time publishing alone, this many rounds")
    parser.add_argument("--compare-with", type=Path, help="another checkout, for --publish-rounds")
    args = parser.parse_args()
    rows, runs = grow_history(args.data_dir / "warehouse" / "zi.duckdb", args.runs)
    print(f"quality history: {rows} rows, {runs} runs", flush=True)
    if args.publish_rounds:
        checkouts = {"this": Path(__file__).resolve().parent.parent}
        if args.compare_with:
            checkouts["other"] = args.compare_with.resolve()
        publish_rounds(args.data_dir, args.publish_rounds, checkouts)
        return
    workbook = sorted((args.data_dir / "landing" / "forecasts").glob("*.xlsx"))[0]
    held = args.data_dir / workbook.name
    workbook.rename(held)
    print("workbook taken out:", build(args.data_dir), flush=True)
    held.rename(workbook)
    print("workbook put back:", build(args.data_dir), flush=True)


if __name__ == "__main__":
    main()
