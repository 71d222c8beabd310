"""The deployment's Dagster daemon: Dagster's own ``dagster-daemon``, with a shorter sensor loop.

What belongs here: the daemon's entry point (``python -m dagster_zi.daemon run -w workspace.yaml``, the same
arguments as ``dagster-daemon``), started by ``zi serve`` (``dagster_zi/deployment.py``) and by
``deploy/systemd/zi-daemon.service``, and what it changes: the sensor loop, the sensor daemon's two lines per
sensor and loop, and one daemon per instance (a second one is refused, ``claim_the_instance``).

Why: Dagster's sensor daemon looks at the sensors in a fixed loop of 5 s (``MIN_INTERVAL_LOOP_TIME`` of
``dagster._daemon.sensor``; dagster.yaml has no setting for it), so a workbook dropped into ``landing/`` waited
0-5 s, 2.5 s on average, before the landing sensor even saw it — half of the 5 s the coordinator's feedback
may take (issue 20). Here the loop takes ``SENSOR_LOOP_SECONDS``. Every sensor still keeps its own minimum
interval (alerts 30 s); the landing sensor's (1 s) stays below the loop's period, so it looks on every loop.
The price is one loop every 2 s instead of 5 s: a few reads of the instance and the landing sensor's look at
the folders (sizes and times; 0.01-0.09 s at scale 1). Measured in docs/performance.md (fix 21).

Dagster's daemon also replaces its code server every minute (``RELOAD_WORKSPACE_INTERVAL`` of
``dagster._daemon.controller``): it drops the server and starts a new one, which imports the definitions again
(about 4 s of CPU; while it loads, no sensor is evaluated). The code does not change from one minute to the
next, so here the workspace is reloaded only when the code changed (the run worker's fingerprint), when the
code server's process has ended, or after ``CODE_SERVER_MAX_AGE_SECONDS`` in any case.

At that loop, the sensor daemon's routine lines ("Checking for new runs for sensor: …", "No run requests returned
for …, skipping") would be four lines every 2 s, about 170,000 a day in the journal, burying the lines that
matter (a launched run, a skipped tick with its reason, an error). They are left out (``QuietSensorTicks``);
everything else the daemon logs is kept.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import socket
import sys
import time

import dagster._daemon.controller as dagster_daemon_controller
import dagster._daemon.sensor as dagster_sensor_daemon

from zi_warehouse.build_state import BUILD_IN_PROGRESS, NOTHING_DELIVERED, NOTHING_LANDED

#: Dagster's skip message of a sensor that found nothing (the failure-alert sensor every 30 s on a good day).
EMPTY_RESULT = "Sensor function returned an empty result"

#: Seconds per loop of the sensor daemon (Dagster's default: 5).
SENSOR_LOOP_SECONDS = 2


def shorten_sensor_loop() -> None:
    """Set the sensor daemon's loop; fail loudly if Dagster no longer has the setting this relies on."""
    if not isinstance(getattr(dagster_sensor_daemon, "MIN_INTERVAL_LOOP_TIME", None), int | float):
        raise RuntimeError(
            "dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME fehlt in dieser Dagster-Version: "
            "dagster_zi/daemon.py an die neue Version anpassen."
        )
    dagster_sensor_daemon.MIN_INTERVAL_LOOP_TIME = SENSOR_LOOP_SECONDS


#: The daemon's code server is replaced after this long even when the code did not change (Dagster: 60 s).
CODE_SERVER_MAX_AGE_SECONDS = 3600


def reload_code_only_when_changed() -> None:
    """Let the daemon keep its code server while the code is unchanged (see the module docstring); fail loudly if
    Dagster no longer has the method this wraps."""
    from dagster_zi.run_worker import code_fingerprint

    controller = getattr(dagster_daemon_controller, "DagsterDaemonController", None)
    interval = getattr(dagster_daemon_controller, "RELOAD_WORKSPACE_INTERVAL", None)
    if controller is None or not hasattr(controller, "check_workspace_freshness") or not isinstance(interval, int):
        raise RuntimeError(
            "dagster._daemon.controller.DagsterDaemonController.check_workspace_freshness fehlt in dieser "
            "Dagster-Version: dagster_zi/daemon.py an die neue Version anpassen."
        )
    reload_workspace = controller.check_workspace_freshness
    loaded = {"fingerprint": code_fingerprint(), "at": time.time()}

    def check_workspace_freshness(self, last_workspace_update_time: float) -> float:
        now = time.time()
        if now - last_workspace_update_time <= dagster_daemon_controller.RELOAD_WORKSPACE_INTERVAL:
            return last_workspace_update_time
        fingerprint = code_fingerprint()
        if (
            fingerprint == loaded["fingerprint"]
            and now - loaded["at"] < CODE_SERVER_MAX_AGE_SECONDS
            and not _code_server_ended(self)
        ):
            return now  # looked at: still fresh
        loaded.update(fingerprint=fingerprint, at=now)
        return reload_workspace(self, 0.0)  # Dagster's own reload (0: due now)

    controller.check_workspace_freshness = check_workspace_freshness


def _code_server_ended(controller) -> bool:
    """Whether the daemon's code server has ended (killed, crashed) or failed to load (an entry without a
    process): then it is replaced at once, as Dagster would within a minute."""
    registry = getattr(controller, "_grpc_server_registry", None)
    entries = getattr(registry, "_active_entries", None)
    if not entries:
        return True  # no server yet, or Dagster's layout changed: let Dagster reload as it would
    for entry in entries.values():
        process = getattr(getattr(entry, "process", None), "server_process", None)
        if process is None or process.poll() is not None:
            return True
    return False


class QuietSensorTicks(logging.Filter):
    """Drops the sensor daemon's routine lines of every tick that finds nothing to do (its own two, and the
    landing sensor's skip when no file came, on a data directory still waiting for its first files, or while a
    build runs; a sensor's empty result, e.g. the failure
    alert's when no run failed) and a run-status sensor's first tick on a new instance ("Initiating …. Set
    cursor to …"); skips for any other reason stay in the log."""

    ROUTINE = re.compile(
        r"^(Checking for new runs for sensor: |No run requests returned for .+, skipping$"
        rf"|Sensor \S+ skipped: ({re.escape(NOTHING_LANDED)}|{re.escape(NOTHING_DELIVERED)}|{re.escape(BUILD_IN_PROGRESS)}"
        rf"|{re.escape(EMPTY_RESULT)}"
        r"|Initiating \S+\. Set cursor to .+)$)"
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.ROUTINE.match(record.getMessage())


#: The logger Dagster's sensor daemon writes to (``dagster._daemon.daemon.get_default_daemon_logger``).
SENSOR_DAEMON_LOGGER = "dagster.daemon.SensorDaemon"


#: One daemon per Dagster instance: a second one would run the sensors and the schedule again and launch every
#: delivery's runs twice (Dagster itself only logs "Another SENSOR daemon is still sending heartbeats").
DAEMON_LOCK_FILE = "daemon.lock"


def claim_the_instance() -> int:
    """Hold the instance's daemon lock for this process's life (an flock: the kernel releases it when the process
    ends, also after a crash, so a restart is never refused); exit with a German message if another daemon holds
    it. The descriptor is returned and must stay open."""
    from zi_warehouse import config

    home = config.paths().dagster_home
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / DAEMON_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 200, 0).decode("utf-8", errors="replace").strip() or "unbekannt"
        sys.exit(
            f"Nicht gestartet: auf dieser Dagster-Instanz ({home}) läuft schon ein Daemon (Prozess {other}). "
            "Ein zweiter würde jede Lieferung doppelt bauen."
        )
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} auf {socket.gethostname()}".encode(), 0)
    return fd


def main() -> None:
    claim_the_instance()  # before Dagster's daemon loads anything: a second daemon is refused at once
    shorten_sensor_loop()
    reload_code_only_when_changed()
    logging.getLogger(SENSOR_DAEMON_LOGGER).addFilter(QuietSensorTicks())
    from dagster._daemon.cli import main as dagster_daemon_main

    sys.exit(dagster_daemon_main())


if __name__ == "__main__":
    main()
