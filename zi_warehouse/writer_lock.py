"""One build at a time per data directory, across processes: the writer lock.

What belongs here: the lock every build takes before it touches the working warehouse (``zi build``, a run
launched by the Dagster daemon or the UI), who holds it, and the German sentence that says so. No Dagster
imports: the command line checks the lock before it loads Dagster.

DuckDB allows one writing process per file and refuses a second one with a raw "Could not set lock" error.
Dagster's run queue orders the runs it launches itself; this lock makes every other way of starting a build
(a person's ``zi build`` during the scheduled run, two processes started at the same second) wait its turn.
It is an ``flock`` on ``warehouse/writer.lock``: the kernel releases it when the holder's process ends, so a
killed build never leaves a stale lock behind. The holder writes who it is into the file (run id, how the
run was started, since when, process and host) so that whoever waits can say what it waits for.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from zi_warehouse.german import format_datetime

LOCK_FILE = "writer.lock"

#: Locks this process holds, by lock file: a run executed inside ``zi build`` takes the lock the command
#: already holds (flock is per open file, so a second flock in the same process would wait for itself).
_held: dict[Path, list] = {}
_held_guard = threading.Lock()


@dataclass(frozen=True)
class Holder:
    """Who holds the lock (as the holder wrote it into the lock file)."""

    run_id: str
    launched_by: str  # German, e.g. "zi build", "Zeitplan daily_warehouse_build", "Dagster-UI"
    started_at: str  # ISO 8601, UTC
    pid: int
    host: str

    def describe_de(self) -> str:
        """One German sentence: which build runs since when."""
        try:
            started = dt.datetime.fromisoformat(self.started_at)
            minutes = max(0, int((dt.datetime.now(dt.UTC) - started).total_seconds() // 60))
            ago = f"vor {minutes} min" if minutes else "vor weniger als 1 min"
            since = f"seit {format_datetime(started, seconds=True)} ({ago})"
        except ValueError:
            since = "seit unbekannt"
        # The first 8 characters of the run id, as the Dagster UI lists runs. A `zi build` holds the lock under its
        # own name from its decision to the end of its run (the run's executor re-enters it).
        who = f"Lauf {self.run_id[:8]}, gestartet von {self.launched_by}" if self.run_id else self.launched_by
        return f"{who}, {since}, Prozess {self.pid} auf {self.host}"


class WriterBusy(Exception):
    """Another build holds the writer lock (and the caller chose not to wait, or waited in vain)."""

    def __init__(self, holder: Holder | None, waited_seconds: float):
        self.holder = holder
        self.waited_seconds = waited_seconds
        who = holder.describe_de() if holder else "ein anderer Prozess (ohne Angaben)"
        waited = f" Gewartet: {waited_seconds / 60:.0f} min." if waited_seconds >= 1 else ""
        super().__init__(f"Auf diesem Datenverzeichnis läuft bereits ein Build: {who}.{waited}")


class WarehouseNotWritable(Exception):
    """The warehouse folder cannot be written (read-only mount, missing permission): no build can run."""

    def __init__(self, warehouse_dir: Path, error: OSError):
        self.warehouse_dir = warehouse_dir
        reason = error.strerror or str(error)
        super().__init__(f"Das Warehouse-Verzeichnis {warehouse_dir} ist nicht beschreibbar ({reason}).")


def lock_path(warehouse_dir: Path) -> Path:
    return warehouse_dir / LOCK_FILE


def current_holder(warehouse_dir: Path) -> Holder | None:
    """The holder of the lock, or None when nobody holds it (read without taking it)."""
    path = lock_path(warehouse_dir)
    if not path.exists():
        return None
    with _held_guard:
        if path in _held:
            return _read_holder(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(path) or Holder("", "unbekannt", "", 0, "")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
        return Holder(**{k: data[k] for k in Holder.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextmanager
def hold(
    warehouse_dir: Path,
    run_id: str,
    launched_by: str,
    wait_seconds: float | None = None,
    on_wait: Callable[[Holder | None], None] = lambda _h: None,
    poll_seconds: float = 1.0,
) -> Iterator[Holder]:
    """Hold the writer lock of ``warehouse_dir`` for the ``with`` block.

    ``wait_seconds``: None waits as long as it takes, 0 does not wait; when the time is up ``WriterBusy``
    names the build that holds it. ``on_wait`` is called once, with the holder, when the lock is taken.
    Re-entrant within one process (the run that ``zi build`` executes takes the lock the command holds).
    """
    path = lock_path(warehouse_dir)
    with _held_guard:
        if path in _held:
            _held[path][1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield _read_holder(path)
        finally:
            with _held_guard:
                _held[path][1] -= 1
        return

    try:
        warehouse_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise WarehouseNotWritable(warehouse_dir, exc) from None
    started = time.monotonic()
    told = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                holder = _read_holder(path)
                if wait_seconds is not None and waited >= wait_seconds:
                    raise WriterBusy(holder, waited) from None
                if not told:
                    on_wait(holder)
                    told = True
                time.sleep(poll_seconds)
        me = Holder(
            run_id=run_id,
            launched_by=launched_by,
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            pid=os.getpid(),
            host=socket.gethostname(),
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me.__dict__, ensure_ascii=False).encode("utf-8"), 0)
        with _held_guard:
            _held[path] = [fd, 1]
        try:
            yield me
        finally:
            with _held_guard:
                del _held[path]
            os.ftruncate(fd, 0)  # the next reader of the file finds nobody named while nobody holds it
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def set_run_id(warehouse_dir: Path, run_id: str) -> None:
    """Name the run in the lock file once its id is known (the command line takes the lock first)."""
    path = lock_path(warehouse_dir)
    with _held_guard:
        entry = _held.get(path)
        if entry is None:
            return
        holder = _read_holder(path)
        if holder is None:
            return
        data = {**holder.__dict__, "run_id": run_id}
        os.ftruncate(entry[0], 0)
        os.pwrite(entry[0], json.dumps(data, ensure_ascii=False).encode("utf-8"), 0)


def forget_in_child() -> None:
    """In a forked child that does not build: close its copies of the lock files (the parent keeps the locks;
    without this the lock would outlive the parent as long as the child runs)."""
    with _held_guard:
        for fd, _count in _held.values():
            try:
                os.close(fd)
            except OSError:
                pass
        _held.clear()
