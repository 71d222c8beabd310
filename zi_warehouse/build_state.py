"""What the last successful ``zi build`` was built from, so that the next one does only what is needed.

What belongs here: the fingerprint of everything a build depends on and everything it leaves behind,
recorded after a successful build (``warehouse/last_build.json``), and the decision it allows:

- ``skip``: nothing changed (same landing files, code, dbt project, ``ZI_*``/``DBT_*`` settings) and the
  outputs (warehouse, published copy, feedback workbooks, reports) are exactly as the last build left them.
  Starting Dagster and dbt would only rebuild the same marts from the same rows.
- ``families``: only landing files of some source families changed (everything else as above); the build
  can run those families' ingest assets and everything downstream of them, not the whole job.
- ``full``: anything else (no record, a failed or interrupted last build, changed code or dbt files,
  changed settings, outputs touched by someone else, or an external source/target configured whose state
  a fingerprint cannot see: the funding database, PostgreSQL publishing).

Landing files are compared by path, size and modification time (like make and rsync), not by content:
the ingest itself still hashes every file it reads. No Dagster imports: this runs before Dagster loads.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from zi_warehouse import config, releases, writer_lock
from zi_warehouse.reports.labels import family_label

STATE_FILE = "last_build.json"
#: Settings that change what a build produces; the rest of the environment does not.
ENV_PREFIXES = ("ZI_", "DBT_")
#: Variables about the run itself, not its result, and those the pipeline sets for its own dbt processes.
ENV_IGNORED = {
    "ZI_BUILD_TIMINGS",
    "ZI_BUILD_ALWAYS",
    "ZI_DATA_DIR",
    "ZI_DBT_SERVER",
    "ZI_DBT_DATABASE",
    "DBT_TARGET_PATH",
    "DBT_LOG_PATH",
    "DBT_LOG_FORMAT",
    "DBT_PROJECT_DIR",
    "DBT_PROFILES_DIR",
    # How the deployment runs and whom it tells, not what a build produces: a colleague's shell without them
    # must not make the next delivery a full build.
    "ZI_DAGSTER_UI_URL",
    "ZI_DAGSTER_POSTGRES_URL",
    "ZI_RUN_RETENTION_DAYS",
    releases.RETENTION_ENV,
    "ZI_SQL_HISTORY",
    "ZI_COORDINATOR_ADDRESSES",
}
#: The alert mail settings (zi_warehouse/alerts.py), likewise.
ENV_IGNORED_PREFIXES = ("ZI_ALERT_",)
#: Settings recorded only as set, not even as a digest (a weak password could be guessed from one): they change
#: nothing a build produces beyond being set, and a configured database is never skipped anyway
#: (``external_state_configured``).
SECRET_MARKERS = ("PASSWORD", "SECRET", "TOKEN", "DSN")
CODE_DIRS = ("zi_warehouse", "dagster_zi")
#: dbt's run folders and the writer lock are artefacts of a build, not its state.
LISTING_IGNORED = (STATE_FILE, "dbt_target", writer_lock.LOCK_FILE)
DBT_PATHS = ("dbt_project.yml", "models", "seeds", "dbt_project")
#: Berichtsstände and their lock: frozen by `zi report`, not written by builds.
PUBLISHED_IGNORED = (releases.REPORTING_DIR, releases.LOCK_FILE)
#: The quarterly report's chart cache (``reports/quarterly/charts.py``, CACHE_FOLDER): every drawing reads and
#: writes it, a report frozen by `zi report` too, and what it holds changes no result.
REPORTS_IGNORED = (".chart-cache",)
VERSION = 1


def state_path(paths: config.Paths) -> Path:
    return paths.warehouse_dir / STATE_FILE


def _listing(folder: Path, exclude: tuple[str, ...] = ()) -> list[list]:
    """(relative path, size, mtime_ns) of every file below ``folder``, sorted."""
    if not folder.exists():
        return []
    out = []
    for path in sorted(folder.rglob("*")):
        if any(part in exclude for part in path.relative_to(folder).parts) or not path.is_file():
            continue
        st = path.stat()
        out.append([path.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns])
    return out


def _content_hash(root: Path, entries: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for entry in entries:
        base = root / entry
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def code_fingerprint() -> dict[str, str]:
    """Content hashes of the pipeline code and of the dbt project (also what a release records as its code)."""
    return {"code": _content_hash(config.REPO_ROOT, CODE_DIRS), "dbt": _content_hash(config.REPO_ROOT, DBT_PATHS)}


def package_fingerprint() -> str:
    """Content hash of the ``zi_warehouse`` package alone: what the quarterly report's charts are drawn with (an
    edit of the Dagster wiring or the dbt project does not change a chart)."""
    return _content_hash(config.REPO_ROOT, ("zi_warehouse",))


def inputs(paths: config.Paths) -> dict:
    """What the build reads: landing files per family, the pipeline code, the dbt project, settings."""
    # Only a digest of each value: the record is an ordinary file, and a DSN or password must not end up in it.
    env = {
        k: "gesetzt" if any(m in k for m in SECRET_MARKERS) else "sha256:" + hashlib.sha256(v.encode()).hexdigest()[:16]
        for k, v in os.environ.items()
        if k.startswith(ENV_PREFIXES) and k not in ENV_IGNORED and not k.startswith(ENV_IGNORED_PREFIXES)
    }
    return {
        "version": VERSION,
        "landing": {family: _listing(paths.landing_for(family)) for family in config.SOURCE_FAMILIES},
        **code_fingerprint(),
        "env": dict(sorted(env.items())),
        "data_dir": str(paths.data_dir),
    }


def outputs(paths: config.Paths) -> dict:
    """What the build leaves behind; if any of it changed since, the record no longer describes it."""
    return {
        "warehouse": _listing(paths.warehouse_dir, exclude=LISTING_IGNORED),
        "published": _listing(paths.published, exclude=PUBLISHED_IGNORED),
        "feedback": _listing(paths.feedback),
        "reports": _listing(paths.reports, exclude=REPORTS_IGNORED),
    }


def external_state_configured() -> str | None:
    """A configured source or target outside the data directory, whose changes no fingerprint sees."""
    if config.funding_db_dsn() is not None:
        return f"Förderdatenbank ({config.FUNDING_DB_DSN_ENV})"
    if config.postgres_dsn() is not None:
        return "PostgreSQL-Veröffentlichung"
    return None


@dataclass
class Decision:
    mode: str  # "skip" | "families" | "full"
    reason: str  # German, shown to the user
    families: list[str] = field(default_factory=list)
    last: dict = field(default_factory=dict)  # what the last successful build reported (for "skip")


#: What the record's inputs are, as a reason names them ("geändert seit dem letzten Lauf: Pipeline-Code").
INPUT_LABELS = {
    "version": "Programmversion",
    "code": "Pipeline-Code",
    "dbt": "dbt-Projekt",
    "env": "Einstellungen (ZI_*/DBT_*)",
    "data_dir": "Datenverzeichnis",
}
#: Why a build is a full one when there is no record: a build deletes it when it starts and writes it when it
#: succeeds, so none is left after a failed or interrupted build, and none before the first.
NO_RECORD = "der letzte Lauf war nicht erfolgreich, oder es gab noch keinen"
#: A partial build's reason, followed by the source families' German names.
FAMILIES_CHANGED = "neue, geänderte oder entfernte Dateien: "


def _families_de(families: list[str]) -> str:
    return ", ".join(family_label(f) for f in families)


def decide(paths: config.Paths) -> Decision:
    if os.environ.get("ZI_BUILD_ALWAYS") == "1":
        return Decision("full", "ZI_BUILD_ALWAYS=1: vollständiger Lauf erzwungen")
    external = external_state_configured()
    if external:
        return Decision("full", f"{external} konfiguriert: externer Zustand, immer vollständiger Lauf")
    recorded = read_record(paths)
    if recorded is None:
        return Decision("full", NO_RECORD)
    now_in = inputs(paths)
    if recorded.get("outputs") != outputs(paths):
        return Decision("full", "Warehouse oder veröffentlichte Dateien seit dem letzten Lauf verändert")
    before = recorded.get("inputs", {})
    for key in ("version", "code", "dbt", "env", "data_dir"):
        if before.get(key) != now_in[key]:
            return Decision("full", f"geändert seit dem letzten Lauf: {INPUT_LABELS[key]}")
    changed = [f for f in config.SOURCE_FAMILIES if before.get("landing", {}).get(f) != now_in["landing"][f]]
    if not changed:
        return Decision("skip", "keine Änderung seit dem letzten erfolgreichen Lauf", last=recorded.get("summary", {}))
    return Decision("families", FAMILIES_CHANGED + _families_de(changed), changed)


#: The landing sensor's reason to skip when no file came, changed or went (every tick of a quiet day).
NOTHING_LANDED = "keine neuen, geänderten oder entfernten Dateien"
#: The landing sensor's skip while a build holds the writer lock (dagster_zi/landing.py).
BUILD_IN_PROGRESS = "ein Build läuft; was neu ist, wird nach seinem Ende entschieden"
#: The landing sensor's skip when the files it has not seen yet are those the last successful build read (its
#: first look after a start, or files a `zi build` started by hand has built).
ALREADY_BUILT = "die Dateien im Landebereich sind schon gebaut"
#: The landing sensor's skip on a new data directory: no successful build and no file in any landing folder (a
#: build would find no station list, no municipalities' files, and fail with an alert).
NOTHING_DELIVERED = (
    "noch keine Datei im Landebereich und noch kein erfolgreicher Build: wartet auf die ersten Lieferungen"
)


def landing_decision(paths: config.Paths, content_changed: list[str]) -> Decision:
    """What the landing sensor should build, given the families whose files changed in content.

    A family whose landing listing equals the one the last successful build started from is built already
    (e.g. by a ``zi build`` started by hand). Without a record of a successful build, or with code, dbt
    project or settings changed since, the build is a full one.
    """
    recorded = read_record(paths)
    if (
        recorded is None
        and not any(_listing(paths.landing_for(f)) for f in config.SOURCE_FAMILIES)
        and external_state_configured() is None
    ):
        return Decision("skip", NOTHING_DELIVERED)
    if not content_changed:
        return Decision("skip", NOTHING_LANDED)
    now_in = inputs(paths)
    if recorded is None:
        return Decision("full", f"{NO_RECORD}; neue Dateien: {_families_de(content_changed)}")
    before = recorded.get("inputs", {})
    pending = [f for f in content_changed if before.get("landing", {}).get(f) != now_in["landing"][f]]
    if not pending:
        return Decision("skip", ALREADY_BUILT)
    for key in ("version", "code", "dbt", "env", "data_dir"):
        if before.get(key) != now_in[key]:
            return Decision(
                "full",
                f"neue Dateien ({_families_de(pending)}) und geändert seit dem letzten Lauf: {INPUT_LABELS[key]}",
            )
    return Decision("families", FAMILIES_CHANGED + _families_de(pending), pending)


def now_text() -> str:
    """When a build finished, as the summaries show it (local time of the data team, zone named)."""
    import datetime as dt

    from zi_warehouse.german import format_datetime

    return format_datetime(dt.datetime.now(dt.UTC), seconds=True)


def forget(paths: config.Paths) -> None:
    """Called before a build starts: a build that fails or is interrupted leaves no record behind."""
    try:
        state_path(paths).unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass  # e.g. a read-only data directory: the build itself fails there and says so in German


#: The landing listing each family's ingest read in this process (family -> listing), noted just before the
#: ingest looks at the folder (``note_landing_read``). A build records these rather than the listing at its
#: start: a file landing in the moment between the two is ingested, and must count as built (or the landing
#: sensor builds it a second time); a family the build did not ingest keeps the last record's listing.
_landing_read: dict[str, list] = {}


def note_landing_read(landing_dir: Path, family: str) -> None:
    """Called by the ingest right before it lists ``landing/<family>``: what this build reads of the family."""
    _landing_read[family] = _listing(landing_dir / family)


def read_record(paths: config.Paths) -> dict | None:
    try:
        return json.loads(state_path(paths).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def start_recording(paths: config.Paths) -> tuple[dict, dict | None]:
    """Called when a build that records starts: (its inputs now, the last record). The record is set aside (a
    failed or interrupted build leaves none) and this process forgets what earlier runs' ingests read."""
    started_from, previous = inputs(paths), read_record(paths)
    _landing_read.clear()
    forget(paths)
    return started_from, previous


def as_built(started_from: dict, previous: dict | None) -> dict:
    """The inputs to record for a successful build: each family's landing as its ingest read it; a family not
    ingested keeps the last record's listing (files that landed there are not built yet), else the listing at
    the start."""
    before = ((previous or {}).get("inputs") or {}).get("landing") or {}
    landing = {
        family: _landing_read.get(family, before.get(family, listing))
        for family, listing in started_from["landing"].items()
    }
    return {**started_from, "landing": landing}


def checks_after(previous: dict | None, this_run: dict[str, str], partial: bool) -> dict:
    """The record's account of the checks after a successful run: each check's latest outcome ("passed",
    "warned", "failed" for a non-blocking error) and the counts the summaries print.

    A partial run evaluates only the checks of what it built; every other check keeps its outcome from the
    earlier runs, so a warning on the funding data is still reported after a forecast delivery. A full run
    evaluates every check, and only its outcomes count (a check removed from the code is gone)."""
    earlier = (((previous or {}).get("summary") or {}).get("checks") or {}) if partial else {}
    outcomes = {**earlier, **this_run}
    return {
        "checks": outcomes,
        "checks_in_run": len(this_run),
        "checks_passed": sum(1 for o in outcomes.values() if o == "passed"),
        "checks_warned": [name for name, o in outcomes.items() if o == "warned"],
        "checks_failed": [name for name, o in outcomes.items() if o == "failed"],
    }


def keep_reports_in_record(paths: config.Paths) -> None:
    """After ``zi report`` or ``zi quality-report`` wrote a report by hand: the record takes the reports folder as
    it is now, so that the next build does not take the new report for a change by someone else and build in
    full. Without a record (none yet, or a build is running) there is nothing to keep."""
    target = state_path(paths)
    try:
        state = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    state.setdefault("outputs", {})["reports"] = _listing(paths.reports, exclude=REPORTS_IGNORED)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, target)


def record(paths: config.Paths, recorded_inputs: dict, summary: dict | None = None) -> None:
    """After a successful build: the inputs it started from, the outputs it left, what it reported."""
    target = state_path(paths)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"inputs": recorded_inputs, "outputs": outputs(paths), "summary": summary or {}}), encoding="utf-8"
    )
    os.replace(tmp, target)
