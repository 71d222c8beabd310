"""The Dagster instance on PostgreSQL (ZI_DAGSTER_POSTGRES_URL, dagster_zi/instance.py, dagster-postgres).

Against the tests' throwaway PostgreSQL server (tests/pg_server.py; a missing PostgreSQL fails, never skips):
`zi build` of a tiny demo records its run, materialisations and check results in PostgreSQL and nothing in
SQLite; another process sees them through Dagster; the daemon with this instance evaluates the sensors
and records their ticks there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, ZI, stop_process_group, zi_env
from dagster_zi.deployment import commands
from pg_server import postgres_server


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = zi_env(data_dir)
    env.pop("ZI_DAGSTER_POSTGRES_URL", None)
    env.update(extra)
    return env


def _zi(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([ZI, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.postgres
@pytest.mark.slow
def test_runs_materialisations_checks_and_sensor_ticks_go_into_postgres(tmp_path):
    import psycopg
    from dagster._core.scheduler.instigation import TickData
    from dagster._serdes import deserialize_value

    data_dir = tmp_path / "zi"
    home = data_dir / "dagster"
    with postgres_server() as pg:
        url = pg.create_database("dagster")
        env = _env(data_dir, ZI_DAGSTER_POSTGRES_URL=url)
        demo = _zi(env, "demo-data", "--scale", "0.01")
        assert demo.returncode == 0, demo.stdout + demo.stderr
        build = _zi(env, "build")
        assert build.returncode == 0, build.stdout + build.stderr

        # Nothing went into SQLite files in DAGSTER_HOME.
        assert "postgres_url" in (home / "dagster.yaml").read_text(encoding="utf-8")
        assert url not in (home / "dagster.yaml").read_text(encoding="utf-8")  # read from the environment
        assert not list(home.rglob("*.db")), list(home.rglob("*.db"))

        with psycopg.connect(url) as con:
            [(run_id, status)] = con.execute("select run_id, status from runs").fetchall()
            assert status == "SUCCESS"
            assert run_id in build.stdout
            materialised = {
                row[0]
                for row in con.execute(
                    "select asset_key from event_logs where run_id = %s and dagster_event_type = 'ASSET_MATERIALIZATION'",
                    (run_id,),
                ).fetchall()
            }
            checks = dict(
                con.execute(
                    "select execution_status, count(*) from asset_check_executions where run_id = %s group by 1",
                    (run_id,),
                ).fetchall()
            )
        assert '["marts", "mart_budget_year"]' in materialised and len(materialised) > 50
        assert checks.get("SUCCEEDED", 0) > 100, checks

        # Another process (what the webserver and the daemon do) sees the run through Dagster.
        seen = subprocess.run(
            [
                sys.executable,
                "-c",
                (
                    "import json; from dagster import AssetKey, DagsterInstance\n"
                    "with DagsterInstance.get() as i:\n"
                    "    runs = i.get_runs()\n"
                    "    m = i.get_latest_materialization_event(AssetKey(['marts', 'mart_budget_year']))\n"
                    "    print(json.dumps({'storage': type(i.run_storage).__name__, 'runs': [r.run_id for r in runs],"
                    " 'materialised_by': m.run_id}))"
                ),
            ],
            cwd=REPO_ROOT,
            env={**env, "DAGSTER_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert seen.returncode == 0, seen.stderr
        assert json.loads(seen.stdout.strip().splitlines()[-1]) == {
            "storage": "PostgresRunStorage",
            "runs": [run_id],
            "materialised_by": run_id,
        }

        # The daemon with this instance evaluates the sensors (running by default) and records their ticks there.
        daemon = subprocess.Popen(
            commands("127.0.0.1", 3000)["daemon"],  # the deployment's daemon (dagster_zi/daemon.py)
            cwd=REPO_ROOT,
            env={**env, "DAGSTER_HOME": str(home)},
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            ticks: dict[str, str] = {}
            deadline = time.monotonic() + 240
            # until both sensors have a finished tick (a tick reads STARTED while it is being evaluated)
            while time.monotonic() < deadline and not (
                {"landing_sensor", "run_failure_alert"} <= set(ticks) and "STARTED" not in ticks.values()
            ):
                assert daemon.poll() is None, daemon.stderr.read()
                time.sleep(2)
                with psycopg.connect(url) as con:
                    for status, body in con.execute("select status, tick_body from job_ticks order by id").fetchall():
                        ticks[deserialize_value(body, TickData).instigator_name] = status
        finally:
            stop_process_group(daemon)
        # The build recorded what it was built from, so the landing sensor finds nothing new.
        assert ticks.get("landing_sensor") == "SKIPPED", ticks
        assert "run_failure_alert" in ticks, ticks
        with psycopg.connect(url) as con:
            assert con.execute("select count(*) from runs").fetchone()[0] == 1


def test_an_instance_on_postgres_is_not_switched_to_sqlite_by_a_shell_without_the_url(tmp_path, monkeypatch):
    from dagster_zi.instance import instance_yaml

    data_dir = tmp_path / "zi"
    # The instance as a server with ZI_DAGSTER_POSTGRES_URL wrote it (no database needed: nothing connects).
    monkeypatch.setenv("ZI_DAGSTER_POSTGRES_URL", "postgresql://zi@db.intern/dagster")
    (data_dir / "dagster").mkdir(parents=True)
    (data_dir / "dagster" / "dagster.yaml").write_text(instance_yaml(), encoding="utf-8")
    before = (data_dir / "dagster" / "dagster.yaml").read_text(encoding="utf-8")
    assert "postgres_url" in before

    build = _zi(_env(data_dir), "build", "--no-demo-if-empty", timeout=300)

    assert build.returncode == 2, build.stdout + build.stderr
    assert "speichert ihre Läufe in PostgreSQL, aber ZI_DAGSTER_POSTGRES_URL ist" in " ".join(build.stdout.split())
    assert "Traceback" not in build.stdout + build.stderr
    assert (data_dir / "dagster" / "dagster.yaml").read_text(encoding="utf-8") == before
