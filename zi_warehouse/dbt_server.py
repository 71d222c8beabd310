"""dbt started in milliseconds: a process that has imported dbt and parsed the project forks one child per command.

What belongs here: the fork server the run worker keeps (``serve``) and the client side ``zi-dbt`` uses
(``run_via_server``). No Dagster imports.

Why: every dbt command started as a new process imports dbt (2-4 s here) and loads the project (partial parse,
1-3 s) before its first node; a build has two dbt commands, a workbook dropped into the landing folder waits
for both. The run worker (``dagster_zi/run_worker.py``) imports dbt and parses the project once; for each
command ``zi-dbt`` sends its arguments, environment and working folder over a Unix socket, and a forked child
of the warm process runs ``dbtRunner(manifest=<parsed>).invoke(arguments)`` with its output written to the
socket, which ``zi-dbt`` passes on as its own output and exit code. dagster-dbt sees an ordinary dbt process.
A fork isolates each command as a process would (environment, working folder, dbt's global state).

The parsed project must be the current one: the run worker restarts when the code or the dbt project
changes (its fingerprint covers both), and ``zi-dbt`` runs dbt itself whenever no server answers.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import socket
import socketserver
import sys
import threading
from pathlib import Path
from typing import Any

SOCKET_NAME = "dbt-server.sock"
#: Where ``zi-dbt`` finds the server (set by the run worker for the runs it starts).
SOCKET_ENV = "ZI_DBT_SERVER"
#: The last line of a command's output on the socket: its exit code (never shown to dagster-dbt).
EXIT_MARK = b"\x00zi-dbt-exit "


def _dbt_environment(data_dir: Path, repo_root: Path) -> dict[str, str]:
    """The settings ``zi-dbt`` runs dbt with (see zi_warehouse/dbt_launcher.py): same profile everywhere."""
    return {
        "ZI_DATA_DIR": str(data_dir),
        "ZI_DBT_DATABASE": "zi.duckdb",
        "DBT_PROJECT_DIR": str(repo_root),
        "DBT_PROFILES_DIR": str(repo_root / "dbt_project"),
    }


#: What a ``dbt build`` imports at its start and ``parse`` does not: imported once by the server, not by every
#: command's child (0.1-0.18 s per command, measured in docs/performance.md, fix 30).
COMMAND_MODULES = (
    "dbt.task.build",
    "dbt_common.clients.agate_helper",
    "sqlparse",
    "babel.dates",
    "daff",
    "multiprocessing.dummy",
)


def _close_the_warehouse() -> None:
    """Close dbt-duckdb's database as its exit handler would; the child ends with ``os._exit``, which skips it.

    Left open, DuckDB keeps the command's writes in the write-ahead log (``zi.duckdb.wal``, ~9 MB after one
    workbook's dbt), and every process that opens the file next replays it first (read-only ones each time)."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # another adapter: nothing of ours to close
        return
    DuckDBConnectionManager.close_all_connections()


class DbtForkServer:
    """Holds the parsed dbt project of one data directory and runs each command in a forked child."""

    def __init__(self, data_dir: Path, repo_root: Path, target: Path):
        from dbt.cli.main import dbtRunner

        self.warehouse_dir = data_dir / "warehouse"
        self.warehouse_dir.mkdir(parents=True, exist_ok=True)
        settings = _dbt_environment(data_dir, repo_root)
        saved = {key: os.environ.get(key) for key in settings}
        previous = os.getcwd()
        os.environ.update(settings)
        os.chdir(self.warehouse_dir)  # the profile's relative database path, as zi-dbt has it
        try:
            result = dbtRunner().invoke(["parse", "--quiet", "--target-path", str(target)])
        finally:
            os.chdir(previous)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        if not result.success or result.result is None:
            raise RuntimeError(f"dbt parse gescheitert: {result.exception}")
        self.manifest = result.result
        for module in COMMAND_MODULES:
            try:
                importlib.import_module(module)
            except ImportError:  # another dbt version: its commands import what they need themselves
                pass

    def run(self, request: dict[str, Any]) -> int:
        """In the command's child: dbt with the parsed project; its exit code."""
        from dbt.cli.main import dbtRunner

        result = dbtRunner(manifest=self.manifest).invoke(list(request["args"]))
        _close_the_warehouse()
        return 0 if result.success else (2 if result.exception is not None else 1)

    def run_child(self, conn: socket.socket, request: dict[str, Any]) -> int:
        """Fork a child that runs the command with its output on ``conn``; the child's pid."""
        pid = os.fork()
        if pid:
            return pid
        code = 2
        try:
            os.setsid()
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            fd = conn.fileno()
            for stream in {sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__}:
                stream.flush()
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            # dbt prints through sys.stdout: the process streams on fd 1 and 2, now the connection, whatever
            # the forking process had put in their place (``zi build`` keeps the steps' output in a file).
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
            _follow_the_caller(conn)
            os.environ.clear()
            os.environ.update(request["env"])
            os.chdir(request["cwd"])
            code = self.run(request)
        except BaseException as exc:  # noqa: BLE001 - reported on the stream, the child must exit
            try:
                sys.stdout.write(f"zi-dbt: dbt im Server gescheitert: {exc!r}\n")
            except Exception:  # noqa: BLE001
                pass
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
                os.write(1, EXIT_MARK + str(code).encode() + b"\n")
            finally:
                _exit(code)


def _follow_the_caller(conn: socket.socket) -> None:
    """In a command's child: the command belongs to its caller (``zi-dbt`` in a run), not to the server.

    "stop" from the caller interrupts dbt as Ctrl-C would (dagster-dbt stops dbt with SIGINT); the caller's end
    (a killed build: its socket closes) ends the command and whatever it started at once, so it does not go
    on writing the warehouse while the next build starts. The server's end changes nothing: a run worker
    restarted for new code, or stopped with its service, leaves the running build's dbt command running.
    """

    def watch() -> None:
        while True:
            try:
                message = conn.recv(16)
            except OSError:
                message = b""
            if not message:
                os.killpg(os.getpid(), signal.SIGKILL)
                return
            if b"stop" in message:
                os.killpg(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True, name="zi-dbt-caller").start()


def socket_path(dagster_home: Path) -> Path:
    return dagster_home / SOCKET_NAME


#: Sent instead of an exit code when the server could not parse the project: zi-dbt runs dbt itself.
FALLBACK = b"fallback"


def serve(path: Path, data_dir: Path, repo_root: Path, target: Path) -> threading.Thread:
    """Answer ``zi-dbt`` on ``path`` from a background thread; the project is parsed in the background too,
    and commands arriving before it is ready wait for it."""
    state: dict[str, Any] = {}
    ready = threading.Event()

    def prepare() -> None:
        try:
            state["server"] = DbtForkServer(data_dir, repo_root, target)
        except Exception as exc:  # noqa: BLE001 - commands fall back to starting dbt themselves
            state["error"] = exc
        finally:
            ready.set()

    threading.Thread(target=prepare, daemon=True, name="dbt-parse").start()
    children: dict[int, int] = {}  # child pid -> 1 (reaped by the run worker's wait loop)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            request = json.loads(self.rfile.readline() or b"{}")
            ready.wait()
            if "server" not in state:
                self.wfile.write(EXIT_MARK + FALLBACK + b"\n")
                return
            pid = state["server"].run_child(self.connection, request)
            children[pid] = 1
            # The child writes the output and follows its caller (``_follow_the_caller``); wait here so the
            # connection stays open until the child has ended (and with it its hold on the warehouse file),
            # woken by its end through a pidfd. No settimeout on the connection: it would make the socket
            # non-blocking for the child too (one open file shared across the fork), and the child's writes
            # would then fail with EAGAIN whenever the reader falls behind.
            try:
                ended = os.pidfd_open(pid)
            except ProcessLookupError:  # already ended and reaped
                children.pop(pid, None)
                return
            try:
                select.select([ended], [], [])
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:  # reaped by the owner's wait loop
                    pass
            finally:
                os.close(ended)
            children.pop(pid, None)

    if path.exists():
        path.unlink()
    server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True, name="dbt-fork-server"
    )
    thread.start()
    thread.server = server  # type: ignore[attr-defined] - closed by the owner on shutdown
    thread.children = children  # type: ignore[attr-defined] - the commands running now (stopped on shutdown)
    thread.ready = ready  # type: ignore[attr-defined] - set once the project is parsed (or parsing failed)
    return thread


def stop_child(pid: int) -> None:
    """End a command's child and whatever it started (its own process group, see ``run_child``) at once."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        try:
            os.kill(pid, signal.SIGKILL)  # not (yet) a group of its own
        except ProcessLookupError:
            pass


def run_via_server(args: list[str], env: dict[str, str], cwd: str) -> int | None:
    """Run a dbt command in the server named by ``ZI_DBT_SERVER``; its exit code, or None without a server."""
    path = os.environ.get(SOCKET_ENV)
    if not path or not Path(path).exists():
        return None
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
    except OSError:
        return None
    with sock:
        sock.sendall(json.dumps({"args": args, "env": env, "cwd": cwd}).encode() + b"\n")
        out = sys.stdout.buffer
        pending = b""
        code = 2
        previous = signal.getsignal(signal.SIGINT)

        def forward_stop(_signum, _frame) -> None:  # dagster-dbt interrupts dbt with SIGINT
            try:
                sock.sendall(b"stop")
            except OSError:
                pass

        signal.signal(signal.SIGINT, forward_stop)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                pending += chunk
                lines = pending.split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if line.startswith(EXIT_MARK):
                        value = line[len(EXIT_MARK) :]
                        if value == FALLBACK:
                            return None
                        code = int(value or 2)
                    else:
                        out.write(line + b"\n")
                out.flush()
        finally:
            signal.signal(signal.SIGINT, previous)
        if pending and not pending.startswith(EXIT_MARK):
            out.write(pending)
            out.flush()
        return code


def serve_for_this_process(data_dir: Path, repo_root: Path, target: Path) -> tuple[int, Path]:
    """A fork server in a child of this process, for one ``zi build``: it imports dbt and parses the project
    while this process imports Dagster and reads the landing files (two cores, two things at once), and ends
    with this process. Returns the child's pid and the socket; set ``ZI_DBT_SERVER`` to it."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="zi-dbt-")) / SOCKET_NAME
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid, path
    code = 0
    try:
        os.setsid()
        from zi_warehouse import writer_lock

        writer_lock.forget_in_child()
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
        thread = serve(path, data_dir, repo_root, target)
        while os.getppid() == parent and not stopping.is_set():  # ends with the build that started it
            try:
                os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pass
            stopping.wait(0.5)
        thread.server.shutdown()  # type: ignore[attr-defined]
        for pid in list(thread.children):  # type: ignore[attr-defined] - the build is gone: so are its commands
            stop_child(pid)
    except BaseException:  # noqa: BLE001 - the build's dbt commands fall back to starting dbt themselves
        code = 1
    finally:
        _exit(code)


def _exit(code: int) -> None:
    """End a forked process without the parent's exit handlers, but with :func:`release_multiprocessing`."""
    try:
        release_multiprocessing()
    finally:
        os._exit(code)


def release_multiprocessing() -> None:
    """Release what dbt allocated through multiprocessing (named semaphores) before this process image ends
    without its exit handlers (``os._exit``, ``os.execve``): otherwise Python's resource tracker reports them as
    leaked ("There appear to be 2 leaked semaphore objects") and removes them itself."""
    import multiprocessing.util

    multiprocessing.util._exit_function()


def stop(pid: int, path: Path) -> None:
    """End a server started by ``serve_for_this_process`` and remove its socket."""
    try:
        os.kill(pid, signal.SIGTERM)  # it stops serving and exits (within half a second)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass
