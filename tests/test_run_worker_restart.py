"""The run worker restarts once when the code changes, and is then warm again (dagster_zi/run_worker.py);
it takes runs only once its warm dbt has parsed the project; a run launched while it warms up waits for it.

A restarted worker used to inherit the variables its warm-up had set (``DBT_TARGET_PATH``), took them for a
caller's settings, parsed dbt into the repository's ``target/`` and so changed its own code fingerprint: it
restarted again before every run, and every daemon run started 10-15 s late.

The worker runs from a copy of the code, so that changing a file there does not touch this checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace

from dagster import DagsterInstance, DagsterRun
from dagster._core.launcher.base import LaunchRunContext

from conftest import REPO_ROOT, copy_code, stop_process
from dagster_zi.run_worker import WARMING_UP, ZiRunLauncher, ask, socket_path
from zi_warehouse import dbt_server


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.5)


def _start_worker(tmp_path, code) -> SimpleNamespace:
    """A run worker from ``code`` on a new data directory under ``tmp_path`` (its output in worker.log)."""
    data_dir, home = tmp_path / "data", tmp_path / "dagster"
    home.mkdir()
    env = {**os.environ, "PYTHONPATH": str(code), "ZI_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home)}
    for inherited in ("DBT_TARGET_PATH", dbt_server.SOCKET_ENV):
        env.pop(inherited, None)
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - open while the worker runs
    worker = subprocess.Popen(
        [sys.executable, "-m", "dagster_zi.run_worker"], cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    return SimpleNamespace(process=worker, home=home, data_dir=data_dir, env=env, log=log, socket=socket_path(home))


def test_a_restarted_run_worker_restarts_once_and_keeps_the_repository_manifest(tmp_path):
    code = copy_code(tmp_path / "code")
    started = _start_worker(tmp_path, code)
    worker, home, data_dir, env, log, worker_socket = (
        started.process,
        started.home,
        started.data_dir,
        started.env,
        started.log,
        started.socket,
    )

    def answers() -> bool:
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        return bool((ask(worker_socket, {"op": "ping"}, timeout=2) or {}).get("ok"))

    def dbt_is_parsed() -> None:
        """A dbt command through the worker's warm dbt: it answers once the project is parsed."""
        folder = data_dir / "warehouse"
        command = [sys.executable, "-m", "dbt.cli.main", "ls", "--select", "mart_budget_year", "--quiet"]
        script = (
            "import sys; from zi_warehouse import dbt_server; "
            f"sys.exit(dbt_server.run_via_server({command[3:]!r}, dict(__import__('os').environ), {str(folder)!r}))"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            env={
                **env,
                dbt_server.SOCKET_ENV: str(home / dbt_server.SOCKET_NAME),
                "ZI_DBT_DATABASE": "zi.duckdb",
                "DBT_PROJECT_DIR": str(code),
                "DBT_PROFILES_DIR": str(code / "dbt_project"),
            },
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    manifest = code / "target" / "manifest.json"
    parsed = data_dir / "warehouse" / "dbt_target" / "manifest.json"  # the warm dbt's parse
    try:
        _wait(answers, 240, "Run-Worker antwortet")
        # It takes runs only once its dbt has parsed the project: a run forked while the parse thread was
        # inside an import inherited the import's lock held and hung before its first step.
        assert parsed.exists(), "the worker answered before its warm dbt had parsed the project"
        dbt_is_parsed()
        written = manifest.stat().st_mtime_ns
        os.utime(code / "zi_warehouse" / "german.py")  # new code
        restarted = time.time_ns()
        assert ask(worker_socket, {"op": "launch", "run_id": "none"}) == WARMING_UP
        time.sleep(1)
        _wait(answers, 240, "Run-Worker nach dem Neustart")
        assert parsed.stat().st_mtime_ns > restarted, "the restarted worker answered before its dbt had parsed"
        dbt_is_parsed()
        assert manifest.stat().st_mtime_ns == written, "the restarted worker rewrote the repository's manifest"
        # Same code since the restart: the next launch starts the run (which fails: there is no such run).
        reply = ask(worker_socket, {"op": "launch", "run_id": "none"})
        assert reply and reply.get("ok") is True, reply
        assert (tmp_path / "worker.log").read_text().count("Code geändert") == 1
        # the old image released dbt's semaphores: no warning of Python's resource tracker in the journal
        assert "leaked semaphore" not in (tmp_path / "worker.log").read_text()
    finally:
        stop_process(worker)
        log.close()


def test_a_run_launched_while_the_worker_warms_up_waits_for_it(tmp_path):
    """`zi serve` starts the UI, the daemon and the worker together; the worker needs ~15 s to import everything,
    and the landing sensor launches the waiting deliveries after ~7 s. Those runs used to fall back to the code
    server (a cold process per run, and its ~250 event lines in the deployment's journal)."""
    started = _start_worker(tmp_path, REPO_ROOT)
    worker, home, log, worker_socket = started.process, started.home, started.log, started.socket
    try:
        _wait(worker_socket.exists, 60, "Run-Worker hört zu")
        # It listens before it has imported the definitions, and says it is not ready yet.
        assert ask(worker_socket, {"op": "ping"}) == WARMING_UP, (tmp_path / "worker.log").read_text()
        with DagsterInstance.from_config(str(home)) as instance:
            run = instance.add_run(DagsterRun(job_name="build_warehouse"))
            launcher = ZiRunLauncher()
            launcher.register_instance(instance)
            # No workspace: a fall-back to the code server would raise here.
            launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
            events = [e.message for e in instance.all_logs(run.run_id)]
        assert any("Im vorgeladenen Run-Worker gestartet" in m for m in events), events
        assert "vorgeladen in" in (tmp_path / "worker.log").read_text()
    finally:
        stop_process(worker)
        log.close()


_STOPPING_WITH_ONE_RUN_GOING = """
import logging, os, sys, time
from pathlib import Path
from dagster_zi.run_worker import RunWorker

logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
worker = RunWorker(Path(sys.argv[1]))
for run_id, seconds in (("run-ended", 0), ("run-going", 30)):
    pid = os.fork()
    if pid == 0:
        time.sleep(seconds)
        os._exit(0)
    worker.children[run_id] = pid
time.sleep(0.5)  # the first child has ended
worker.say_which_runs_continue()
print("still going:", worker.children["run-going"])
os.kill(worker.children["run-going"], 9)
"""


def test_a_stopping_run_worker_names_the_runs_that_go_on_to_their_end(tmp_path):
    """A stop of the deployment (Ctrl-C on zi serve) leaves a running build to finish in its own process; the run
    worker says so, so that its last lines do not read as if everything had stopped (walkthrough)."""
    out = subprocess.run(
        [sys.executable, "-c", _STOPPING_WITH_ONE_RUN_GOING, str(tmp_path / "worker.sock")],
        cwd=REPO_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    pid = out.stdout.split("still going:")[1].strip()
    assert f"Lauf run-going läuft weiter bis zu seinem Ende (Prozess {pid};" in out.stdout, out.stdout
    assert "run-ended" not in out.stdout
