"""Milliseconds per stored event of the instance's SQLite event log (docs/performance.md, fixes 18 and 19).

Usage: ``.venv/bin/python bench/zi_bench_event_log.py [checkout]`` — stores 150 asset materialisations and 150
log lines with ``ZiSqliteEventLogStorage`` of ``checkout`` (default: this repository) in a fresh directory,
three times; to compare two versions, run it on both checkouts one after the other, twice.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

EVENTS = 150
REPETITIONS = 3


def main() -> None:
    checkout = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(checkout))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from dagster._core.events.log import EventLogEntry

    from dagster_zi.event_log_storage import ZiSqliteEventLogStorage
    from test_event_log_storage import _materialization  # the tests' asset event, one home for it

    def entry(i: int, asset: bool) -> EventLogEntry:
        if asset:
            return _materialization("run", i)
        return EventLogEntry(
            error_info=None,
            level=20,
            user_message=f"line {i}",
            run_id="run",
            timestamp=time.time(),
            step_key="zi_dbt_assets",
            job_name="build_warehouse",
            dagster_event=None,
        )

    ms: dict[str, list[float]] = {"asset event": [], "log line": []}
    for _ in range(REPETITIONS):
        with tempfile.TemporaryDirectory() as folder:
            storage = ZiSqliteEventLogStorage(folder)
            storage.store_event(entry(-1, asset=False))  # the files exist; what is timed is the steady state
            for label, asset in (("asset event", True), ("log line", False)):
                started = time.perf_counter()
                for i in range(EVENTS):
                    storage.store_event(entry(i, asset))
                ms[label].append(round((time.perf_counter() - started) / EVENTS * 1000, 2))
            storage.dispose()
    print(checkout, {label: values for label, values in ms.items()}, "ms per event")


if __name__ == "__main__":
    main()
