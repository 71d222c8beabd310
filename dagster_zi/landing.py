"""The landing sensor: a delivery dropped into ``landing/`` is built and published with no one starting anything.

What belongs here: the one sensor that watches every family's landing folder. Every few seconds it
fingerprints the folders (content hashes only of files whose size or time changed); when files of some
families are new, changed or removed, and the last successful build did not already start from them, it
requests a run of ``build_warehouse`` for those families' assets and everything downstream (ingest,
feedback workbooks, dbt, checks, publish, reports) — or the whole job when there is no successful build to
start from or the code changed. A touched but unchanged file is not a delivery. The run key is the landing
state, so one state is built once (a failed build is not retried in a loop; the alert says what failed).

A forecast delivery is requested as two runs in one tick: first only what its feedback workbook needs
(ingest and feedback, a handful of steps), then the build of the family and everything downstream. The
coordinator's feedback does not wait for Dagster to create a run of ~100 assets (one stored event per
planned asset) and start it; the second run re-checks the ingest (nothing new by then) and carries the
build record, so a failed first run is simply caught up by the second.

While a build holds the writer lock, the sensor does not decide which build comes next: the running build may be building that
very file (a ``zi build`` by hand that took the lock a moment before the file landed, the schedule), and a
build that will record has set the last record aside, so that every new file would look like a reason for
a full build. It keeps its cursor and decides when the lock is free again, with the new record. Runs it
requested meanwhile would have waited for the lock anyway (one writer), so nothing starts later for it.
Forecast workbooks that arrive meanwhile do not wait for their feedback, though: the sensor starts
``forecast_feedback_during_build`` for them, which checks them outside the warehouse (``dagster_zi/forecasts.py``);
so it does when the warehouse is free but runs that will write it are queued, which the delivery's runs would
queue behind. A delivery whose feedback comes that way gets no feedback run ahead of its build.

Funding extracts, DWD archives, tree registers and surface files dropped into their folders are picked up
the same way as workbooks; the funding database channel is read by the daily schedule.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

from dagster import AssetSelection, DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from dagster_zi.constants import BUILD_JOB, FAMILIES_TAG, FEEDBACK_ASSET, FEEDBACK_DURING_BUILD_JOB, LAUNCHED_BY_TAG
from dagster_zi.forecasts import forecast_feedback_during_build
from dagster_zi.jobs import build_all_job
from dagster_zi.runner import runs_ahead
from zi_warehouse import build_state, config, writer_lock
from zi_warehouse.landing import changed_files, fingerprint

SENSOR_NAME = "landing_sensor"
#: Minimum seconds between looks at the landing folders. Dagster's sensor daemon evaluates sensors in a fixed
#: loop (every 2 s in this deployment, dagster_zi/daemon.py; Dagster's default is 5 s) and skips a sensor whose
#: last tick began less than its minimum ago: with a minimum equal to the loop's period, a tick that began a
#: little late made the next loop skip it. Below the loop's period, the sensor looks on every loop.
INTERVAL_SECONDS = 1
#: The cursor's entry (beside one per family) for the last run of ``forecast_feedback_during_build`` requested.
REQUESTED_DURING_BUILD = "feedback_during_build"
#: The run key of a forecast delivery's first run (feedback only) is the landing state's key with this suffix.
FEEDBACK_RUN_SUFFIX = "rueckmeldung"


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


def feedback_during_build_request(paths: config.Paths, cursor: dict) -> RunRequest | None:
    """The run writing the feedback of the forecast files new or changed since the cursor (while a build holds
    the warehouse), or None. Byte-identical copies of other files are left to the build: whether a copy is refused
    as a repeated delivery depends on what the warehouse has loaded. One run per state of those files (the key)."""
    before = cursor.get("forecasts")
    if before is None:  # no look yet to compare with: the build's record decides after the build
        return None
    folder = paths.landing_for("forecasts")
    now = fingerprint(folder, before)
    copies = Counter(entry[2] for entry in now.values())
    changed = [name for name in changed_files(before, now) if name in now and copies[now[name][2]] == 1]
    if not changed:
        return None
    prefix = folder.relative_to(paths.landing).as_posix()
    state = json.dumps({name: now[name][2] for name in changed}, sort_keys=True)
    return RunRequest(
        run_key="waehrend-build-" + hashlib.sha256(state.encode()).hexdigest()[:20],
        job_name=FEEDBACK_DURING_BUILD_JOB,
        run_config={"ops": {"write_feedback_from_landing": {"config": {"files": [f"{prefix}/{n}" for n in changed]}}}},
        # the files by name in the run list (the run key is a hash)
        tags={LAUNCHED_BY_TAG: f"Sensor {SENSOR_NAME} (Rückmeldung während eines Builds: {', '.join(changed)})"[:200]},
    )


def run_key(current: dict) -> str:
    """The landing state (content hashes of every file): one run per state."""
    state = {family: {path: entry[2] for path, entry in files.items()} for family, files in current.items()}
    return "landing-" + hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:20]


@sensor(
    name=SENSOR_NAME,
    jobs=[build_all_job, forecast_feedback_during_build],
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
    if writer_lock.current_holder(paths.warehouse_dir) is not None:
        # The families' cursor stays: these files count as new after the build. Their feedback does not wait for it.
        request = feedback_during_build_request(paths, cursor)
        if request is None or request.run_key == cursor.get(REQUESTED_DURING_BUILD):
            # (not requested again on every tick: Dagster would log that it skips a run key it has seen)
            return SkipReason(build_state.BUILD_IN_PROGRESS)
        context.update_cursor(json.dumps({**cursor, REQUESTED_DURING_BUILD: request.run_key}, sort_keys=True))
        return request
    decision, current = evaluate(paths, cursor)
    context.update_cursor(json.dumps(current, sort_keys=True))
    if decision.mode == "skip":
        return SkipReason(decision.reason)
    tags = {LAUNCHED_BY_TAG: f"Sensor {SENSOR_NAME} ({decision.reason})"[:200]}
    key = run_key(current)
    during = feedback_during_build_request(paths, cursor)
    # These workbooks got their feedback while the build before ran: no feedback run ahead of their build.
    given = during is not None and during.run_key == cursor.get(REQUESTED_DURING_BUILD)
    # Runs that will write the warehouse are still to come (a build queued, or a delivery's build behind its
    # feedback run): this delivery's runs queue behind them, its feedback need not.
    requests = [during] if during and not given and runs_ahead(context.instance) else []
    if decision.mode != "families":
        return [*requests, RunRequest(run_key=key, job_name=BUILD_JOB, tags=tags)]
    graph = defs.resolve_asset_graph()
    if "forecasts" in decision.families and not given and not requests:
        feedback = family_selection(["forecasts"]) & AssetSelection.assets(FEEDBACK_ASSET).upstream()
        requests.append(
            RunRequest(
                run_key=f"{key}-{FEEDBACK_RUN_SUFFIX}",
                job_name=BUILD_JOB,
                asset_selection=sorted(feedback.resolve(graph)),
                # no families tag: this run is not a build of the warehouse and records none
                tags={LAUNCHED_BY_TAG: f"Sensor {SENSOR_NAME} (Rückmeldung vorab: {decision.reason})"[:200]},
            )
        )
    tags[FAMILIES_TAG] = ",".join(decision.families)
    requests.append(
        RunRequest(
            run_key=key,
            job_name=BUILD_JOB,
            asset_selection=sorted(family_selection(decision.families).resolve(graph)),
            tags=tags,
        )
    )
    return requests


sensors = [landing_sensor]
