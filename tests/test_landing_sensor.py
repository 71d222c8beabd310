"""The landing sensor: a delivery in any family's landing folder leads to a build of that family and downstream."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time

import pytest
import python_calamine as pc
from dagster import (
    DagsterInstance,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    SkipReason,
    build_sensor_context,
)

from conftest import build_holding_the_lock, copy_built_data_dir
from dagster_zi import landing
from dagster_zi.constants import FEEDBACK_DURING_BUILD_JOB
from dagster_zi.deployment import commands
from zi_warehouse import config

FAMILY_ROOTS = {"raw_forecasts", "raw_funding", "raw_climate", "raw_trees", "raw_surfaces"}


@pytest.fixture()
def built(demo_data_dir, tmp_path, monkeypatch):
    data_dir = copy_built_data_dir(demo_data_dir, tmp_path / "data")
    monkeypatch.setenv("ZI_DATA_DIR", str(data_dir))
    return config.paths()


def _tick(cursor: str | None):
    with DagsterInstance.ephemeral() as instance:  # no runs in it: none ahead of the sensor's
        context = build_sensor_context(cursor=cursor, instance=instance)
        return landing.landing_sensor(context), context.cursor


def test_sensor_and_schedule_run_by_default():
    from dagster_zi.definitions import daily_build_schedule

    assert landing.landing_sensor.default_status == DefaultSensorStatus.RUNNING
    assert daily_build_schedule.default_status == DefaultScheduleStatus.RUNNING


def test_the_sensor_looks_on_every_loop_of_the_daemon():
    # The daemon evaluates sensors every MIN_INTERVAL_LOOP_TIME seconds and skips one whose last tick began less
    # than its minimum ago; a minimum equal to the loop's period skipped every other loop now and then (a
    # delivery waited up to 10 s instead of 5 s).
    from dagster_zi.daemon import SENSOR_LOOP_SECONDS

    assert landing.landing_sensor.minimum_interval_seconds <= SENSOR_LOOP_SECONDS - 1


def test_the_deployments_daemon_runs_dagsters_sensor_loop_every_two_seconds():
    import dagster._daemon.sensor as dagster_sensor_daemon

    from dagster_zi import daemon

    script = (
        "import dagster._daemon.sensor as s, dagster_zi.daemon as d; d.shorten_sensor_loop(); "
        "print(s.MIN_INTERVAL_LOOP_TIME)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert float(result.stdout) == daemon.SENSOR_LOOP_SECONDS < 5
    # Dagster's loop reads the module's value on every iteration (not a copy taken at import).
    assert "MIN_INTERVAL_LOOP_TIME - loop_duration" in inspect.getsource(dagster_sensor_daemon)
    assert commands("127.0.0.1", 3000)["daemon"][1:3] == ["-m", "dagster_zi.daemon"]


def test_nothing_new_after_a_build_and_a_touched_file_is_no_delivery(built):
    result, cursor = _tick(None)
    assert isinstance(result, SkipReason), result
    workbook = next(built.landing_for("forecasts").glob("*.xlsx"))
    os.utime(workbook, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    result, _ = _tick(cursor)
    assert isinstance(result, SkipReason)


def test_a_new_workbook_builds_its_family_and_everything_downstream(built):
    _, cursor = _tick(None)
    source = next(built.landing_for("forecasts").glob("*.xlsx"))
    (built.landing_for("forecasts") / "Prognose_Test_korrektur1.xlsx").write_bytes(source.read_bytes() + b"\0")
    requests, cursor_after = _tick(cursor)
    feedback_first, request = requests
    # First only what the coordinator's feedback workbook needs (a run of a few steps, recording no build) ...
    assert {key.to_user_string() for key in feedback_first.asset_selection} == {
        "raw_forecasts/forecasts__projects",
        "raw_forecasts/forecasts__payment_forecasts",
        "raw_forecasts/forecasts__submissions",
        "forecast_feedback_workbooks",
    }
    assert "zi/families" not in feedback_first.tags and feedback_first.run_key != request.run_key
    # ... then the family's build with everything downstream, which records the build.
    assert isinstance(request, RunRequest)
    assert request.job_name in (None, "build_warehouse") and request.tags["zi/families"] == "forecasts"
    roots = {key.path[0] for key in request.asset_selection if key.path[0].startswith("raw_")}
    assert "raw_forecasts" in roots and not (roots & (FAMILY_ROOTS - {"raw_forecasts"}))
    names = {key.to_user_string() for key in request.asset_selection}
    for downstream in (
        "forecast_feedback_workbooks",
        "marts/mart_pipeline_municipality_quarter",
        "published_warehouse",
        "quarterly_report",
    ):
        assert downstream in names, downstream
    # The same landing state is one run (the key), a further change another.
    again, _ = _tick(cursor)
    assert [r.run_key for r in again] == [feedback_first.run_key, request.run_key]
    # Taken back before any build: the landing area is as built again, nothing to do.
    (built.landing_for("forecasts") / "Prognose_Test_korrektur1.xlsx").unlink()
    taken_back, cursor_after = _tick(cursor_after)
    assert isinstance(taken_back, SkipReason)
    # A delivered file removed is a change as well (its rows leave the warehouse).
    source.unlink()
    removed, _ = _tick(cursor_after)
    assert removed[-1].run_key != request.run_key and removed[-1].tags["zi/families"] == "forecasts"


def test_a_delivery_of_another_family_is_one_run(built):
    """Only forecast deliveries have a feedback workbook to hurry: a funding extract is one run of its family."""
    _, cursor = _tick(None)
    source = next(built.landing_for("funding").rglob("*.csv"))
    source.write_bytes(source.read_bytes() + b"\n")
    [request], _ = _tick(cursor)
    assert isinstance(request, RunRequest) and request.tags["zi/families"] == "funding"


def test_files_already_built_by_hand_start_nothing(built):
    """A file that a `zi build` started by hand has already built (its record names it) needs no run."""
    from zi_warehouse import build_state

    _, cursor = _tick(None)
    (built.landing_for("funding") / "extra.csv").write_text("x;y\n1;2\n", encoding="utf-8")
    record_path = build_state.state_path(built)
    state = json.loads(record_path.read_text(encoding="utf-8"))
    state["inputs"]["landing"] = build_state.inputs(built)["landing"]
    record_path.write_text(json.dumps(state), encoding="utf-8")
    result, _ = _tick(cursor)
    assert isinstance(result, SkipReason) and result.skip_message == build_state.ALREADY_BUILT


def test_without_a_successful_build_the_whole_job_runs(built):
    _, cursor = _tick(None)
    (built.warehouse_dir / "last_build.json").unlink()
    (built.landing_for("trees") / "baumkataster_bochum_neu.csv").write_text("Baumnummer\n1\n", encoding="utf-8")
    [request], _ = _tick(cursor)
    assert isinstance(request, RunRequest) and request.asset_selection is None
    assert "zi/families" not in request.tags


def test_a_new_data_directory_waits_for_its_first_files(tmp_path, monkeypatch):
    """A deployment started on an empty data directory builds nothing until something lands: a build of nothing
    fails its blocking checks (no station list) and alerts the data team for no reason."""
    from zi_warehouse.build_state import NOTHING_DELIVERED

    for name in (config.FUNDING_DB_DSN_ENV, config.POSTGRES_DSN_ENV, *config.LIBPQ_TARGET_ENV):
        monkeypatch.delenv(name, raising=False)  # no source or target outside the data directory
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path / "data"))
    paths = config.paths().ensure()
    result, cursor = _tick(None)
    assert isinstance(result, SkipReason) and result.skip_message == NOTHING_DELIVERED
    result, cursor = _tick(cursor)  # and says so on every tick, not only the first
    assert isinstance(result, SkipReason) and result.skip_message == NOTHING_DELIVERED
    (paths.landing_for("trees") / "baumkataster_bochum.csv").write_text("Baumnummer\n1\n", encoding="utf-8")
    [request], _ = _tick(cursor)
    assert isinstance(request, RunRequest) and request.asset_selection is None  # the first build: everything


def test_a_delivery_during_a_build_is_decided_after_it(built):
    """A file landing while a build holds the writer lock is decided after the build, with its record: not
    taken for a reason to build everything (a recording build sets the last record aside), not built twice
    (the build may take it in), nor lost (the cursor waits for it)."""
    from zi_warehouse import build_state, writer_lock

    _, cursor = _tick(None)
    record_path = build_state.state_path(built)
    record = record_path.read_text(encoding="utf-8")
    source = next(built.landing_for("forecasts").glob("*.xlsx"))
    (built.landing_for("forecasts") / "Prognose_Test_korrektur1.xlsx").write_bytes(source.read_bytes() + b"\0")
    with build_holding_the_lock(built.warehouse_dir):
        # A `zi build` that took the lock and is deciding: the record is still there.
        # (The workbook's feedback does not wait: test_a_workbook_dropped_during_a_build_gets_its_feedback_….)
        deciding, cursor_during = _tick(cursor)
        assert deciding.job_name == FEEDBACK_DURING_BUILD_JOB
        record_path.unlink()  # what the running build did at its start (build_state.forget)
        waiting, cursor_during = _tick(cursor_during)
        assert isinstance(waiting, SkipReason) and waiting.skip_message == build_state.BUILD_IN_PROGRESS
        record_path.write_text(record, encoding="utf-8")  # the build succeeded (from the files before the drop)
    assert writer_lock.current_holder(built.warehouse_dir) is None
    requests, _ = _tick(cursor_during)
    assert [r.tags.get("zi/families") for r in requests] == ["forecasts"]  # its feedback came during the build


def test_the_daemon_log_leaves_out_routine_skips_only():
    import logging

    from dagster_zi.daemon import QuietSensorTicks
    from zi_warehouse.build_state import ALREADY_BUILT, BUILD_IN_PROGRESS, NOTHING_DELIVERED, NOTHING_LANDED

    def kept(message: str) -> bool:
        return QuietSensorTicks().filter(logging.LogRecord("dagster", logging.INFO, "", 0, message, None, None))

    assert not kept(f"Sensor landing_sensor skipped: {NOTHING_LANDED}")  # every tick of a quiet day
    assert not kept(f"Sensor landing_sensor skipped: {BUILD_IN_PROGRESS}")  # every tick while a build runs
    assert not kept("Sensor run_failure_alert skipped: Sensor function returned an empty result")  # every 30 s
    assert not kept(  # the failure alert's first tick on a new instance
        "Sensor run_failure_alert skipped: Initiating run_failure_alert. Set cursor to "
        "RunStatusSensorCursor(record_id=-1, update_timestamp=None, record_timestamp=None)"
    )
    assert not kept(f"Sensor landing_sensor skipped: {NOTHING_DELIVERED}")  # every tick until the first file
    assert kept(f"Sensor landing_sensor skipped: {ALREADY_BUILT}")
    assert kept("Completed launch of run 1234 for landing_sensor")


def test_a_workbook_dropped_during_a_build_gets_its_feedback_without_waiting_for_it(built):
    """While a build holds the warehouse, a new workbook's feedback comes from a run outside the writer pool; a
    byte-identical copy of a delivered file is left to the build (whether it repeats a delivery is the
    warehouse's to say); the build of the delivery still follows the build in progress."""
    from dagster_zi.constants import WAREHOUSE_POOL
    from dagster_zi.definitions import defs
    from zi_bench_deployment import with_bad_row
    from zi_warehouse import build_state

    _, cursor = _tick(None)
    folder = built.landing_for("forecasts")
    source = sorted(folder.glob("*.xlsx"))[0]
    with build_holding_the_lock(built.warehouse_dir):
        quiet, cursor_during = _tick(cursor)
        assert isinstance(quiet, SkipReason) and quiet.skip_message == build_state.BUILD_IN_PROGRESS
        with_bad_row(source, folder / f"{source.stem}_korrektur1.xlsx")
        (folder / "Kopie.xlsx").write_bytes(source.read_bytes())
        request, cursor_during = _tick(cursor)
        assert isinstance(request, RunRequest) and request.job_name == FEEDBACK_DURING_BUILD_JOB
        # The build of these files is decided after the build in progress: the families' cursor stays.
        assert {f: v for f, v in json.loads(cursor_during).items() if f in config.SOURCE_FAMILIES} == json.loads(cursor)
        files = request.run_config["ops"]["write_feedback_from_landing"]["config"]["files"]
        assert files == [f"forecasts/{source.stem}_korrektur1.xlsx"]
        assert f"{source.stem}_korrektur1.xlsx" in request.tags["zi/launched_by"]  # the run list names the file
        assert _tick(cursor)[0].run_key == request.run_key  # one run per state of the files
        quiet_again, _ = _tick(cursor_during)  # and requested once, not on every tick of the build
        assert isinstance(quiet_again, SkipReason) and quiet_again.skip_message == build_state.BUILD_IN_PROGRESS
        job = defs.resolve_job_def(FEEDBACK_DURING_BUILD_JOB)
        assert all(node.definition.pool != WAREHOUSE_POOL for node in job.graph.node_dict.values())
        with DagsterInstance.ephemeral() as instance:
            assert job.execute_in_process(run_config=request.run_config, instance=instance).success
        [workbook] = built.feedback.rglob(f"*{source.stem}_korrektur1*")
        rows = pc.CalamineWorkbook.from_path(str(workbook)).get_sheet_by_name("Abgewiesene Zeilen").to_python()
        assert len(rows) == 2 and "Projektstatus" in rows[1]  # the one row with the status that is none
    # After the build: the family's build, without a feedback run ahead of it (the feedback is there) ...
    requests, _ = _tick(cursor_during)
    assert [(r.job_name, r.tags.get("zi/families")) for r in requests] == [("build_warehouse", "forecasts")]
    # ... unless a workbook arrived after the request during the build (its feedback is still to come).
    (folder / f"{source.stem}_korrektur2.xlsx").write_bytes(source.read_bytes() + b"\0")
    requests, _ = _tick(cursor_during)
    assert [r.tags.get("zi/families") for r in requests] == [None, "forecasts"]  # feedback run, then the family


def test_a_workbook_dropped_while_builds_are_queued_gets_its_feedback_without_waiting_for_them(built, monkeypatch):
    """The warehouse is free, but runs that will write it are queued (a build launched in the UI, another
    delivery's build behind its feedback run): the delivery's runs queue behind them, its feedback does not."""
    _, cursor = _tick(None)
    folder = built.landing_for("forecasts")
    source = sorted(folder.glob("*.xlsx"))[0]
    (folder / f"{source.stem}_korrektur1.xlsx").write_bytes(source.read_bytes() + b"\0")
    alone, _ = _tick(cursor)
    assert [r.job_name for r in alone] == ["build_warehouse", "build_warehouse"]  # feedback run, then the family
    monkeypatch.setattr(landing, "runs_ahead", lambda instance: ["ein Build in der Warteschlange"])
    queued, _ = _tick(cursor)
    # (and no feedback run of its own ahead of its build: it would queue behind the same runs)
    assert [r.job_name for r in queued] == [FEEDBACK_DURING_BUILD_JOB, "build_warehouse"]
    assert queued[1].tags["zi/families"] == "forecasts"
    files = queued[0].run_config["ops"]["write_feedback_from_landing"]["config"]["files"]
    assert files == [f"forecasts/{source.stem}_korrektur1.xlsx"]
