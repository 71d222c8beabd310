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


class StandInChild:
    """Stands in for the parsed dbt project: its forked child writes ``output`` to the connection and ends."""

    def __init__(self, *_args) -> None:
        pass

    def output(self, fd: int) -> None:
        raise NotImplementedError

    def run_child(self, conn: socket.socket, _request: dict) -> int:
        pid = os.fork()
        if pid:
            return pid
        code = 0
        try:
            self.output(conn.fileno())
        except OSError:
            code = 3  # e.g. EAGAIN: the output the caller needed is lost
        os._exit(code)


class ChattyChild(StandInChild):
    """Writes LINES lines, then the exit mark."""

    def output(self, fd: int) -> None:
        for _ in range(LINES):
            os.write(fd, LINE)
        os.write(fd, dbt_server.EXIT_MARK + b"0\n")


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
    """Writes its pid and the exit mark at once."""

    def output(self, fd: int) -> None:
        os.write(fd, str(os.getpid()).encode() + b"\n" + dbt_server.EXIT_MARK + b"0\n")


def _ended(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")  # ended, not yet reaped
    except FileNotFoundError:
        return True


def test_the_connection_ends_when_the_child_ends_not_at_the_next_poll(tmp_path, monkeypatch):
    """zi-dbt returns when the stream ends; the handler ends it as soon as the child has ended (and has let go
    of the warehouse file), woken by the child's end rather than by its polling interval."""
    monkeypatch.setattr(dbt_server, "DbtForkServer", QuickChild)
    monkeypatch.setattr(dbt_server, "POLL_SECONDS", 3600)  # only the child's end can wake the handler
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
        os.write(fd, dbt_server.EXIT_MARK + b"0\n")


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
