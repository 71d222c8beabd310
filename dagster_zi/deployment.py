"""The Dagster deployment of one data directory on one server: which processes, started how.

What belongs here: the processes ``zi serve`` starts and supervises — the webserver (UI), the daemon
(schedule, sensors, run queue, run monitoring; ``dagster_zi/daemon.py``) and the run worker (``dagster_zi/run_worker.py``) — all with
the data directory's instance (``DAGSTER_HOME``) and the repository's ``workspace.yaml``. The systemd units in
``deploy/systemd/`` start the same commands as separate services.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dagster_zi.instance import ensure_instance
from zi_warehouse.config import REPO_ROOT, UI_URL_FILE

WORKSPACE = REPO_ROOT / "workspace.yaml"


def commands(host: str, port: int) -> dict[str, list[str]]:
    """The deployment's processes by German name, as command lines (the virtual environment's executables)."""
    bin_dir = Path(sys.executable).parent
    return {
        "Dagster-UI": [str(bin_dir / "dagster-webserver"), "-w", str(WORKSPACE), "-h", host, "-p", str(port)],
        "Dagster-Daemon": [sys.executable, "-m", "dagster_zi.daemon", "run", "-w", str(WORKSPACE)],
        "Run-Worker": [sys.executable, "-m", "dagster_zi.run_worker"],
    }


def _ui_answers(host: str, port: int) -> bool:
    import urllib.request

    address = "127.0.0.1" if host in ("0.0.0.0", "") else host
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/server_info", timeout=0.5) as response:
            return response.status == 200
    except OSError:
        return False


def serve_all(host: str, port: int, say: Callable[[str], None] = print) -> int:
    """Start every process, wait until one ends or a stop signal arrives, then stop all; the exit code."""
    home = ensure_instance()
    # Where `zi build` and the alerts point people to (without ZI_DAGSTER_UI_URL): this UI, on this port.
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0", "") else host
    (home / UI_URL_FILE).write_text(f"http://{shown_host}:{port}\n", encoding="utf-8")
    env = {**os.environ, "DAGSTER_HOME": str(home), "DO_NOT_TRACK": "1", "DAGSTER_DISABLE_TELEMETRY": "1"}
    started = {name: subprocess.Popen(cmd, cwd=REPO_ROOT, env=env) for name, cmd in commands(host, port).items()}
    say(f"Dagster-Instanz: {home}")
    say(f"Dagster-UI startet: http://{host}:{port}  (Zeitplan und Sensoren laufen; Strg-C beendet alles)")
    stop = {"signal": None}
    ui_ready = False

    def on_signal(signum, _frame) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ended = None
    while stop["signal"] is None and ended is None:
        time.sleep(0.5)
        ended = next((name for name, proc in started.items() if proc.poll() is not None), None)
        if not ui_ready and _ui_answers(host, port):  # the webserver needs ~10-30 s: say when it can be opened
            ui_ready = True
            say(f"Dagster-UI bereit: http://{host}:{port}")
    if ended:
        say(f"{ended} beendet (Code {started[ended].returncode}); die anderen Prozesse werden gestoppt.")
    for proc in started.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for proc in started.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    say("zi serve beendet: UI, Daemon und Run-Worker sind gestoppt.")
    return 0 if ended is None else 1
