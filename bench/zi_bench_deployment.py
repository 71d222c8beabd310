"""The deployment measured: the build through Dagster's own launch paths, and a delivery through the daemon.

What belongs here: starting ``dagster job execute`` and ``zi serve`` on a data directory the command-line
scenarios built, launching the build job through the daemon's queue (as a click in the UI does, over the
webserver's GraphQL API), and timing a workbook dropped into the landing folder until its feedback workbook
exists and until the published marts contain it. It measures; it asserts nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
#: The status written into the dropped workbook: not a status, so the row is rejected and a feedback
#: workbook is written (a workbook without rejections gets none).
BAD_STATUS = "Status gibt es nicht"


def _instance(data_dir: Path):
    from dagster import DagsterInstance

    return DagsterInstance.from_config(str(data_dir / "dagster"))


def job_execute(repo: Path, data_dir: Path, env: dict, timeout_s: float) -> dict:
    """The build job through ``dagster job execute`` (Dagster's own command line; executor of the job)."""
    log = data_dir / "build-dagster_job_execute.log"
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        done = subprocess.run(
            [str(BIN / "dagster"), "job", "execute", "-m", "dagster_zi.definitions", "-j", "build_warehouse"],
            cwd=repo,
            env={**env, "DAGSTER_HOME": str(data_dir / "dagster")},
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
        )
    return {
        "label": "dagster_job_execute",
        "seconds": round(time.perf_counter() - started, 2),
        "success": done.returncode == 0,
        "exit_code": done.returncode,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(condition, timeout_s: float, step: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return None


@contextmanager
def serve(repo: Path, data_dir: Path, env: dict) -> Iterator[dict]:
    """``zi serve`` (UI, daemon, run worker) on ``data_dir`` until the block ends; its start-up seconds."""
    port = _free_port()
    log = open(data_dir / "serve.log", "w", encoding="utf-8")  # noqa: SIM115 - open while zi serve runs
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "zi"), "serve", "--port", str(port)],
        cwd=repo,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def ready() -> bool:  # the UI answers, and the run worker is warm (it listens while it warms up)
        from dagster_zi.run_worker import ask

        if not (ask(data_dir / "dagster" / "run-worker.sock", {"op": "ping"}) or {}).get("ok"):
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        up = _wait(ready, 300, 0.5)
        yield {"port": port, "ready": bool(up), "startup_seconds": round(time.perf_counter() - started, 1)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _run_times(record) -> dict:
    run = record.dagster_run
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "success": run.status.value == "SUCCESS",
        "queued_to_end_seconds": round(record.end_time - record.create_timestamp.timestamp(), 2)
        if record.end_time
        else None,
        "start_to_end_seconds": round(record.end_time - record.start_time, 2)
        if record.end_time and record.start_time
        else None,
    }


def daemon_full(port: int, data_dir: Path, timeout_s: float) -> dict:
    """The build job launched as the UI launches it (through the queue, the daemon and the run worker)."""
    from dagster_graphql import DagsterGraphQLClient

    submitted = time.time()
    run_id = DagsterGraphQLClient("127.0.0.1", port_number=port).submit_job_execution("build_warehouse")
    with _instance(data_dir) as instance:
        record = _wait(
            lambda: (r := instance.get_run_record_by_id(run_id)) and r.dagster_run.is_finished and r, timeout_s, 0.5
        )
        if record is None:
            return {"label": "daemon_full", "success": False, "timed_out": True}
        times = _run_times(record)
    return {"label": "daemon_full", **times, "seconds": round(record.end_time - submitted, 2)}


def with_bad_row(source: Path, target: Path) -> Path:
    """A copy of a forecast workbook whose first project row has a status that is no status (one rejection)."""
    import openpyxl

    workbook = openpyxl.load_workbook(source)
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            header = next((c for c in row if isinstance(c.value, str) and "status" in c.value.lower()), None)
            if header is not None:
                sheet.cell(row=header.row + 1, column=header.column).value = BAD_STATUS
                workbook.save(target)
                return target
    raise ValueError(f"{source.name}: no status column found")


def published_files(data_dir: Path) -> set[str]:
    """The landing files the published marts account for (marts.mart_ingestion_files), read-only."""
    import duckdb

    try:
        con = duckdb.connect(str(data_dir / "published" / "zi.duckdb"), read_only=True)
    except duckdb.Error:
        return set()
    try:
        return {r[0] for r in con.execute("select source_file from marts.mart_ingestion_files").fetchall()}
    except duckdb.Error:
        return set()
    finally:
        con.close()


def daemon_delivery(data_dir: Path, workbook: Path, timeout_s: float) -> dict:
    """A coordinator's workbook (one row rejected) dropped into landing/forecasts/: seconds to its feedback
    workbook and to the published marts, with no one starting anything (the landing sensor does)."""
    staged = with_bad_row(workbook, data_dir / workbook.name)
    target = data_dir / "landing" / "forecasts" / workbook.name
    name = f"forecasts/{workbook.name}"
    time.sleep(6)  # the sensor has looked at the landing area as it is before the drop
    dropped = time.time()
    os.replace(staged, target)  # appears whole, as a file saved by a person
    feedback = _wait(lambda: next((data_dir / "feedback").rglob(f"*{workbook.stem}*"), None), timeout_s)
    feedback_s = round(time.time() - dropped, 2) if feedback else None
    published = _wait(lambda: name in published_files(data_dir), timeout_s, 0.25)
    published_s = round(time.time() - dropped, 2) if published else None
    out = {
        "label": "daemon_new_workbook",
        "dropped_at": dropped,
        "file": name,
        "drop_to_feedback_seconds": feedback_s,
        "drop_to_published_seconds": published_s,
        "success": bool(feedback and published),
    }
    from dagster_zi.constants import BUILD_JOB

    with _instance(data_dir) as instance:
        # One tick, two runs (dagster_zi/landing.py): the feedback run first, then the family's build.
        runs = [
            r
            for r in instance.get_run_records(limit=5)
            if r.dagster_run.tags.get("dagster/sensor_name")
            and r.dagster_run.job_name == BUILD_JOB  # not the feedback written during a build in progress
            and r.create_timestamp.timestamp() >= dropped
        ]
        build = next((r for r in runs if r.dagster_run.tags.get("zi/families")), None)
        first = next((r for r in runs if not r.dagster_run.tags.get("zi/families")), None)
        for label, found in (("feedback_run", first), ("build_run", build)):
            if found is None:
                continue
            record = _wait(
                lambda found=found: (
                    (r := instance.get_run_record_by_id(found.dagster_run.run_id)) and r.dagster_run.is_finished and r
                ),
                timeout_s,
                0.5,
            )
            if record is None:
                continue
            times = _run_times(record)
            created = record.create_timestamp.timestamp()
            times["sensor_to_run_created_seconds"] = round(created - dropped, 2)
            times["run_created_to_started_seconds"] = (
                round(record.start_time - created, 2) if record.start_time else None
            )
            if label == "build_run":  # the run that publishes: what the tables have always shown
                out.update(times)
            else:
                out["feedback_run"] = times
        out["success"] = out["success"] and all(r.get("success", True) for r in (out, out.get("feedback_run", {})))
    return out


def slowest_delivery(drops: list[dict]) -> dict:
    """What the targets are judged on: the slowest of several drops (to the feedback workbook; ``success`` only
    if every drop succeeded), with the mean and the number of drops beside it."""
    timed = [d for d in drops if d.get("drop_to_feedback_seconds") is not None]
    if not timed:
        return {"label": "daemon_new_workbook", "success": False, "drops": len(drops)}
    slowest = dict(max(timed, key=lambda d: d["drop_to_feedback_seconds"]))
    for key in ("drop_to_feedback_seconds", "drop_to_published_seconds"):
        values = [d[key] for d in drops if d.get(key) is not None]
        slowest[key] = max(values) if len(values) == len(drops) else None
        slowest[f"mean_{key}"] = round(sum(values) / len(values), 2) if values else None
    slowest["drops"] = len(drops)
    slowest["success"] = len(timed) == len(drops) and all(d.get("success") for d in drops)
    return slowest
