"""The performance fixes of issue 9 keep behaviour: the build-state decision (skip / families / full), the
GeoJSON register reader (same table as DuckDB's read_json gave), the cached header normalisation, the
process-tree memory sampler and the hold-back of deliveries in ``make bench``."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import duckdb
import pytest

from zi_warehouse import build_state, config


# --- build state -----------------------------------------------------------------------------------
@pytest.fixture
def data(tmp_path, monkeypatch) -> config.Paths:
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path))
    for name in (
        "ZI_BUILD_ALWAYS",
        "ZI_FUNDING_DB_DSN",
        "ZI_POSTGRES_DSN",
        "PGHOST",
        "PGHOSTADDR",
        "PGSERVICE",
        "PGDATABASE",
    ):
        monkeypatch.delenv(name, raising=False)
    paths = config.paths().ensure()
    (paths.landing_for("forecasts") / "Prognose_Bochum_2024-Q1.xlsx").write_bytes(b"one")
    (paths.landing_for("trees") / "baumkataster_bochum.csv").write_bytes(b"two")
    paths.warehouse.write_bytes(b"warehouse")
    (paths.published_duckdb).write_bytes(b"published")
    return paths


def _record(paths: config.Paths) -> None:
    build_state.record(paths, build_state.inputs(paths), {"checks_passed": 3, "checks_warned": []})


def test_no_record_means_a_full_build(data):
    decision = build_state.decide(data)
    # no record: none yet, or the last build failed or was stopped (a build deletes it when it starts)
    assert (
        decision.mode == "full" and decision.reason == "der letzte Lauf war nicht erfolgreich, oder es gab noch keinen"
    )


def test_nothing_changed_means_skip(data):
    _record(data)
    decision = build_state.decide(data)
    assert decision.mode == "skip" and decision.last["checks_passed"] == 3


def test_a_partial_run_keeps_the_outcome_of_the_checks_it_did_not_evaluate():
    """A forecast delivery runs the forecast checks only; a warning on the funding data still stands after it,
    and the record the summaries print from says so. A full run's outcomes replace everything."""
    previous = {"summary": build_state.checks_after(None, {"f:a": "passed", "g:w": "warned", "g:x": "warned"}, False)}
    after = build_state.checks_after(previous, {"f:a": "warned", "g:x": "passed"}, partial=True)
    assert after["checks"] == {"f:a": "warned", "g:w": "warned", "g:x": "passed"}
    assert (after["checks_passed"], sorted(after["checks_warned"]), after["checks_in_run"]) == (1, ["f:a", "g:w"], 2)
    full = build_state.checks_after(previous, {"f:a": "passed"}, partial=False)
    assert full["checks"] == {"f:a": "passed"} and full["checks_warned"] == []


def test_a_new_file_runs_only_its_family(data):
    _record(data)
    (data.landing_for("forecasts") / "Prognose_Bochum_2024-Q2.xlsx").write_bytes(b"three")
    decision = build_state.decide(data)
    assert decision.mode == "families" and decision.families == ["forecasts"]
    # what zi build and the sensor's run tags say: the family's German name, never its key
    assert decision.reason == "neue, geänderte oder entfernte Dateien: Prognosen"


def test_a_removed_or_rewritten_file_counts_as_a_change(data):
    _record(data)
    path = data.landing_for("trees") / "baumkataster_bochum.csv"
    path.write_bytes(b"TWO")  # same size, new content and modification time
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert build_state.decide(data).families == ["trees"]
    _record(data)
    path.unlink()
    assert build_state.decide(data).families == ["trees"]


@pytest.mark.parametrize("touch", ["warehouse", "published", "feedback", "reports"])
def test_outputs_changed_by_someone_else_mean_a_full_build(data, touch):
    _record(data)
    target = {
        "warehouse": data.warehouse,
        "published": data.published_duckdb,
        "feedback": data.feedback / "Rueckmeldung.xlsx",
        "reports": data.reports / "bericht.pdf",
    }[touch]
    target.write_bytes(b"changed by hand")
    assert build_state.decide(data).mode == "full"


def test_settings_code_or_external_sources_mean_a_full_build(data, monkeypatch):
    _record(data)
    monkeypatch.setenv("ZI_BASELINE_YEAR", "2019")
    assert build_state.decide(data).mode == "full"
    monkeypatch.delenv("ZI_BASELINE_YEAR")
    assert build_state.decide(data).mode == "skip"
    monkeypatch.setenv("ZI_BUILD_ALWAYS", "1")
    assert build_state.decide(data).mode == "full"
    monkeypatch.delenv("ZI_BUILD_ALWAYS")
    monkeypatch.setenv("ZI_POSTGRES_DSN", "postgresql://x@localhost/zi")
    assert "PostgreSQL" in build_state.decide(data).reason
    monkeypatch.delenv("ZI_POSTGRES_DSN")
    recorded = json.loads(build_state.state_path(data).read_text())
    recorded["inputs"]["dbt"] = "an older dbt project"
    build_state.state_path(data).write_text(json.dumps(recorded))
    assert build_state.decide(data).mode == "full"
    assert build_state.decide(data).reason == "geändert seit dem letzten Lauf: dbt-Projekt"


def test_operational_settings_change_no_build_and_no_value_is_stored(data, monkeypatch):
    """The UI address, alert mail and retention are how the deployment runs, not what a build produces: a
    colleague's shell without them must not turn the next delivery into a full build. Settings that do count
    are kept as digests: the record is an ordinary file and must not hold a password or DSN."""
    monkeypatch.setenv("ZI_FORECAST_DUE_DAYS", "30")
    _record(data)
    for name, value in {
        "ZI_DAGSTER_UI_URL": "http://zi-server.intern:3000",
        "ZI_ALERT_SMTP_PASSWORD": "alert-geheim",
        "ZI_RUN_RETENTION_DAYS": "90",
        "ZI_RELEASE_RETENTION_DAYS": "10",
    }.items():
        monkeypatch.setenv(name, value)
    assert build_state.decide(data).mode == "skip"
    monkeypatch.setenv("ZI_FORECAST_DUE_DAYS", "60")  # a threshold of the freshness checks: it does count
    assert build_state.decide(data).mode == "full"
    monkeypatch.setenv("ZI_FUNDING_DB_SCHEMA", "foerderung-geheim")
    monkeypatch.setenv("ZI_POSTGRES_READER_PASSWORD", "leser-geheim")
    _record(data)
    stored = build_state.state_path(data).read_text()
    assert "ZI_FUNDING_DB_SCHEMA" in stored and "ZI_FORECAST_DUE_DAYS" in stored
    secrets = ("foerderung-geheim", "alert-geheim", "zi-server.intern", "leser-geheim")
    assert not any(secret in stored for secret in secrets)
    digest = hashlib.sha256(b"leser-geheim").hexdigest()[:16]
    assert digest not in stored, "a password is kept as set, not even as a digest"


def test_a_build_that_starts_forgets_the_record(data):
    _record(data)
    build_state.forget(data)
    assert build_state.decide(data).mode == "full"


def test_the_record_holds_the_landing_as_each_ingest_read_it(data):
    """A build records each family's landing as its ingest read it (dagster_zi/execution.py): a file that landed
    after the build started but before its family's ingest looked counts as built; a file of a family the build
    did not ingest does not, even if it landed before the build started (it was once recorded as built and then
    never built)."""
    _record(data)
    (data.landing_for("forecasts") / "Prognose_Bochum_2024-Q2.xlsx").write_bytes(b"three")
    assert build_state.decide(data).families == ["forecasts"]  # a forecasts-only build is decided ...
    (data.landing_for("trees") / "baumkataster_herne.csv").write_bytes(b"four")  # ... a tree register lands ...
    started_from, previous = build_state.start_recording(data)  # ... and the build starts
    assert build_state.decide(data).mode == "full"  # the record is set aside while it runs
    (data.landing_for("forecasts") / "Prognose_Bochum_2024-Q3.xlsx").write_bytes(b"five")  # before the ingest looks
    build_state.note_landing_read(data.landing, "forecasts")  # the forecasts ingest (zi_warehouse/ingest.py)
    build_state.record(data, build_state.as_built(started_from, previous))
    decision = build_state.decide(data)
    assert decision.mode == "families" and decision.families == ["trees"]


# --- GeoJSON registers -----------------------------------------------------------------------------
GEOJSON = {
    "type": "FeatureCollection",
    "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
    "features": [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [7.46540, 51.51360]},
            "properties": {
                "Baumnummer": "DO-1",
                "Art_botanisch": "Tilia cordata",
                "Pflanzjahr": 2005,
                "Baumhoehe_m": 12.50,
                "Kronendurchmesser_m": 6,
                "Status": True,
            },
        },
        {"type": "Feature", "geometry": None, "properties": {"Baumnummer": "DO-2", "Art_botanisch": None}},
        {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": [[7.4, 51.5], [7.5, 51.6]]},
            "properties": {"Baumnummer": "DO-3", "Stammumfang_cm": 1e2, "Strasse": "Hauptstraße 1"},
        },
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [7.4]}, "properties": None},
    ],
}


def _duckdb_reference(path: Path) -> list[dict]:
    """What DuckDB's read_json (the reader before the fix) made of the same file, per feature."""
    con = duckdb.connect()
    rows = con.execute(
        f"""
        with doc as (select * from read_json('{path}', format = 'unstructured', records = true,
            columns = {{'type': 'VARCHAR', 'crs': 'JSON', 'features': 'STRUCT("type" VARCHAR, geometry STRUCT("type"
            VARCHAR, coordinates VARCHAR[]), properties MAP(VARCHAR, VARCHAR))[]'}}))
        select generate_subscripts(features, 1)::bigint, unnest(features) from doc
        """
    ).fetchall()
    con.close()
    out = []
    for index, f in rows:
        geometry = f["geometry"] or {}
        point = geometry.get("type") == "Point"
        coords = (geometry.get("coordinates") or []) if point else []
        out.append(
            {
                "_row_number": index,
                "properties": dict(f["properties"] or {}),
                "first": coords[0] if len(coords) > 0 else None,
                "second": coords[1] if len(coords) > 1 else None,
                "geometry_type": geometry.get("type"),
            }
        )
    return out


def test_geojson_reader_gives_what_duckdb_read_json_gave(tmp_path):
    from zi_warehouse.trees import geojson
    from zi_warehouse.trees.coordinates import EPSG_WGS84

    path = tmp_path / "baumkataster_dortmund.geojson"
    # numbers written as senders write them (trailing zeros, exponent): printed as DuckDB printed them
    path.write_text(json.dumps(GEOJSON).replace("12.5", "12.50").replace("100.0", "1e2"), encoding="utf-8")
    table, crs, _schema = geojson.read_register(path)
    assert crs == EPSG_WGS84
    got = table.to_pylist()
    expected = _duckdb_reference(path)
    assert [r["_row_number"] for r in got] == [e["_row_number"] for e in expected] == [1, 2, 3, 4]
    assert [(r["lon"], r["lat"], r["geometry_type"]) for r in got] == [
        (e["first"], e["second"], e["geometry_type"]) for e in expected
    ]
    assert got[0]["height_m"] == expected[0]["properties"]["Baumhoehe_m"] == "12.5"
    assert got[0]["status"] == expected[0]["properties"]["Status"] == "true"
    assert got[2]["trunk_circumference_cm"] == expected[2]["properties"]["Stammumfang_cm"] == "100.0"
    assert got[1]["species_botanical"] is None and got[3]["tree_number"] is None
    assert all(r["x"] is None and r["y"] is None for r in got)


def test_geojson_in_25832_and_unreadable_files(tmp_path):
    from zi_warehouse.trees import FileProblem, geojson
    from zi_warehouse.trees.coordinates import EPSG_UTM32

    doc = {**GEOJSON, "crs": {"type": "name", "properties": {"name": "EPSG:25832"}}}
    path = tmp_path / "baumkataster_dortmund.geojson"
    path.write_text(json.dumps(doc), encoding="utf-8")
    table, crs, _schema = geojson.read_register(path)
    assert crs == EPSG_UTM32 and table.column("x").to_pylist()[0] == "7.4654"
    path.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with pytest.raises(FileProblem) as bad:
        geojson.read_register(path)
    assert bad.value.rule == "file_unreadable" and "GeoJSON nicht lesbar" in str(bad.value)


# --- forecast header normalisation -----------------------------------------------------------------
def test_cached_header_normalisation_is_the_same_function():
    from zi_warehouse.forecasts.template import normalise_header

    assert normalise_header("  Gesamt\u00a0kosten\n(EUR) *: ") == "gesamt kosten (eur)"
    assert normalise_header(None) == "" and normalise_header(0) == "" and normalise_header(2024) == "2024"
    assert normalise_header("Kommune:") == normalise_header("KOMMUNE") == "kommune"


# --- bench helpers ---------------------------------------------------------------------------------
def test_tree_rss_counts_children(tmp_path):
    import subprocess
    import sys

    from zi_bench import tree_rss_bytes

    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(200 * 2**20); time.sleep(30)"])
    try:
        deadline = time.time() + 20
        while tree_rss_bytes(os.getpid()) - tree_rss_bytes(child.pid) < 0 and time.time() < deadline:
            time.sleep(0.1)
        while tree_rss_bytes(child.pid) < 200 * 2**20 and time.time() < deadline:
            time.sleep(0.1)
        assert tree_rss_bytes(child.pid) >= 200 * 2**20
        assert tree_rss_bytes(os.getpid()) >= tree_rss_bytes(child.pid)  # the child is part of our tree
    finally:
        child.kill()
        child.wait()


def test_hold_back_and_put_back(tmp_path):
    from zi_bench import hold_back, put_back

    landing = tmp_path / "landing"
    names = {
        "forecasts": [
            "Prognose_Bochum_2024-Q1.xlsx",
            "Prognose_Bochum_2024-Q2.xlsx",
            "Prognose_Herne_2024-Q2.xlsx",
            "Prognose_Herne_2024-Q2_korrektur1.xlsx",
            "Prognose_Gelsenkirchen_2023-Q4.xlsx",
        ],
        "funding": [
            f"zi_foerderung_00{i}_{'voll' if i == 0 else 'delta'}_2024010{i + 1}_{e}.csv"
            for i in range(3)
            for e in ("antraege", "zahlungen")
        ],
        "climate/dwd/recent/2026-11-01": ["tageswerte_KL_01303_akt.zip", "tageswerte_KL_13670_akt.zip"],
    }
    for folder, files in names.items():
        (landing / folder).mkdir(parents=True)
        for name in files:
            (landing / folder / name).write_text(name)
    held = hold_back(landing, tmp_path / "held")
    assert held == {
        "new_workbook": ["forecasts/Prognose_Bochum_2024-Q2.xlsx"],  # Herne's Q2 has a correction: not chosen
        "daemon_workbook": ["forecasts/Prognose_Gelsenkirchen_2023-Q4.xlsx"],  # another municipality's latest
        "funding_delta": [
            "funding/zi_foerderung_002_delta_20240103_antraege.csv",
            "funding/zi_foerderung_002_delta_20240103_zahlungen.csv",
        ],
        "dwd_recent": ["climate/dwd/recent/2026-11-01/tageswerte_KL_01303_akt.zip"],
    }
    assert not (landing / "forecasts/Prognose_Bochum_2024-Q2.xlsx").exists()
    for scenario, files in held.items():
        put_back(landing, tmp_path / "held", scenario, files)
    assert all((landing / f).exists() for files in held.values() for f in files)


def test_dbt_resource_starts_no_version_subprocess_and_no_adapter(monkeypatch):
    # dagster-dbt would run `dbt --version` (a whole dbt start-up) and open an adapter before every
    # invocation; the project's resource knows the version from the installed package.
    import dagster_dbt.core.resource
    from dbt.version import __version__

    from dagster_zi.dbt import ZiDbtCliResource, dbt_resource

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"subprocess started: {args}")

    monkeypatch.setattr(dagster_dbt.core.resource, "check_output", no_subprocess)
    fresh = ZiDbtCliResource(
        project_dir=dbt_resource.project_dir,
        profiles_dir=dbt_resource.profiles_dir,
        dbt_executable=dbt_resource.dbt_executable,
    )
    assert str(fresh._cli_version) == __version__
    assert fresh._initialize_dbt_core_adapter(["build"]) is None
    assert fresh.dbt_executable.endswith("zi-dbt")


def test_the_daemon_targets_are_judged_on_the_slowest_drop():
    from zi_bench_deployment import slowest_delivery

    drops = [
        {"drop_to_feedback_seconds": 2.0, "drop_to_published_seconds": 8.0, "success": True, "file": "a"},
        {"drop_to_feedback_seconds": 3.5, "drop_to_published_seconds": 7.0, "success": True, "file": "b"},
        {"drop_to_feedback_seconds": 2.5, "drop_to_published_seconds": 9.0, "success": True, "file": "c"},
    ]
    judged = slowest_delivery(drops)
    assert judged["file"] == "b" and judged["drop_to_feedback_seconds"] == 3.5
    assert judged["drop_to_published_seconds"] == 9.0  # the slowest publish, whichever drop it was
    assert judged["mean_drop_to_feedback_seconds"] == 2.67 and judged["drops"] == 3 and judged["success"]
    # A drop that never got its feedback leaves no figure to pass a target with.
    lost = slowest_delivery([*drops, {"drop_to_feedback_seconds": None, "drop_to_published_seconds": None}])
    assert lost["drop_to_feedback_seconds"] is None and lost["drop_to_published_seconds"] is None
    assert not lost["success"]


def test_materialize_all_from_the_ui_is_recorded_as_a_whole_build():
    """The UI's "Materialize all" runs every asset in Dagster's implicit asset job; it rebuilds and publishes
    the whole warehouse, so its record must let the next `zi build` see that nothing changed since."""
    from dagster_zi.constants import BUILD_JOB, FAMILIES_TAG
    from dagster_zi.definitions import defs
    from dagster_zi.execution import records_build_state

    every = frozenset(defs.resolve_asset_graph().materializable_asset_keys)
    some = frozenset(sorted(every)[:3])
    assert records_build_state(BUILD_JOB, None, {})
    assert records_build_state(BUILD_JOB, some, {FAMILIES_TAG: "forecasts"})
    assert records_build_state("__ASSET_JOB", every, {})
    assert not records_build_state("__ASSET_JOB", every - {sorted(every)[0]}, {})
    assert not records_build_state(BUILD_JOB, some, {})
    assert not records_build_state("housekeeping", None, {})
    # ... but not when its checks were left out: then unchecked marts were published
    every_check = frozenset(defs.resolve_asset_graph().asset_check_keys)
    assert records_build_state("__ASSET_JOB", every, {}, every_check)
    assert not records_build_state("__ASSET_JOB", every, {}, frozenset())
    assert not records_build_state(BUILD_JOB, None, {}, frozenset())


_EXIT_SCRIPT = """
import atexit, logging, sys, threading, time
from pathlib import Path
from zi_warehouse import cli

out = Path(sys.argv[1])


class TornDown:  # its __del__ runs only when the interpreter tears the module's globals down
    def __del__(self):
        (out / "teardown").write_text("torn down")


probe = TornDown()
atexit.register(lambda: (out / "atexit").write_text("ran"))
handler = logging.FileHandler(out / "log.txt", delay=False)
logging.getLogger("probe").addHandler(handler)
logging.getLogger("probe").warning("logged")
sys.stdout.write("no newline yet")  # buffered: lost unless flushed before the process ends
if sys.argv[2] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.5), (out / "thread").write_text("done"))).start()
sys.argv = ["zi", *sys.argv[3:]]
cli.main()
(out / "after_main").write_text("main returned")
"""


@pytest.mark.parametrize(
    ("command", "expected_code"),
    [(["--help"], 0), (["no-such-command"], 2), (["build", "--no-such-option"], 2)],
)
def test_zi_ends_without_teardown_but_with_exit_handlers_output_and_exit_code(tmp_path, command, expected_code):
    """Fix 28: ``zi`` ends with os._exit after its exit handlers ran and its output was flushed, with the command's
    exit code; it never returns into the caller's code."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _EXIT_SCRIPT, str(tmp_path), "plain", *command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == expected_code, proc.stderr
    assert proc.stdout.startswith("no newline yet")
    assert (tmp_path / "atexit").read_text() == "ran"
    assert "logged" in (tmp_path / "log.txt").read_text()
    assert not (tmp_path / "after_main").exists()
    assert not (tmp_path / "teardown").exists()


def test_zi_waits_for_a_thread_it_left_running(tmp_path):
    """A non-daemon thread still running at the end is waited for (the normal exit), not cut off."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _EXIT_SCRIPT, str(tmp_path), "thread", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "thread").read_text() == "done"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "teardown").read_text() == "torn down"  # the normal exit, the probe sees it


def test_zi_console_script_is_the_entry_point_that_skips_teardown():
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "zi"]
    assert script.value == "zi_warehouse.cli:main"


def test_a_report_written_by_hand_is_no_reason_to_build_in_full(data):
    """`zi report --draft` and `zi quality-report` write into reports/, which the record watches (a report deleted
    by someone else is rebuilt); their own reports are kept in the record, so the next build can still skip."""
    _record(data)
    draft = data.reports / "quarterly" / "2026-Q2" / "bericht.html"
    draft.parent.mkdir(parents=True)
    draft.write_text("<p>Entwurf</p>", encoding="utf-8")
    assert build_state.decide(data).mode == "full"  # unknown to the record: someone else's change
    build_state.keep_reports_in_record(data)
    assert build_state.decide(data).mode == "skip"
    build_state.forget(data)  # no record (a build running or failed): nothing to keep, nothing written
    build_state.keep_reports_in_record(data)
    assert not build_state.state_path(data).exists()
