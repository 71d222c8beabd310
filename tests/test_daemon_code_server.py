"""The deployment's daemon keeps its code server while the code is unchanged (dagster_zi/daemon.py).

Dagster's daemon replaces its code server every 60 s (a new process importing the definitions, ~4 s of CPU,
no sensor evaluated meanwhile). Here it is replaced only when the code changed or the server ended. The test
shortens Dagster's interval to 2 s, so that a minute of Dagster's behaviour takes seconds, and runs the daemon
on a copy of the code, so that changing a file there does not touch this checkout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import copy_built_data_dir, copy_code, stop_process, zi_env

#: Dagster's workspace interval in the test (60 s in Dagster).
INTERVAL_SECONDS = 2
DAEMON = (
    "import sys, dagster._daemon.controller as controller\n"
    f"controller.RELOAD_WORKSPACE_INTERVAL = {INTERVAL_SECONDS}\n"
    "sys.argv = ['dagster-daemon', 'run', '-w', 'workspace.yaml']\n"
    "from dagster_zi.daemon import main\n"
    "main()\n"
)


def _code_servers(daemon_pid: int) -> list[int]:
    """The daemon's code server processes (``dagster api grpc``, started by the daemon), alive now."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, ValueError, IndexError):
            continue
        if parent == daemon_pid and b"grpc" in cmdline and state != "Z":
            found.append(int(entry.name))
    return sorted(found)


def _wait(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.5)


def test_the_daemon_keeps_its_code_server_until_the_code_changes_or_the_server_ends(demo_data_dir, tmp_path):
    code = copy_code(tmp_path / "code")
    data_dir = copy_built_data_dir(demo_data_dir, tmp_path / "data")
    env = {**zi_env(data_dir), "PYTHONPATH": str(code), "DAGSTER_HOME": str(data_dir / "dagster")}
    subprocess.run(
        [sys.executable, "-c", "from dagster_zi.instance import ensure_instance; ensure_instance()"],
        cwd=code,
        env=env,
        check=True,
    )
    log_path = tmp_path / "daemon.log"
    log = open(log_path, "w")  # noqa: SIM115 - open while the daemon runs
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON], cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT)

    def one_server() -> int | None:
        assert daemon.poll() is None, log_path.read_text()
        servers = _code_servers(daemon.pid)
        return servers[0] if len(servers) == 1 else None

    try:
        first = _wait(one_server, 180, "Code-Server des Daemons gestartet")
        # Five of Dagster's intervals, and two or three checks of the daemon's loop (every 5 s): the same server.
        time.sleep(5 * INTERVAL_SECONDS + 5)
        assert _code_servers(daemon.pid) == [first], log_path.read_text()[-3000:]
        # New code: a new server within an interval and a check of the loop; the old one ends.
        os.utime(code / "dagster_zi" / "landing.py")
        second = _wait(lambda: (s := one_server()) != first and s, 120, "neuer Code-Server nach Codeänderung")
        # A server that ended (killed) is replaced without waiting for the hour.
        os.kill(second, signal.SIGKILL)
        _wait(lambda: (s := one_server()) not in (first, second) and s, 120, "Code-Server ersetzt")
    finally:
        stop_process(daemon, 60)
        log.close()
