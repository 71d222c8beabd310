"""The dbt fork server passes a command's whole output on, however slowly ``zi-dbt`` reads it.

The parsed dbt project is replaced by a stand-in whose child writes a few megabytes (more than a socket
buffer holds) straight to the connection, as dbt's log lines do; the handler, the socket and the client are
the real ones.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from zi_warehouse import dbt_server

LINES = 3000
LINE = b"x" * 999 + b"\n"


class StandInChild(dbt_server.DbtForkServer):
    """Stands in for the parsed dbt project: the forked child (the real one) writes ``output`` to the connection
    instead of running dbt; the exit mark after it is the real child's."""

    def __init__(self, *_args) -> None:
        pass

    def output(self, fd: int) -> None:
        raise NotImplementedError

    def run(self, _request: dict) -> int:
        try:
            self.output(1)  # the connection, in the child
        except OSError:
            return 3  # e.g. EAGAIN: the output the caller needed is lost
        return 0


class ChattyChild(StandInChild):
    """Writes LINES lines."""

    def output(self, fd: int) -> None:
        for _ in range(LINES):
            os.write(fd, LINE)


def test_a_slow_reader_gets_every_line_and_the_exit_code(tmp_path, monkeypatch):
    monkeypatch.setattr(dbt_server, "DbtForkServer", ChattyChild)
    path = tmp_path / dbt_server.SOCKET_NAME
    thread = dbt_server.serve(path, tmp_path, tmp_path, tmp_path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(path))
            sock.sendall(json.dumps({"args": [], "env": {}, "cwd": str(tmp_path)}).encode() + b"\n")
            time.sleep(1.5)  # the reader falls behind: the socket buffer fills while the handler waits
            received = bytearray()
            while chunk := sock.recv(1 << 16):
                received += chunk
    finally:
        thread.server.shutdown()
        thread.server.server_close()
    assert received.count(LINE) == LINES
    assert received.endswith(dbt_server.EXIT_MARK + b"0\n")


class QuickChild(StandInChild):
    """Writes its pid and ends."""

    def output(self, fd: int) -> None:
        os.write(fd, str(os.getpid()).encode() + b"\n")


def _ended(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")  # ended, not yet reaped
    except FileNotFoundError:
        return True


def test_the_connection_ends_when_the_child_ends_not_at_the_next_poll(tmp_path, monkeypatch):
    """zi-dbt returns when the stream ends; the handler ends it as soon as the child has ended (and has let go
    of the warehouse file), woken by the child's end rather than by its polling interval."""
    monkeypatch.setattr(dbt_server, "DbtForkServer", QuickChild)
    path = tmp_path / dbt_server.SOCKET_NAME
    thread = dbt_server.serve(path, tmp_path, tmp_path, tmp_path)
    received = bytearray()

    def client() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(path))
            sock.sendall(json.dumps({"args": [], "env": {}, "cwd": str(tmp_path)}).encode() + b"\n")
            while chunk := sock.recv(1 << 16):
                received.extend(chunk)

    reader = threading.Thread(target=client, daemon=True)
    try:
        reader.start()
        reader.join(60)
        assert not reader.is_alive(), "the stream stayed open after the child had ended"
    finally:
        thread.server.shutdown()
        thread.server.server_close()
    pid = int(bytes(received).split(b"\n")[0])
    assert _ended(pid)
    assert received.endswith(dbt_server.EXIT_MARK + b"0\n")


class LingeringChild(StandInChild):
    """Writes its pid, then works on for a minute (as dbt does, whether anyone still reads its output or not)."""

    def output(self, fd: int) -> None:
        os.write(fd, str(os.getpid()).encode() + b"\n")
        time.sleep(60)


def test_a_command_whose_caller_is_gone_is_stopped(tmp_path, monkeypatch):
    """A killed build takes its zi-dbt with it; the command's child must not go on writing the warehouse (the
    next build would find it locked: tests/test_reliability_crash.py saw exactly that)."""
    monkeypatch.setattr(dbt_server, "DbtForkServer", LingeringChild)
    path = tmp_path / dbt_server.SOCKET_NAME
    thread = dbt_server.serve(path, tmp_path, tmp_path, tmp_path)
    # The caller in a process of its own, as zi-dbt is (in this process the forked child would inherit the
    # caller's end of the socket and keep it open): it reads the first line and ends.
    caller = (
        "import json, socket, sys\n"
        "sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "sock.connect(sys.argv[1])\n"
        "sock.sendall(json.dumps({'args': [], 'env': {}, 'cwd': sys.argv[2]}).encode() + b'\\n')\n"
        "print(int(sock.makefile('rb').readline()))\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", caller, str(path), str(tmp_path)], capture_output=True, text=True, timeout=60
        )
        pid = int(done.stdout)
        # the caller is gone (its socket closed, as when zi-dbt is killed)
        deadline = time.monotonic() + 10
        while not _ended(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ended(pid), "the command went on after its caller had gone"
    finally:
        thread.server.shutdown()
        thread.server.server_close()


#: A server in a process of its own, as the run worker is: its stand-in child writes its pid, works for a few
#: seconds, then writes "fertig".
SERVER_SCRIPT = """
import os, sys, time
from pathlib import Path
from zi_warehouse import dbt_server

class Working(dbt_server.DbtForkServer):
    def __init__(self, *_args):
        pass

    def run(self, _request):
        os.write(1, str(os.getpid()).encode() + b"\\n")
        time.sleep(3)
        os.write(1, b"fertig\\n")
        return 0

dbt_server.DbtForkServer = Working
folder = Path(sys.argv[1])
dbt_server.serve(folder / dbt_server.SOCKET_NAME, folder, folder, folder)
time.sleep(600)
"""


def test_a_command_goes_on_when_the_server_ends(tmp_path):
    """A run worker restarted for new code, or stopped with its service (systemd signals only the supervisor),
    must not cut a running build's dbt command: the command belongs to its caller, not to the server."""
    server = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, str(tmp_path)])
    path = tmp_path / dbt_server.SOCKET_NAME
    try:
        deadline = time.monotonic() + 30
        while not path.exists():
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.05)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(path))
            sock.sendall(json.dumps({"args": [], "env": {}, "cwd": str(tmp_path)}).encode() + b"\n")
            stream = sock.makefile("rb")
            pid = int(stream.readline())
            server.kill()  # the server's end, however it ends
            server.wait()
            rest = stream.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert rest == b"fertig\n" + dbt_server.EXIT_MARK + b"0\n", rest
    assert _ended(pid)


_ONE_COMMAND = r"""
import json, os, sys
from pathlib import Path
from zi_warehouse import dbt_server
data_dir, repo_root, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
server = dbt_server.DbtForkServer(data_dir, repo_root, data_dir / "warehouse" / "dbt_target")
os.environ.update(dbt_server._dbt_environment(data_dir, repo_root))
os.chdir(data_dir / "warehouse")
pid = os.fork()
if pid == 0:  # a command's child, as run_child forks it
    before = set(sys.modules)
    code = server.run({"args": ["build", "--select", "stg_quality__data_quality_results", "--quiet",
                                "--target-path", str(out / "target"), "--log-path", str(out / "target")]})
    imported = sorted(m for m in set(sys.modules) - before if m.startswith(("dbt.task", "sqlparse", "daff")))
    (out / "child.json").write_text(json.dumps({"code": code, "imported": imported}))
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_a_command_imports_nothing_the_server_could_have_and_leaves_the_warehouse_closed(demo_build, tmp_path):
    """A command's child runs dbt with what the server imported once (``COMMAND_MODULES``), and closes DuckDB
    before it ends: a write-ahead log left behind would be replayed by every process that opens the file next."""
    from conftest import REPO_ROOT, copy_built_data_dir

    data_dir = copy_built_data_dir(demo_build["data_dir"], tmp_path / "data")
    wal = data_dir / "warehouse" / "zi.duckdb.wal"
    assert not wal.exists()
    subprocess.run(
        [sys.executable, "-c", _ONE_COMMAND, str(data_dir), str(REPO_ROOT), str(tmp_path)],
        check=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    child = json.loads((tmp_path / "child.json").read_text())
    assert child["code"] == 0, (tmp_path / "target" / "dbt.log").read_text()[-3000:]
    assert child["imported"] == [], child["imported"]
    assert not wal.exists(), f"the command left {wal.stat().st_size} bytes of write-ahead log"
