"""Two checkouts, one delivery: ``zi build`` after one new forecast workbook, interleaved (docs/performance.md).

Usage: ``.venv/bin/python bench/zi_bench_ab.py BEFORE AFTER [--rounds 4] [--work /tmp/zi-ab]`` — BEFORE and AFTER
are checkouts of this repository (e.g. ``git worktree add /tmp/before <rev>``; each needs ``target/`` from
``make setup``, copied from here if missing). Each gets its own data directory with the scale-1 demo landing
area of ``make bench`` (``bench/results/landing-cache``, generated if missing) and one full build. Then per
round one workbook is taken out (a build) and put back, and the build that loads it again is timed, the two
checkouts alternating which goes first. Prints the seconds per round and the means; the figures are only
comparable within one run (the machines are shared).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ZI = str(Path(sys.executable).parent / "zi")


def build(checkout: Path, data_dir: Path) -> float:
    env = {
        **os.environ,
        "ZI_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(checkout),  # this checkout's code, this virtual environment's packages
        "DO_NOT_TRACK": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "COLUMNS": "160",
    }
    env.pop("DAGSTER_HOME", None)
    started = time.perf_counter()
    done = subprocess.run([ZI, "build", "--no-demo-if-empty"], cwd=checkout, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"zi build in {checkout} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--work", type=Path, default=Path("/tmp/zi-ab"))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    from zi_bench import generate_landing

    landing, _ = generate_landing(1.0)
    checkouts = {"before": args.before.resolve(), "after": args.after.resolve()}
    data_dirs = {}
    for label, checkout in checkouts.items():
        if not (checkout / "target" / "manifest.json").exists():
            shutil.copytree(REPO_ROOT / "target", checkout / "target", dirs_exist_ok=True)
        data_dir = data_dirs[label] = args.work / label
        if data_dir.exists():
            shutil.rmtree(data_dir)
        shutil.copytree(landing, data_dir / "landing")
        print(f"{label}: full build {build(checkout, data_dir):.2f} s", flush=True)
    workbooks = sorted((landing / "forecasts").glob("*.xlsx"))[: args.rounds]
    seconds: dict[str, list[float]] = {label: [] for label in checkouts}
    for i, workbook in enumerate(workbooks):
        order = list(checkouts) if i % 2 == 0 else list(checkouts)[::-1]
        for label in order:
            placed = data_dirs[label] / "landing" / "forecasts" / workbook.name
            held = data_dirs[label] / workbook.name
            placed.rename(held)
            build(checkouts[label], data_dirs[label])
            held.rename(placed)
            seconds[label].append(round(build(checkouts[label], data_dirs[label]), 2))
            print(f"{label}: {workbook.name} {seconds[label][-1]} s (load {os.getloadavg()[0]:.1f})", flush=True)
    means = {label: round(sum(s) / len(s), 2) for label, s in seconds.items()}
    print(json.dumps({"seconds": seconds, "means": means}))


if __name__ == "__main__":
    main()
