"""The writer lock: one build per data directory across processes, and a German sentence naming the holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from zi_warehouse import writer_lock

#: Another process takes the lock and reports on stdout when it holds it.
HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from zi_warehouse import writer_lock
    folder, wait = Path(sys.argv[1]), sys.argv[2]
    try:
        with writer_lock.hold(folder, "run-xyz", "Zeitplan daily_warehouse_build",
                              wait_seconds=None if wait == "forever" else float(wait)):
            print("HOLDING", flush=True)
            time.sleep(float(sys.argv[3]))
    except writer_lock.WriterBusy as busy:
        print("BUSY", busy, flush=True)
""")


def _start(folder, wait="0", hold_seconds="60") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), wait, hold_seconds], stdout=subprocess.PIPE, text=True
    )


def _wait_for_line(proc: subprocess.Popen, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            return line.strip()
    raise AssertionError("no line from the other process")


def test_a_second_process_is_refused_with_the_holder_named_in_german(tmp_path):
    other = _start(tmp_path)
    try:
        assert _wait_for_line(other) == "HOLDING"
        holder = writer_lock.current_holder(tmp_path)
        assert holder is not None and holder.run_id == "run-xyz" and holder.pid == other.pid
        with pytest.raises(writer_lock.WriterBusy) as busy, writer_lock.hold(tmp_path, "", "zi build", wait_seconds=0):
            pass
        message = str(busy.value)
        assert "läuft bereits ein Build" in message and "Lauf run-xyz" in message
        assert "Zeitplan daily_warehouse_build" in message and "seit" in message and f"Prozess {other.pid}" in message
    finally:
        other.kill()
        other.wait()


def test_a_waiting_process_gets_the_lock_when_the_holder_finishes(tmp_path):
    told = []
    with writer_lock.hold(tmp_path, "first", "zi build"):
        waiter = _start(tmp_path, wait="forever", hold_seconds="0")
        time.sleep(1.5)
        assert waiter.poll() is None  # still waiting while this process holds the lock
    assert _wait_for_line(waiter) == "HOLDING"
    waiter.wait(timeout=30)
    assert waiter.returncode == 0
    with writer_lock.hold(tmp_path, "again", "zi build", wait_seconds=0, on_wait=told.append):
        pass
    assert told == []  # nobody held it any more: no waiting message


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    other = _start(tmp_path)
    assert _wait_for_line(other) == "HOLDING"
    os.kill(other.pid, signal.SIGKILL)
    other.wait()
    assert writer_lock.current_holder(tmp_path) is None
    with writer_lock.hold(tmp_path, "next", "zi build", wait_seconds=0) as me:
        assert me.pid == os.getpid()


def test_the_lock_is_reentrant_within_one_process(tmp_path):
    """`zi build` holds the lock and then executes the run, whose executor takes it again in the same process."""
    with writer_lock.hold(tmp_path, "", "zi build", wait_seconds=0):
        writer_lock.set_run_id(tmp_path, "abc")
        with writer_lock.hold(tmp_path, "abc", "zi build", wait_seconds=0) as inner:
            assert inner.run_id == "abc"
        assert writer_lock.current_holder(tmp_path).run_id == "abc"
    assert writer_lock.current_holder(tmp_path) is None


def test_the_holder_is_described_by_its_run_or_by_the_command_that_holds_it():
    import datetime as dt

    now = dt.datetime.now(dt.UTC).isoformat()
    sensor = writer_lock.Holder("3f2a1b2c-0000-4000-8000-000000000000", "Sensor landing_sensor", now, 4711, "zi-server")
    assert sensor.describe_de().startswith("Lauf 3f2a1b2c, gestartet von Sensor landing_sensor, seit ")
    assert sensor.describe_de().endswith("(vor weniger als 1 min), Prozess 4711 auf zi-server")
    # zi build holds it under its own name from its decision to the end of its run: no guess what it does
    command = writer_lock.Holder("", "zi build", now, 4712, "zi-server")
    assert command.describe_de().startswith("zi build, seit ") and "Lauf" not in command.describe_de()


#: What a build with nothing new must not import (each 0.1-2 s): Dagster, the PostgreSQL driver and pyarrow (asking
#: whether a PostgreSQL server is configured), the demo generator (asking whether the landing area is empty).
_HEAVY_IMPORTS = ("dagster", "psycopg", "pyarrow", "zi_warehouse.demo")

_BUILD_NOTING_THE_LOCK = f"""
import atexit
import sys
from zi_warehouse import writer_lock

atexit.register(lambda: print("Am Ende importiert:", [m for m in {_HEAVY_IMPORTS!r} if m in sys.modules], flush=True))

taken = writer_lock.hold


def hold(*args, **kwargs):  # what this process had imported when it took the writer lock
    print("Dagster vor der Sperre:", any(m.split(".")[0] == "dagster" for m in sys.modules), flush=True)
    return taken(*args, **kwargs)


writer_lock.hold = hold
from zi_warehouse.cli import main

sys.argv = ["zi", "build"]
main()
"""


def test_zi_build_imports_dagster_before_it_takes_the_writer_lock_and_nothing_heavy_for_no_change(demo_build, tmp_path):
    """Dagster's import and its instance take ~2 s: a build does that before it takes the writer lock, so a run
    queued behind the lock or a colleague's build does not wait for it; a build with nothing new imports neither
    Dagster nor anything else it does not need (``_HEAVY_IMPORTS``)."""
    from conftest import REPO_ROOT, copy_built_data_dir, zi_env

    data_dir = copy_built_data_dir(demo_build["data_dir"], tmp_path / "data")
    sorted((data_dir / "landing" / "forecasts").glob("Prognose_*.xlsx"))[0].unlink()
    shown = []
    for _ in range(2):  # the partial build, then the build with nothing new
        result = subprocess.run(
            [sys.executable, "-c", _BUILD_NOTING_THE_LOCK],
            cwd=REPO_ROOT,
            env=zi_env(data_dir),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        shown.append(result.stdout)
    assert "Teillauf" in shown[0] and "Dagster vor der Sperre: True" in shown[0], shown[0]
    assert "Keine Änderung" in shown[1] and "Dagster vor der Sperre: False" in shown[1], shown[1]
    assert "Am Ende importiert: []" in shown[1], shown[1]
