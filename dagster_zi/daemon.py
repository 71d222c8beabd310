"""The deployment's Dagster daemon: Dagster's own ``dagster-daemon``, with a shorter sensor loop.

What belongs here: the daemon's entry point (``python -m dagster_zi.daemon run -w workspace.yaml``, the same
arguments as ``dagster-daemon``), started by ``zi serve`` (``dagster_zi/deployment.py``) and by
``deploy/systemd/zi-daemon.service``, and the two things it changes: the sensor loop, and the sensor daemon's
two lines per sensor and loop.

Why: Dagster's sensor daemon looks at the sensors in a fixed loop of 5 s (``MIN_INTERVAL_LOOP_TIME`` of
``dagster._daemon.sensor``; dagster.yaml has no setting for it), so a workbook dropped into ``landing/`` waited
0-5 s, 2.5 s on average, before the landing sensor even saw it — half of the 5 s the coordinator's feedback
may take (issue 20). Here the loop takes ``SENSOR_LOOP_SECONDS``. Every sensor still keeps its own minimum
interval (alerts 30 s); the landing sensor's (1 s) stays below the loop's period, so it looks on every loop.
The price is one loop every 2 s instead of 5 s: a few reads of the instance and the landing sensor's look at
the folders (sizes and times; 0.01-0.09 s at scale 1). Measured in docs/performance.md (fix 21).

At that loop, the sensor daemon's routine lines ("Checking for new runs for sensor: …", "No run requests returned
for …, skipping") would be four lines every 2 s, about 170,000 a day in the journal, burying the lines that
matter (a launched run, a skipped tick with its reason, an error). They are left out (``QuietSensorTicks``);
everything else the daemon logs is kept.
"""

from __future__ import annotations

import logging
import re
import sys

import dagster._daemon.sensor as dagster_sensor_daemon

from zi_warehouse.build_state import BUILD_IN_PROGRESS, NOTHING_LANDED

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


class QuietSensorTicks(logging.Filter):
    """Drops the sensor daemon's routine lines of every tick that finds nothing to do (its own two, and the
    landing sensor's skip when no file came, or while a build runs); skips for any other reason stay in the log."""

    ROUTINE = re.compile(
        r"^(Checking for new runs for sensor: |No run requests returned for .+, skipping$"
        rf"|Sensor \S+ skipped: ({re.escape(NOTHING_LANDED)}|{re.escape(BUILD_IN_PROGRESS)})$)"
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.ROUTINE.match(record.getMessage())


#: The logger Dagster's sensor daemon writes to (``dagster._daemon.daemon.get_default_daemon_logger``).
SENSOR_DAEMON_LOGGER = "dagster.daemon.SensorDaemon"


def main() -> None:
    shorten_sensor_loop()
    logging.getLogger(SENSOR_DAEMON_LOGGER).addFilter(QuietSensorTicks())
    from dagster._daemon.cli import main as dagster_daemon_main

    sys.exit(dagster_daemon_main())


if __name__ == "__main__":
    main()
