"""The landing sensor: a delivery dropped into ``landing/`` is built and published with no one starting anything.

What belongs here: the one sensor that watches every family's landing folder. Every few seconds it
fingerprints the folders (content hashes only of files whose size or time changed); when files of some
families are new, changed or removed, and the last successful build did not already start from them, it
requests a run of ``build_warehouse`` for those families' assets and everything downstream (ingest,
feedback workbooks, dbt, checks, publish, reports) — or the whole job when there is no successful build to
start from or the code changed. A touched but unchanged file is not a delivery. The run key is the landing
state, so one state is built once (a failed build is not retried in a loop; the alert says what failed).

Funding extracts, DWD archives, tree registers and surface files dropped into their folders are picked up
the same way as workbooks; the funding database channel is read by the daily schedule.
"""

from __future__ import annotations

import hashlib
import json

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from dagster_zi.constants import BUILD_JOB, FAMILIES_TAG, LAUNCHED_BY_TAG
from zi_warehouse import build_state, config
from zi_warehouse.landing import changed_files, fingerprint

SENSOR_NAME = "landing_sensor"
#: Minimum seconds between looks at the landing folders. Dagster's sensor daemon evaluates sensors every 5 s
#: (a fixed loop) and skips a sensor whose last tick began less than its minimum ago: with a minimum of 5 s a
#: tick that began a little late made the next loop skip, so a delivery waited up to 10 s. Below the loop's
#: period, the sensor looks on every loop.
INTERVAL_SECONDS = 1


def evaluate(paths: config.Paths, cursor: dict) -> tuple[build_state.Decision, dict]:
    """The build the landing folders call for, and the new cursor ({family: fingerprint})."""
    current = {
        family: fingerprint(paths.landing_for(family), cursor.get(family, {})) for family in config.SOURCE_FAMILIES
    }
    if not cursor:  # first look (or a reset cursor): the last build's record says what is new
        content_changed = list(config.SOURCE_FAMILIES)
    else:
        content_changed = [f for f in config.SOURCE_FAMILIES if changed_files(cursor.get(f, {}), current[f])]
    return build_state.landing_decision(paths, content_changed), current


def run_key(current: dict) -> str:
    """The landing state (content hashes of every file): one run per state."""
    state = {family: {path: entry[2] for path, entry in files.items()} for family, files in current.items()}
    return "landing-" + hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:20]


@sensor(
    name=SENSOR_NAME,
    job_name=BUILD_JOB,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Neue, geänderte oder entfernte Dateien in landing/<Quelle>/ (Prognosen, Förderdaten-Extrakte, "
        "DWD-Archive, Bäume, Flächen): baut diese Quellen und alles Nachgelagerte bis zur Veröffentlichung."
    ),
)
def landing_sensor(context: SensorEvaluationContext):
    from dagster_zi.definitions import defs, family_selection

    paths = config.paths()
    cursor = json.loads(context.cursor) if context.cursor else {}
    decision, current = evaluate(paths, cursor)
    context.update_cursor(json.dumps(current, sort_keys=True))
    if decision.mode == "skip":
        return SkipReason(decision.reason)
    tags = {LAUNCHED_BY_TAG: f"Sensor {SENSOR_NAME} ({decision.reason})"[:200]}
    selection = None
    if decision.mode == "families":
        tags[FAMILIES_TAG] = ",".join(decision.families)
        selection = sorted(family_selection(decision.families).resolve(defs.resolve_asset_graph()))
    return RunRequest(run_key=run_key(current), asset_selection=selection, tags=tags)


sensors = [landing_sensor]
