"""The deployment the data team runs: every run in the instance, the daemon picking up deliveries, one writer.

- ``zi build`` runs are in the data directory's Dagster instance with their materialisations and checks;
- with ``zi serve`` (UI, daemon, run worker) on a built data directory, a workbook dropped into the landing
  folder gets its feedback workbook and reaches the published marts with no one starting anything;
- builds started while another runs never fail each other: ``zi build`` waits its turn (or, with
  ``--no-wait``, is refused with a German message naming the running build), and two runs launched through
  the UI one after another queue instead of colliding on DuckDB's file lock.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from conftest import ZI, build_holding_the_lock, copy_built_data_dir, zi_env
from dagster_zi.constants import FEEDBACK_DURING_BUILD_JOB, WAREHOUSE_POOL
from dagster_zi.run_worker import ask, run_output_path
from zi_bench_deployment import BAD_STATUS, published_files, with_bad_row
from zi_warehouse.build_state import NOTHING_LANDED

pytestmark = pytest.mark.slow

LOCK_ERROR = "Could not set lock"


def _instance(data_dir: Path) -> DagsterInstance:
    return DagsterInstance.from_config(str(data_dir / "dagster"))


def test_zi_build_runs_are_in_the_instance_with_materialisations_and_checks(demo_build):
    data_dir = demo_build["data_dir"]
    assert "Dagster-Lauf" in demo_build["stdout"] and "/runs/" in demo_build["stdout"]
    with _instance(data_dir) as instance:
        runs = instance.get_runs()
        assert runs, "zi build left no run in the instance"
        run = runs[-1]  # the first build of the session: the demo
        assert run.status == DagsterRunStatus.SUCCESS and run.tags["zi/launched_by"] == "zi build"
        assert run.run_id in demo_build["stdout"]
        event = instance.get_latest_materialization_event(AssetKey(["marts", "mart_budget_year"]))
        assert event is not None and event.run_id in {r.run_id for r in runs}
        checks = instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
        assert len(checks) > 100


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(condition, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"nicht eingetreten in {timeout:.0f} s: {what}")


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every process (start time tells a reused pid apart)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[1]), fields[19])
    return found


def _descendants(root: int) -> dict[int, str]:
    table = _processes()
    result, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, started) in table.items():
            if ppid == parent and pid not in result:
                result[pid] = started
                frontier.append(pid)
    return result


@pytest.fixture(scope="module")
def deployment(demo_data_dir, tmp_path_factory):
    """`zi serve` on a copy of the demo build (an empty instance), shared by this module's tests (it takes ~30 s to
    start and ~7 s to stop); then SIGTERM, and every process it started (UI, daemon, run worker, code servers,
    runs) must be gone."""
    tmp_path = tmp_path_factory.mktemp("served")
    data_dir = copy_built_data_dir(demo_data_dir, tmp_path / "data")
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - open while zi serve runs
    # Its own temporary folder: what the runs leave in it (a report's Chromium profile) is this test's to see.
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**zi_env(data_dir), "TMPDIR": str(temporary)}
    proc = subprocess.Popen(
        [ZI, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    worker_socket = data_dir / "dagster" / "run-worker.sock"

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
                return response.status == 200 and (ask(worker_socket, {"op": "ping"}) or {}).get("ok", False)
        except OSError:
            return False

    children: dict[int, str] = {}
    try:
        _wait(ready, 240, "zi serve bereit (UI antwortet, Run-Worker antwortet)", 1)
        children = _descendants(proc.pid)
        assert len(children) >= 3, children  # UI, daemon, run worker (and the code servers they start)
        yield {"data_dir": data_dir, "port": port, "env": env, "log": tmp_path / "serve.log"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, (tmp_path / "serve.log").read_text()
        assert "zi serve beendet" in "\n".join((tmp_path / "serve.log").read_text().splitlines()[-3:])

        def all_gone() -> bool:
            alive = _processes()
            return not [pid for pid, started in children.items() if alive.get(pid, (0, ""))[1] == started]

        _wait(all_gone, 30, "alle Prozesse von zi serve beendet", 0.5)
        assert not worker_socket.exists()
        # a run forked by the run worker ends with os._exit: not before its report's Chromium removed its profile
        assert not list(temporary.glob("zi-chromium-*")), sorted(p.name for p in temporary.iterdir())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        alive = _processes()
        for pid, started in children.items():
            if alive.get(pid, (0, ""))[1] == started:
                os.kill(pid, signal.SIGKILL)
        log.close()


@pytest.fixture()
def served(deployment):
    """The module's deployment once nothing is queued or running: what the test before started has ended."""
    open_statuses = [
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
    ]
    with _instance(deployment["data_dir"]) as instance:
        _wait(lambda: not instance.get_runs(RunsFilter(statuses=open_statuses)), 300, "keine Läufe mehr offen", 1)
    return deployment


def _drop_corrected_workbook(data_dir: Path, correction: int) -> Path:
    """A coordinator's corrected workbook (correction ``correction``; each test drops its own) with one row whose
    status is not a status (one rejection)."""
    staged = with_bad_row(
        data_dir / "landing" / "forecasts" / "Prognose_Bochum_2020-Q3.xlsx",
        data_dir / f"Prognose_Bochum_2020-Q3_korrektur{correction}.xlsx",
    )
    target = data_dir / "landing" / "forecasts" / staged.name
    os.replace(staged, target)  # appears whole, as a file copied in by a person
    return target


def _run(data_dir: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([ZI, *args], env=env, capture_output=True, text=True, timeout=900)


def test_a_dropped_workbook_is_built_and_published_while_other_builds_wait_their_turn(served):
    data_dir, env = served["data_dir"], served["env"]
    time.sleep(6)  # the sensor's first look: everything is built already

    with _instance(data_dir) as instance:
        # The writer pool is closed while people start builds, so that the sensor's runs are still to come
        # when they look (at the demo's size they would otherwise be over before a second `zi build` has
        # started); the daemon runs on and the queue is healthy.
        instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, 0)
        dropped_at = dt.datetime.now(dt.UTC)
        dropped = _drop_corrected_workbook(data_dir, 1)
        name = f"forecasts/{dropped.name}"

        def sensor_run(families: bool, status: DagsterRunStatus = DagsterRunStatus.QUEUED):
            runs = instance.get_runs(limit=5)
            return next((r for r in runs if bool(r.tags.get("zi/families")) == families and r.status == status), None)

        # Two runs of one tick: the feedback first, then the family's build (dagster_zi/landing.py).
        run = _wait(lambda: sensor_run(families=True), 60, "Lauf des Sensors in der Warteschlange")
        feedback_run = sensor_run(families=False)
        assert feedback_run is not None and feedback_run.tags.get("dagster/sensor_name") == "landing_sensor"
        assert run.tags.get("dagster/sensor_name") == "landing_sensor" and run.tags["zi/families"] == "forecasts"

        # From the sensor's tick on, its build is coming: a person's `zi build --no-wait` is refused, naming the
        # sensor's runs ...
        refused = _run(data_dir, "build", "--no-wait", env=env)
        assert refused.returncode == 75, refused.stdout + refused.stderr
        assert "Nicht gestartet" in refused.stdout and "Sensor landing_sensor" in refused.stdout
        assert f"http://localhost:{served['port']}/runs" in refused.stdout  # the UI zi serve runs, on its port
        assert LOCK_ERROR not in refused.stdout + refused.stderr
        # ... and a plain `zi build` waits for them, also in the moment between the feedback run and the build,
        # when the writer lock is free (it once built the delivery itself then, and the queued build built it
        # again), then finds nothing left to do.
        waiting_output = served["log"].parent / "waiting.log"
        waiting_log = open(waiting_output, "w")  # noqa: SIM115 - open while the build waits
        waiting = subprocess.Popen([ZI, "build"], env=env, stdout=waiting_log, stderr=subprocess.STDOUT, text=True)
        try:
            _wait(lambda: "steht schon ein Build an" in waiting_output.read_text(), 120, "zi build wartet")
        finally:
            instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)  # as zi serve had it

    feedback = _wait(
        lambda: next((data_dir / "feedback").rglob(f"*{dropped.stem}*"), None), 300, "Rückmeldedatei geschrieben"
    )
    assert "bochum" in feedback.parts
    _wait(lambda: name in published_files(data_dir), 300, "Datei in den veröffentlichten Marts")
    waiting.wait(timeout=600)
    waiting_log.close()
    out = waiting_output.read_text()
    assert waiting.returncode == 0, out
    assert "Keine Änderung" in out and "Teillauf" not in out and LOCK_ERROR not in out
    assert "zuvor" in out and "auf den anderen Build gewartet" in out  # it waited for the sensor's build

    with _instance(data_dir) as instance:
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.SUCCESS
        assert not instance.get_runs(RunsFilter(tags={"zi/launched_by": "zi build"}, created_after=dropped_at))
        assert instance.get_run_by_id(feedback_run.run_id).status == DagsterRunStatus.SUCCESS
        messages = " ".join(e.message or "" for e in instance.all_logs(run.run_id))
        assert LOCK_ERROR not in messages and "vorgeladenen Run-Worker" in messages
    con = duckdb.connect(str(data_dir / "published" / "zi.duckdb"), read_only=True)
    try:
        rejected = con.execute(
            "select count(*) from marts.mart_rejected_rows where source_file = ? and value_found = ?",
            [name, BAD_STATUS],
        ).fetchone()[0]
    finally:
        con.close()
    assert rejected == 1
    # The daemon's log keeps what happened (the sensor's launches) without two routine lines per loop.
    daemon_log = served["log"].read_text(errors="replace")
    assert f"Completed launch of run {run.run_id} for landing_sensor" in daemon_log
    assert "Checking for new runs for sensor" not in daemon_log
    assert "No run requests returned for" not in daemon_log
    assert f"skipped: {NOTHING_LANDED}" not in daemon_log  # every 2 s on a quiet day
    # What a run prints (Dagster's event lines, dbt's progress) is in its own file, not in the journal.
    assert "STEP_START" not in daemon_log and "RESOURCE_INIT_STARTED" not in daemon_log
    run_output = run_output_path(run.run_id, data_dir / "dagster").read_text()
    assert "STEP_START" in run_output
    assert "Running dbt command" in run_output and "dagster.builtin INFO" not in run_output  # each line once
    assert f"Dagster-UI bereit: http://127.0.0.1:{served['port']}" in daemon_log  # said once it answers
    # Dagster colours its lines even in a file; journald would keep such a line as "[… blob data]".
    assert " - dagster.daemon.SensorDaemon - INFO - " in daemon_log and "\x1b" not in daemon_log


def test_a_workbook_dropped_while_a_build_runs_gets_its_feedback_before_that_build_ends(served):
    """The coordinator's feedback does not wait for a build in progress (the scheduled build, a build started
    in the UI or by hand); the delivery's own build follows it."""
    data_dir = served["data_dir"]
    time.sleep(6)  # the sensor's first look: everything is built already
    with build_holding_the_lock(data_dir / "warehouse"):
        dropped_at = dt.datetime.now(dt.UTC)
        dropped = _drop_corrected_workbook(data_dir, 2)
        feedback = _wait(
            lambda: next((data_dir / "feedback").rglob(f"*{dropped.stem}*"), None),
            90,
            "Rückmeldedatei, während ein Build das Warehouse hält",
        )
        assert "bochum" in feedback.parts
        with _instance(data_dir) as instance:
            runs = instance.get_runs(RunsFilter(created_after=dropped_at), limit=10)
            assert [r.job_name for r in runs] == [FEEDBACK_DURING_BUILD_JOB]  # nothing else started meanwhile
            _wait(
                lambda: instance.get_run_by_id(runs[0].run_id).status == DagsterRunStatus.SUCCESS,
                60,
                "Lauf der Rückmeldung während des Builds erfolgreich",
            )
        time.sleep(5)  # a few more of the sensor's ticks while the build holds the warehouse
    # Requested once: Dagster would log on every tick that it skips a run key it has seen.
    assert "already completed with run keys" not in served["log"].read_text(errors="replace")
    _wait(lambda: f"forecasts/{dropped.name}" in published_files(data_dir), 300, "Datei in den veröffentlichten Marts")
    with _instance(data_dir) as instance:
        families = [
            r.tags.get("zi/families")
            for r in instance.get_runs(RunsFilter(created_after=dropped_at), limit=10)
            if r.job_name != FEEDBACK_DURING_BUILD_JOB
        ]
        assert families == ["forecasts"]  # the family's build after it, no feedback run ahead of it (done)


def test_two_runs_launched_from_the_ui_queue_instead_of_colliding(served):
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=served["port"])
    selection = [
        AssetKey(["raw_forecasts", "forecasts__projects"]),
        AssetKey(["raw_forecasts", "forecasts__submissions"]),
        AssetKey(["raw_forecasts", "forecasts__payment_forecasts"]),
        AssetKey(["raw_ingestion", "ingestion_files"]),
        AssetKey(["raw_ingestion", "rejected_rows"]),
    ]
    first = client.submit_job_execution("build_warehouse", asset_selection=selection)
    second = client.submit_job_execution("build_warehouse", asset_selection=selection)
    with _instance(served["data_dir"]) as instance:

        def finished():
            runs = [instance.get_run_record_by_id(run_id) for run_id in (first, second)]
            return runs if all(r.dagster_run.is_finished for r in runs) else None

        one, two = _wait(finished, 300, "beide Läufe beendet", 1)
        assert one.dagster_run.status == two.dagster_run.status == DagsterRunStatus.SUCCESS
        earlier, later = sorted((one, two), key=lambda r: r.start_time)
        assert later.start_time >= earlier.end_time  # one writer at a time: the second waited in the queue
        for record in (one, two):
            messages = " ".join(e.message or "" for e in instance.all_logs(record.dagster_run.run_id))
            assert LOCK_ERROR not in messages
            # the run list says who started it, as it does for the sensor's runs and `zi build`'s
            assert instance.get_run_by_id(record.dagster_run.run_id).tags["zi/launched_by"] == "Dagster-UI"
