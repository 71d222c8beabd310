"""The server deployment: the systemd units in deploy/systemd/ and `zi serve` (dagster_zi/deployment.py).

- The units are valid (``systemd-analyze verify`` where systemd is installed, a structural check always), their
  commands exist in the virtual environment and accept their arguments, and they are ``zi serve`` with one of
  its processes each.
- ``zi serve`` itself: tests/test_operations.py (it answers, picks up deliveries, and on SIGTERM stops every
  process it started).
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

UNIT_DIR = REPO_ROOT / "deploy" / "systemd"
#: Where the units expect the repository and the environment file on the server.
SERVER_REPO = "/opt/zi-warehouse"
SERVER_ENV_FILE = "/etc/zi-warehouse/zi.env"
BIN = Path(sys.executable).parent
UNITS = ("zi-serve.service", "zi-webserver.service", "zi-daemon.service", "zi-run-worker.service")


def _local(text: str, env_file: Path) -> str:
    """A unit with the server's paths replaced by this checkout's (its virtual environment, a test env file)."""
    return (
        text.replace(f"{SERVER_REPO}/.venv/bin", str(BIN))
        .replace(SERVER_REPO, str(REPO_ROOT))
        .replace(SERVER_ENV_FILE, str(env_file))
    )


def _read_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def test_every_unit_is_there_with_user_directory_environment_and_restart():
    assert sorted(p.name for p in UNIT_DIR.glob("*.service")) == sorted(UNITS)
    for name in UNITS:
        unit = _read_unit(UNIT_DIR / name)
        service = unit["Service"]
        assert service["User"] == "zi" and service["WorkingDirectory"] == SERVER_REPO, name
        assert service["EnvironmentFile"] == SERVER_ENV_FILE, name
        assert service["Restart"] == "on-failure", name
        assert unit["Install"]["WantedBy"] == "multi-user.target", name
        assert unit["Unit"]["Description"].startswith("ZI Warehouse"), name
    # Either the one unit or the three: never both at once.
    assert set(_read_unit(UNIT_DIR / "zi-serve.service")["Unit"]["Conflicts"].split()) == set(UNITS[1:])
    # The environment file names the data directory and its instance explicitly (systemd does not expand).
    env = dict(
        line.split("=", 1)
        for line in (UNIT_DIR / "zi-warehouse.env").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    assert env["DAGSTER_HOME"] == env["ZI_DATA_DIR"] + "/dagster"
    assert "ZI_ALERT_SMTP_PASSWORD=" in (UNIT_DIR / "zi-warehouse.env").read_text(encoding="utf-8")


def test_the_units_commands_exist_accept_their_arguments_and_match_zi_serve(tmp_path):
    from dagster_zi.deployment import PROCESS_NAMES, commands

    env_file = tmp_path / "zi.env"
    shutil.copy(UNIT_DIR / "zi-warehouse.env", env_file)
    started: dict[str, list[str]] = {}
    for name in UNITS:
        service = _read_unit(UNIT_DIR / name)["Service"]
        for key in ("ExecStartPre", "ExecStart"):
            if key not in service:
                continue
            argv = shlex.split(_local(service[key], env_file))
            assert os.access(argv[0], os.X_OK), f"{name} {key}: {argv[0]} fehlt in der virtuellen Umgebung"
            if argv[1:2] == ["-m"]:  # python -m <module>
                assert importlib.util.find_spec(argv[2]) is not None, f"{name}: Modul {argv[2]} fehlt"
            else:  # a click command: unknown options or arguments fail before --help is honoured
                result = subprocess.run([*argv, "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
                assert result.returncode == 0, f"{name} {key}: {result.stderr}"
            if key == "ExecStart":
                started[name] = argv
    # The three units are `zi serve` with one of its processes each (so each unit's journal has no colour codes).
    assert all(argv[:2] == [str(BIN / "zi"), "serve"] for argv in started.values()), started
    only = {unit: argv[argv.index("--only") + 1] for unit, argv in started.items() if "--only" in argv}
    assert only == {"zi-webserver.service": "ui", "zi-daemon.service": "daemon", "zi-run-worker.service": "run-worker"}
    assert set(only.values()) == set(PROCESS_NAMES) == set(commands("127.0.0.1", 3000))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd not installed (structural check above)")
def test_systemd_accepts_the_units(tmp_path):
    env_file = tmp_path / "zi.env"
    shutil.copy(UNIT_DIR / "zi-warehouse.env", env_file)
    for name in UNITS:
        (tmp_path / name).write_text(_local((UNIT_DIR / name).read_text(encoding="utf-8"), env_file), encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / n) for n in UNITS)], capture_output=True, text=True, timeout=120
    )
    # Unknown keys are only warnings to systemd: any output counts as a failure here.
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


def test_a_second_daemon_on_the_same_instance_is_refused(tmp_path):
    """Dagster runs a second daemon beside the first and only logs "Another SENSOR daemon is still sending
    heartbeats"; both would launch every delivery's runs. The daemon's entry point refuses, in German."""
    env = {**os.environ, "ZI_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, dagster_zi.daemon as d; d.claim_the_instance(); print('held', flush=True); sys.stdin.read()",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        second = subprocess.run(
            [sys.executable, "-m", "dagster_zi.daemon", "run", "-w", str(REPO_ROOT / "workspace.yaml")],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"läuft schon ein Daemon (Prozess {holder.pid} auf " in second.stderr
    finally:
        holder.communicate("", timeout=30)
    # The lock goes with the process that held it (also after a crash): the next daemon gets it.
    again = subprocess.run(
        [sys.executable, "-c", "import dagster_zi.daemon as d; d.claim_the_instance(); print('held')"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.stdout.strip() == "held", again.stderr
