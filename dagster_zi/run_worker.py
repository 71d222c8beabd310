"""Runs launched by the daemon or the UI start in milliseconds: a preloaded run worker and its launcher.

What belongs here: the run launcher configured in ``dagster.yaml`` (``ZiRunLauncher``) and the long-running
process it hands runs to (``zi run-worker``, started by ``zi serve``).

Why: Dagster's default launcher asks the code server to start every run in a new Python process, which
imports the whole code location again (Dagster, dbt, Great Expectations, pandas, the definitions: about
6-10 s here) before the first step. A delivery dropped into ``landing/`` would wait that long for its
feedback workbook. The run worker imports all of it once and forks a child per run; the child (a copy of a
warm process) executes the run with Dagster's own run-worker code, exactly as ``dagster api execute_run``
would. The worker serves one data directory: it lives in that instance's ``DAGSTER_HOME``.

- No worker running (``dagster dev``, a worker being restarted): the launcher falls back to Dagster's
  default launcher, so runs still start, only slower.
- Code changed since the worker started (a deployment): the worker restarts itself, and the launcher waits
  for it (or falls back) — a run never executes stale code.
- A worker still warming up (``zi serve`` or its service just started: about 15 s on a quiet machine, up to a
  minute under load) answers at once that it is not ready, and the launcher waits for it as for a restart:
  the deliveries the landing sensor finds in the first seconds no longer start through the code server (a cold
  process of their own, ~30 s slower, and every event line of the run in the deployment's journal).
- Health: every run's executor tags the run with the process and host that execute it
  (``dagster_zi.execution``); run monitoring asks this launcher whether that process is alive, so a run whose
  process was killed (including a ``zi build`` killed by hand) is marked failed and frees the queue.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster._core.launcher import DefaultRunLauncher, RunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._serdes import ConfigurableClass, ConfigurableClassData

from dagster_zi.constants import RUN_HOST_TAG, RUN_PID_TAG
from zi_warehouse import dbt_server
from zi_warehouse.german import format_number
from zi_warehouse.reports.chromium import wait_for_closing

SOCKET_NAME = "run-worker.sock"
#: How long a launch waits for a worker that is warming up (just started, or restarting on new code) before it
#: falls back to the code server.
WARM_UP_WAIT_SECONDS = 60
#: The worker's answer while it warms up: not ready yet, ask again.
WARMING_UP = {"ok": False, "warming_up": True}
#: How long the worker waits for its warm dbt to parse the project before it takes runs.
DBT_PARSE_WAIT_SECONDS = 300
#: Source folders whose change makes a warm worker stale (plus the dbt manifest).
CODE_DIRS = ("dagster_zi", "zi_warehouse")

log = logging.getLogger("zi.run_worker")


#: What each run printed (Dagster's event lines, dbt's progress), one file per run in ``DAGSTER_HOME``, not in
#: the deployment's journal (about 250 lines per build there); the UI has the same per step.
RUN_OUTPUT_DIR = "run-output"


def run_output_path(run_id: str, dagster_home: Path | None = None) -> Path:
    home = dagster_home or Path(os.environ.get("DAGSTER_HOME", "."))
    return home / RUN_OUTPUT_DIR / f"{run_id}.log"


def socket_path(dagster_home: Path | None = None) -> Path:
    home = dagster_home or Path(os.environ.get("DAGSTER_HOME", "."))
    return home / SOCKET_NAME


def code_fingerprint() -> str:
    """Paths and modification times of the code a run executes and of the dbt project the worker parsed
    (cheap enough to check at every launch)."""
    from zi_warehouse.build_state import DBT_PATHS
    from zi_warehouse.config import REPO_ROOT

    digest = hashlib.sha256()
    for name in (*CODE_DIRS, *DBT_PATHS, "target/manifest.json"):
        root = REPO_ROOT / name
        for path in sorted(root.rglob("*") if root.is_dir() else [root]):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(f"{path}:{path.stat().st_mtime_ns}\n".encode())
    return digest.hexdigest()


def ask(path: Path, request: dict, timeout: float = 10.0) -> dict | None:
    """Send one request to the worker; None when no worker answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data) if data else None
    except (OSError, ValueError):
        return None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (finished, not yet reaped by its parent) is not running
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


# --- the launcher (runs in the daemon and the webserver) -------------------------------------------------------


class ZiRunLauncher(RunLauncher, ConfigurableClass):
    """Hands each run to the preloaded run worker of this instance; Dagster's default launcher otherwise."""

    def __init__(self, inst_data: ConfigurableClassData | None = None):
        self._inst_data = inst_data
        self._default = DefaultRunLauncher()
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> ZiRunLauncher:
        return cls(inst_data=inst_data)

    def register_instance(self, instance) -> None:
        super().register_instance(instance)
        self._default.register_instance(instance)

    def _socket(self) -> Path:
        return socket_path(Path(self._instance.root_directory))

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        reply = ask(self._socket(), {"op": "launch", "run_id": run.run_id})
        if reply is not None and reply.get("warming_up"):
            # The worker is starting or restarting on new code; it takes the run once it has imported
            # everything (while it restarts, its socket is briefly gone: that is waited for too).
            deadline = time.monotonic() + WARM_UP_WAIT_SECONDS
            while time.monotonic() < deadline and (reply is None or reply.get("warming_up")):
                time.sleep(0.5)
                reply = ask(self._socket(), {"op": "launch", "run_id": run.run_id})
        if reply and reply.get("ok"):
            self._instance.report_engine_event(
                f"Im vorgeladenen Run-Worker gestartet (Prozess {reply['pid']}).", run, cls=self.__class__
            )
            return
        why = (
            "kein Run-Worker läuft"
            if reply is None
            else "Run-Worker nach 60 s noch nicht bereit"
            if reply.get("warming_up")
            else reply.get("error", "Run-Worker antwortet nicht")
        )
        self._instance.report_engine_event(
            f"Start über den Code-Server ({why}; zi serve startet den Run-Worker).", run, cls=self.__class__
        )
        self._default.launch_run(context)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        reply = ask(self._socket(), {"op": "terminate", "run_id": run_id})
        if reply and reply.get("ok"):
            self._instance.report_run_canceling(run)
            return True
        return self._default.terminate(run_id)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        """Alive or not, by the process the run's executor registered (any launcher, ``zi build`` too)."""
        pid, host = run.tags.get(RUN_PID_TAG), run.tags.get(RUN_HOST_TAG)
        if not pid or host != socket.gethostname():
            # Not yet executing (the start timeout covers that), or on another machine: nothing to judge here.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "Prozess nicht von hier prüfbar")
        if process_alive(int(pid)):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=pid)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"Der Prozess {pid} des Laufs auf {host} ist beendet, ohne den Lauf abzuschließen.",
            run_worker_id=pid,
        )

    def dispose(self) -> None:
        self._default.dispose()


# --- the worker (a long-running process, `zi run-worker`) --------------------------------------------------


def warm_up() -> None:
    """Import what runs execute, once: the definitions and the libraries their steps import lazily."""
    import great_expectations  # noqa: F401 - the marts' quality suites
    import matplotlib.pyplot  # noqa: F401 - the quarterly report's charts

    import dagster_zi.definitions  # noqa: F401 - Dagster, dagster-dbt, every asset module, the dbt manifest
    import zi_warehouse.reports.quality
    import zi_warehouse.reports.quarterly  # noqa: F401


def _start_dbt_server(home: Path) -> Path | None:
    """The warm dbt for the runs' dbt commands (zi_warehouse/dbt_server.py); without it zi-dbt starts dbt."""
    from dagster_zi.dbt import target_folder
    from zi_warehouse import config

    target = target_folder()
    if target is None:  # a target folder set by the caller (tests) or none writable: never the repository's
        return None
    path = dbt_server.socket_path(home)
    try:
        thread = dbt_server.serve(path, config.paths().data_dir, config.REPO_ROOT, target)
    except Exception:
        log.exception("dbt-Server nicht gestartet; dbt startet je Befehl selbst")
        return None
    # Runs are forked from this process: not while the parse thread may be inside an import, whose lock the
    # child would inherit held and wait on for ever (a run launched during a restart hung that way).
    thread.ready.wait(DBT_PARSE_WAIT_SECONDS)
    os.environ[dbt_server.SOCKET_ENV] = str(path)  # the forked runs and their zi-dbt processes inherit it
    return path


def _output_to_file(path: Path) -> None:
    """In the forked child: what the run prints goes to ``path`` (standard output and error, also of the
    processes it starts, such as dbt)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # Dagster's console logger prints the run's events; the worker's journal handler on the root logger would
    # print every line of Dagster's Python loggers (dagster-dbt's) a second time. Warnings still reach the file
    # through Python's last-resort handler.
    logging.getLogger().handlers.clear()


def _execute_in_child(run_id: str) -> int:
    """In the forked child: execute the run as Dagster's own run worker does (``dagster api execute_run``)."""
    from dagster import DagsterInstance
    from dagster._cli.api import _execute_run_command_body

    with DagsterInstance.get() as instance:
        return _execute_run_command_body(
            run_id, instance, write_stream_fn=lambda _event: None, set_exit_code_on_failure=False
        )


class RunWorker:
    """Forks one child per run from a warm process; restarts itself when the code changes."""

    def __init__(self, path: Path):
        self.path = path
        self.fingerprint = code_fingerprint()
        self.children: dict[str, int] = {}  # run id -> pid
        self.guard = threading.Lock()
        self.restart = threading.Event()
        self.server: socketserver.BaseServer | None = None  # closed in each child

    def handle(self, request: dict) -> dict:
        op = request.get("op")
        if op == "ping":
            return {"ok": True, "pid": os.getpid()}
        if op == "launch":
            if self.restart.is_set() or code_fingerprint() != self.fingerprint:
                self.restart.set()
                return WARMING_UP
            return self.launch(str(request["run_id"]))
        if op == "terminate":
            with self.guard:
                pid = self.children.get(str(request.get("run_id")))
            if pid is None:
                return {"ok": False, "error": "Lauf nicht in diesem Run-Worker"}
            os.kill(pid, signal.SIGINT)  # Dagster's run worker stops at the next step boundary and reports it
            return {"ok": True, "pid": pid}
        return {"ok": False, "error": f"unbekannte Anfrage {op!r}"}

    def launch(self, run_id: str) -> dict:
        pid = os.fork()
        if pid == 0:  # the child: never returns into the server loop
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.setsid()  # its own process group: a Ctrl-C on `zi serve` does not cut a build in half
                if self.server is not None:
                    self.server.socket.close()
                _output_to_file(run_output_path(run_id))
                code = _execute_in_child(run_id)
                wait_for_closing()  # os._exit would cut off the report's Chromium closing and leave its profile
            except BaseException:
                logging.getLogger("zi.run_worker").exception("Lauf %s: Run-Worker-Prozess gescheitert", run_id)
            finally:
                os._exit(code)
        with self.guard:
            self.children[run_id] = pid
        log.info("Lauf %s gestartet (Prozess %s; Ausgabe: %s)", run_id, pid, run_output_path(run_id))
        return {"ok": True, "pid": pid}

    def say_which_runs_continue(self) -> None:
        """When the worker stops: the runs it started go on to their end in processes of their own (a stop of the
        deployment does not cut a build in half), and whoever stopped it should know they are still running."""
        self.reap()
        with self.guard:
            running = dict(self.children)
        for run_id, pid in sorted(running.items()):
            log.warning(
                "Lauf %s läuft weiter bis zu seinem Ende (Prozess %s; Ausgabe: %s); gelingt er, veröffentlicht er",
                run_id,
                pid,
                run_output_path(run_id),
            )

    def reap(self) -> None:
        """Collect finished children (any: after a restart, the new image inherits the old one's)."""
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            with self.guard:
                for run_id, child in list(self.children.items()):
                    if child == pid:
                        del self.children[run_id]
                        log.info("Lauf %s beendet (Prozess %s)", run_id, pid)


def serve(path: Path | None = None) -> None:
    """``zi run-worker``: import once, then fork a child per run until stopped (SIGTERM/SIGINT)."""
    # Libraries log a lot at INFO while importing (GX, alembic); the runs' own logs go to the event log.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    path = path or socket_path()
    # The environment to restart with: warming up sets variables for this process (DBT_TARGET_PATH, the dbt
    # server's socket), and a restarted worker that inherited them would take them for a caller's settings.
    environment = dict(os.environ)
    started = time.perf_counter()
    ready: dict[str, RunWorker] = {}  # the worker, once warm: until then every request is answered WARMING_UP

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            try:
                request = json.loads(self.rfile.readline() or b"{}")
                worker = ready.get("worker")
                reply = worker.handle(request) if worker is not None else WARMING_UP
            except Exception as exc:  # noqa: BLE001 - answer the launcher, keep serving
                reply = {"ok": False, "error": str(exc)}
            self.wfile.write(json.dumps(reply).encode() + b"\n")

    # Listen before warming up, so that a launch in the meantime waits for this worker instead of falling back.
    if path.exists():
        path.unlink()
    server = socketserver.UnixStreamServer(str(path), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    try:
        warm_up()
        worker = RunWorker(path)
        worker.server = server
        dbt_socket = _start_dbt_server(path.parent)
    except BaseException:
        server.shutdown()
        server.server_close()
        path.unlink(missing_ok=True)  # a dead worker's socket would keep launches waiting for a minute
        raise
    ready["worker"] = worker  # forks only from here on: no import is half done in another thread
    log.info("vorgeladen in %s; wartet auf Läufe an %s", format_number(time.perf_counter() - started, 1, "s"), path)
    stop = threading.Event()  # while warming up, a stop signal ends the process at once (the default)

    def on_signal(_signum, _frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not stop.is_set() and not worker.restart.is_set():
            worker.reap()
            stop.wait(0.5)
    finally:
        server.shutdown()
        server.server_close()
    if worker.restart.is_set() and not stop.is_set():
        log.info("Code geändert: Run-Worker startet neu (laufende Läufe laufen weiter)")
        dbt_server.release_multiprocessing()  # the new image would not, and the journal would report a leak
        os.execve(sys.executable, [sys.executable, "-m", "dagster_zi.run_worker"], environment)
    worker.say_which_runs_continue()
    path.unlink(missing_ok=True)
    if dbt_socket is not None:
        dbt_socket.unlink(missing_ok=True)


if __name__ == "__main__":
    serve()
