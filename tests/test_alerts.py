"""Alerts (zi_warehouse/alerts.py, dagster_zi/alerts.py): a failed or blocked run sends one German e-mail.

Every message goes to a real SMTP server the test starts (tests/smtp_server.py, aiosmtpd on a free port).
The end-to-end test runs `zi build` on a data directory whose landing area has no DWD station list: the
blocking check `climate_station_list_parses` fails and stops the build. Then the daemon's failure sensor
is evaluated the way the daemon does it (in the code location `zi_warehouse`, from its cursor) over the
same instance, to show that it sees the command line's run and does not send it a second time.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT, ZI
from smtp_server import body_of, smtp_server
from zi_warehouse import alerts

UI_URL = "http://zi-server.example:3000"


def _failure(tmp_path: Path) -> alerts.RunFailure:
    return alerts.RunFailure(
        run_id="0f0e0d0c-aaaa-bbbb-cccc-123456789abc",
        job_name="build_warehouse",
        launched_by="Zeitplan daily_warehouse_build",
        data_dir=tmp_path / "zi-daten",
        run_url=f"{UI_URL}/runs/0f0e0d0c-aaaa-bbbb-cccc-123456789abc",
        failed_steps=[alerts.FailedStep("zi_dbt_assets", "duckdb.IOException: IO Error: Datei nicht lesbar")],
        started_at=dt.datetime(2026, 11, 30, 5, 0, tzinfo=dt.UTC),
        ended_at=dt.datetime(2026, 11, 30, 5, 4, tzinfo=dt.UTC),
        published=False,
    )


def test_settings_come_from_the_environment_and_are_checked():
    assert alerts.SmtpSettings.from_env({}) is None  # alerts off
    settings = alerts.SmtpSettings.from_env(
        {
            "ZI_ALERT_SMTP_HOST": "mail.intern",
            "ZI_ALERT_SMTP_STARTTLS": "1",
            "ZI_ALERT_SMTP_USER": "zi",
            "ZI_ALERT_SMTP_PASSWORD": "geheim",
            "ZI_ALERT_FROM": "zi@example.org",
            "ZI_ALERT_TO": "a@example.org, b@example.org;c@example.org",
        }
    )
    assert settings.port == 587 and settings.starttls and settings.user == "zi" and settings.password == "geheim"
    assert settings.recipients == ("a@example.org", "b@example.org", "c@example.org")
    assert (
        alerts.SmtpSettings.from_env(
            {"ZI_ALERT_SMTP_HOST": "mail.intern", "ZI_ALERT_FROM": "zi@example.org", "ZI_ALERT_TO": "a@example.org"}
        ).port
        == 25
    )
    with pytest.raises(alerts.AlertConfigError, match="ZI_ALERT_TO"):
        alerts.SmtpSettings.from_env({"ZI_ALERT_SMTP_HOST": "mail.intern", "ZI_ALERT_FROM": "zi@example.org"})
    with pytest.raises(alerts.AlertConfigError, match="Portnummer"):
        alerts.SmtpSettings.from_env(
            {
                "ZI_ALERT_SMTP_HOST": "mail.intern",
                "ZI_ALERT_SMTP_PORT": "smtp",
                "ZI_ALERT_FROM": "zi@example.org",
                "ZI_ALERT_TO": "a@example.org",
            }
        )


def test_a_failed_step_is_mailed_once_in_german(tmp_path):
    failure = _failure(tmp_path)
    with smtp_server() as smtp:
        settings = alerts.SmtpSettings.from_env(smtp.env(to="team@example.org, leitung@example.org"))
        first = alerts.notify(failure, tmp_path / "alerts", "Sensor run_failure_alert", settings)
        second = alerts.notify(failure, tmp_path / "alerts", "zi build", settings)
        messages = smtp.wait_for(1)
        recipients = smtp.recipients
    assert first.startswith("Benachrichtigung gesendet an team@example.org, leitung@example.org")
    assert "bereits übernommen (Sensor run_failure_alert, sent)" in second
    assert len(messages) == 1 and recipients == [["team@example.org", "leitung@example.org"]]
    message = messages[0]
    assert message["Subject"] == "[ZI Warehouse] Lauf fehlgeschlagen: Schritt zi_dbt_assets (zi-daten)"
    assert message["X-ZI-Run-Id"] == failure.run_id
    body = body_of(message)
    assert "gestartet von Zeitplan daily_warehouse_build) ist fehlgeschlagen." in body
    assert "Fehlgeschlagener Schritt:\n  - zi_dbt_assets\n    duckdb.IOException: IO Error: Datei nicht lesbar" in body
    assert "Nichts wurde veröffentlicht" in body
    assert f"Datenverzeichnis: {tmp_path / 'zi-daten'}" in body
    assert f"Lauf im Dagster-UI: {UI_URL}/runs/{failure.run_id}" in body
    assert "Gestartet: 30.11.2026 06:00 MEZ, beendet: 30.11.2026 06:04 MEZ" in body  # local time, zone named
    assert alerts.read_record(tmp_path / "alerts", failure.run_id)["status"] == "sent"


def test_a_refused_mail_is_recorded_and_raised(tmp_path):
    with smtp_server() as smtp:
        settings = alerts.SmtpSettings.from_env(smtp.env())
    # The server is gone: nothing listens on its port any more.
    with pytest.raises(RuntimeError, match="nicht gesendet"):
        alerts.notify(_failure(tmp_path), tmp_path / "alerts", "zi build", settings)
    record = alerts.read_record(tmp_path / "alerts", _failure(tmp_path).run_id)
    assert record["status"] == "failed" and record["error"]


def _daemon_like_context(instance, cursor):
    """The context the daemon evaluates the sensor with: in the code location of workspace.yaml."""
    from dagster import SensorEvaluationContext
    from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    from dagster_zi.alerts import SENSOR_NAME
    from dagster_zi.definitions import defs

    repo = defs.get_repository_def()
    origin = ManagedGrpcPythonEnvCodeLocationOrigin(
        LoadableTargetOrigin(module_name="dagster_zi.definitions", working_directory=str(REPO_ROOT)),
        location_name="zi_warehouse",
    )
    return SensorEvaluationContext(
        instance_ref=None,
        instance=instance,
        cursor=cursor,
        repository_name=repo.name,
        repository_def=repo,
        sensor_name=SENSOR_NAME,
        code_location_origin=origin,
    )


@pytest.mark.slow
def test_a_blocked_build_sends_one_mail_whoever_reports_it(tmp_path, monkeypatch):
    from dagster import DagsterInstance, DefaultSensorStatus

    from dagster_zi.alerts import ALERT_TAG, record_dir, run_failure_alert
    from dagster_zi.instance import ensure_instance

    data_dir = tmp_path / "zi-daten"
    monkeypatch.setenv("ZI_DATA_DIR", str(data_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(data_dir / "dagster"))
    monkeypatch.delenv("ZI_DAGSTER_POSTGRES_URL", raising=False)
    monkeypatch.setenv("ZI_DAGSTER_UI_URL", UI_URL + "/")
    assert run_failure_alert.default_status == DefaultSensorStatus.RUNNING
    ensure_instance()
    with smtp_server() as smtp, DagsterInstance.get() as instance:
        for key, value in smtp.env(to="datenteam@example.org").items():
            monkeypatch.setenv(key, value)
        # The daemon's first tick starts the sensor's cursor (failures from before are not reported).
        first_tick = run_failure_alert.evaluate_tick(_daemon_like_context(instance, None))
        start_cursor = first_tick.cursor

        build = subprocess.run(
            [ZI, "build", "--no-demo-if-empty"],
            cwd=REPO_ROOT,
            env={**os.environ, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert build.returncode == 1, build.stdout + build.stderr
        [run] = instance.get_runs()
        assert "Benachrichtigung gesendet an datenteam@example.org" in build.stdout, build.stdout
        messages = smtp.wait_for(1)
        assert len(messages) == 1
        message = messages[0]
        assert message["Subject"] == (
            "[ZI Warehouse] Build blockiert: Prüfung climate_station_list_parses fehlgeschlagen (zi-daten)"
        )
        body = body_of(message)
        assert "gestartet von zi build) wurde durch eine blockierende Prüfung angehalten." in body
        assert (
            "Blockierende Prüfung fehlgeschlagen:\n  - raw_climate/climate__stations: climate_station_list_parses\n"
            "    DWD-Stationsliste geladen, ohne abgewiesene Zeilen, mit jeder Station der Tageswerte"
        ) in body
        assert "Keine DWD-Stationsliste (KL_Tageswerte_Beschreibung_Stationen.txt) im Eingang" in body
        assert "Fehlgeschlagener Schritt:\n  - raw_climate__climate__stations_climate_station_list_parses" in body
        assert "Nichts wurde veröffentlicht" in body
        assert f"Datenverzeichnis: {data_dir}" in body
        assert f"Lauf im Dagster-UI: {UI_URL}/runs/{run.run_id}\n" in body
        assert instance.get_run_by_id(run.run_id).tags[ALERT_TAG] == "E-Mail gesendet (zi build)"

        # The command line's run has no code-location origin; the sensor sees it anyway
        # (monitor_all_code_locations) and finds it reported.
        assert run.remote_job_origin is None
        tick = run_failure_alert.evaluate_tick(_daemon_like_context(instance, start_cursor))
        assert [(r.dagster_run.run_id, r.error) for r in tick.dagster_run_reactions] == [(run.run_id, None)]
        assert len(smtp.wait_for(2, timeout=2)) == 1
        assert alerts.read_record(record_dir(instance), run.run_id)["by"] == "zi build"

        # Had `zi build` been killed before it could report, the sensor sends the one mail.
        alerts.forget(record_dir(instance), run.run_id)
        run_failure_alert.evaluate_tick(_daemon_like_context(instance, start_cursor))
        messages = smtp.wait_for(2)
        assert len(messages) == 2 and messages[1]["Subject"] == message["Subject"]
        assert alerts.read_record(record_dir(instance), run.run_id)["by"] == "Sensor run_failure_alert"
