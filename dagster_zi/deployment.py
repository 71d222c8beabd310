"""The Dagster deployment of one data directory on one server: which processes, started how.

What belongs here: the processes ``zi serve`` starts and supervises — the webserver (UI), the daemon
(schedule, sensors, run queue, run monitoring; ``dagster_zi/daemon.py``) and the run worker (``dagster_zi/run_worker.py``) — all with
the data directory's instance (``DAGSTER_HOME``) and the repository's ``workspace.yaml``. The systemd units in
``deploy/systemd/`` start the same processes as separate services (``zi serve --only <process>``).

Dagster colours its log lines whether or not they go to a terminal, and journald keeps a line with an escape
code as binary data: ``journalctl`` shows "[… blob data]" instead of it. So when its output is not a terminal,
``zi serve`` passes the processes' lines on without the colour codes (``relay_without_colours``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from dagster_zi.instance import ensure_instance
from zi_warehouse import config
from zi_warehouse.config import REPO_ROOT, UI_URL_FILE

WORKSPACE = REPO_ROOT / "workspace.yaml"
#: The deployment's processes: the key ``zi serve --only`` takes, and the name its messages use.
PROCESS_NAMES = {"ui": "Dagster-UI", "daemon": "Dagster-Daemon", "run-worker": "Run-Worker"}
#: Terminal control sequences (colours, cursor) in a line of output.
TERMINAL_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def commands(host: str, port: int) -> dict[str, list[str]]:
    """The deployment's processes by key (``PROCESS_NAMES``), as command lines (the virtual environment's
    executables)."""
    bin_dir = Path(sys.executable).parent
    return {
        "ui": [str(bin_dir / "dagster-webserver"), "-w", str(WORKSPACE), "-h", host, "-p", str(port)],
        "daemon": [sys.executable, "-m", "dagster_zi.daemon", "run", "-w", str(WORKSPACE)],
        "run-worker": [sys.executable, "-m", "dagster_zi.run_worker"],
    }


def relay_without_colours(source: IO[bytes], target: IO[str], lock: threading.Lock) -> None:
    """Pass a process's output on line by line without terminal codes, until the process and its children
    have closed it."""
    for line in iter(source.readline, b""):
        with lock:
            try:
                target.write(TERMINAL_CODES.sub("", line.decode("utf-8", errors="replace")))
                target.flush()
            except (OSError, ValueError):
                pass  # nobody reads zi serve's output any more: keep draining, or the processes would block


def _ui_answers(host: str, port: int) -> bool:
    import urllib.request

    address = "127.0.0.1" if host in ("0.0.0.0", "") else host
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/server_info", timeout=0.5) as response:
            return response.status == 200
    except OSError:
        return False


def serve_all(host: str, port: int, say: Callable[[str], None] = print, only: str | None = None) -> int:
    """Start every process (or ``only`` the one with that key), wait until one ends or a stop signal arrives,
    then stop all; the exit code."""
    home = ensure_instance()
    config.paths().ensure()  # a new data directory shows where deliveries go (landing/<Quelle>/)
    serves_ui = only in (None, "ui")
    if serves_ui:
        # Where `zi build` and the alerts point people to (without ZI_DAGSTER_UI_URL): this UI, on this port.
        shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0", "") else host
        (home / UI_URL_FILE).write_text(f"http://{shown_host}:{port}\n", encoding="utf-8")
    env = {**os.environ, "DAGSTER_HOME": str(home), "DO_NOT_TRACK": "1", "DAGSTER_DISABLE_TELEMETRY": "1"}
    plain = not sys.stdout.isatty()
    output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT} if plain else {}
    started = {
        PROCESS_NAMES[key]: subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, **output)
        for key, cmd in commands(host, port).items()
        if only in (None, key)
    }
    relays = []
    if plain:
        lock = threading.Lock()
        for proc in started.values():
            relays.append(threading.Thread(target=relay_without_colours, args=(proc.stdout, sys.stdout, lock)))
            relays[-1].daemon = True  # a code server that outlives its parent must not keep zi serve running
            relays[-1].start()
    say(f"Dagster-Instanz: {home}")
    if serves_ui:
        say(f"Dagster-UI startet: http://{host}:{port}  (Zeitplan und Sensoren laufen; Strg-C beendet alles)")
    stop = {"signal": None}
    ui_ready = not serves_ui

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
        others = "; die anderen Prozesse werden gestoppt" if len(started) > 1 else ""
        say(f"{ended} beendet (Code {started[ended].returncode}){others}.")
    for proc in started.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for proc in started.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    relayed_by = time.monotonic() + 5
    for relay in relays:  # the processes' last lines before zi serve's own (a code server may hold on longer)
        relay.join(timeout=max(0.1, relayed_by - time.monotonic()))
    *others, last = started
    say(f"zi serve beendet: {', '.join(others) + ' und ' if others else ''}{last} gestoppt.")
    return 0 if ended is None else 1
