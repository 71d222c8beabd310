"""Releases: every publish is one directory, made current by one atomic switch; a Berichtsstand is a frozen one.

What belongs here: the layout of ``published/`` (below), reading and writing a release's manifest, the atomic
switch of ``current`` and the stable paths, syncing to disk, keeping releases for a while (retention),
freezing a release as a quarter's Berichtsstand, listing releases and Berichtsstände and finding one by name.
Writing a release's content is ``publish.py``; the restatements against a Berichtsstand ``restatements.py``.

Layout (docs/data-directory.md)::

    published/
      zi.duckdb -> current/zi.duckdb     the stable paths users and BI tools open; symlinks, made once
      parquet   -> current/parquet
      current   -> releases/<id>         switched by rename() of a fresh symlink: one atomic step
      releases/<id>/                     one per publish: zi.duckdb, parquet/<mart>.parquet (a history mart:
                                         parquet/<mart>/<YYYY-MM>.parquet), manifest.json
      reporting/<JJJJ-Qn>/               Berichtsstände: the frozen release's files (hard links, same bytes),
                                         freeze.json, bericht.html, bericht.pdf; kept for good
      .releases.lock                     held while a release is being frozen (retention waits its turn)

Release files are read-only (0444) and never change once the release directory has its final name; a new
release writes new files or hard-links unchanged ones. A reader that opened ``zi.duckdb`` or a Parquet file
keeps reading the release it opened; the next open resolves ``current`` again. A crash at any moment leaves
``current`` on one complete release: the new one is built under ``releases/.staging-<id>`` and renamed, and
only a complete release directory becomes ``current``.

Retention (``ZI_RELEASE_RETENTION_DAYS``, default 30): the current release, and for each past day within
that many days the last release of the day (Tagesstand), are kept, and a release replaced less than
``READER_GRACE`` ago (a reader may be about to open it); other releases go at the next publish.
Berichtsstände live apart and are never removed (their hard links keep the files after their release goes).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from zi_warehouse import config
from zi_warehouse.german import LOCAL_TIME_ZONE  # days of the Tagesstand: the data team's calendar day
from zi_warehouse.landing import file_sha256

RELEASES_DIR = "releases"
REPORTING_DIR = "reporting"
CURRENT_LINK = "current"
DUCKDB_FILE = "zi.duckdb"
PARQUET_DIR = "parquet"
MANIFEST_FILE = "manifest.json"
FREEZE_FILE = "freeze.json"
LOCK_FILE = ".releases.lock"
STAGING_PREFIX = ".staging-"
#: The stable paths in ``published/`` and where they point (relative, so the folder can move or be shared).
STABLE_LINKS = {DUCKDB_FILE: f"{CURRENT_LINK}/{DUCKDB_FILE}", PARQUET_DIR: f"{CURRENT_LINK}/{PARQUET_DIR}"}
RETENTION_ENV = "ZI_RELEASE_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30
MANIFEST_FORMAT = 1
QUARTER_PATTERN = re.compile(r"^\d{4}-Q[1-4]$")
READ_ONLY_FILE = 0o444
READ_ONLY_DIR = 0o555


class ReleaseError(RuntimeError):
    """A release or Berichtsstand could not be found, frozen or read (German message)."""


class AlreadyFrozen(ReleaseError):
    """The quarter has a Berichtsstand already; it is kept as it is."""

    def __init__(self, quarter: str, path: Path):
        super().__init__(f"Berichtsstand {quarter} ist bereits eingefroren ({path}); er bleibt unverändert.")
        self.quarter = quarter
        self.path = path


# --------------------------------------------------------------------------------------------------
# Paths, ids, manifests
# --------------------------------------------------------------------------------------------------


def releases_dir(published: Path) -> Path:
    return published / RELEASES_DIR


def reporting_dir(published: Path) -> Path:
    return published / REPORTING_DIR


def new_release_id(run_id: str | None, now: dt.datetime) -> str:
    """Sortable by time (UTC, to the second), then the first characters of the run id (or a random token)."""
    token = (run_id or uuid.uuid4().hex).replace("-", "")[:8]
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{token}"


def current_release(published: Path) -> Path | None:
    """The directory ``current`` points to, or None (nothing published yet, or the layout before releases)."""
    link = published / CURRENT_LINK
    if not link.is_symlink():
        return None
    target = (published / os.readlink(link)).resolve()
    return target if (target / MANIFEST_FILE).exists() else None


def read_manifest(release: Path) -> dict | None:
    try:
        return json.loads((release / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON and sync it to disk."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=1, sort_keys=False)
        fh.flush()
        os.fsync(fh.fileno())


def code_version() -> dict:
    """The code a release was built with: git commit and whether the working tree differed from it, and the
    fingerprint of the code and dbt project (``build_state``), which also works without git."""
    from zi_warehouse.build_state import code_fingerprint

    version: dict = {"git_commit": None, "git_dirty": None, **code_fingerprint()}
    try:
        commit = subprocess.run(
            ["git", "-C", str(config.REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode == 0:
            version["git_commit"] = commit.stdout.strip()
            status = subprocess.run(
                ["git", "-C", str(config.REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            version["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass  # no git: the fingerprint identifies the code
    return version


def same_code(a: dict | None, b: dict | None) -> bool:
    """Whether two manifests' code versions are the same code (by fingerprint, which git cannot fool)."""
    keys = ("code", "dbt")
    return bool(a and b) and all(a.get(k) == b.get(k) for k in keys)


# --------------------------------------------------------------------------------------------------
# Durability and read-only files
# --------------------------------------------------------------------------------------------------


def fsync_path(path: Path) -> None:
    """Sync a file's content, or a directory's entries (a rename or link in it), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_read_only(root: Path) -> None:
    """Files 0444, folders 0555, from the bottom up (a release never changes once it has its name)."""
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in files:
            os.chmod(os.path.join(folder, name), READ_ONLY_FILE)
        for name in dirs:
            os.chmod(os.path.join(folder, name), READ_ONLY_DIR)
    os.chmod(root, READ_ONLY_DIR)


def remove_tree(root: Path) -> None:
    """Remove a (read-only) release folder: folders need their write bit back before their entries go."""
    if not root.exists() and not root.is_symlink():
        return
    for folder, _dirs, _files in os.walk(root):
        os.chmod(folder, 0o755)
    shutil.rmtree(root, ignore_errors=True)


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link (same bytes, no copy); a copy where the file system cannot link."""
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
        shutil.copyfile(source, target)


# --------------------------------------------------------------------------------------------------
# The switch
# --------------------------------------------------------------------------------------------------


def _replace_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` atomically: a fresh symlink renamed over the old entry."""
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.lnk")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except IsADirectoryError:  # a real folder of a layout older than symlinks: swap it out once
        old = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.old")
        os.rename(link, old)
        os.replace(tmp, link)
        shutil.rmtree(old, ignore_errors=True)


def make_current(published: Path, release: Path) -> None:
    """Switch ``current`` to ``release`` (one rename), then make sure the stable paths point through it.

    The stable links are created once; replacing the files of the layout before releases (a real
    ``zi.duckdb`` and a ``parquet`` link to a version folder) happens at the first publish with releases.
    """
    # Stable paths that do not exist yet are made first: they lead nowhere until `current` exists, and then
    # both appear with the same release. One that shows an older copy (the layout before releases) is
    # replaced only after `current` leads to that same copy (adopt_legacy).
    _ensure_stable_links(published, only_missing=True)
    _replace_symlink(published / CURRENT_LINK, os.path.relpath(release, published))
    fsync_path(published)
    _ensure_stable_links(published, only_missing=False)


def _ensure_stable_links(published: Path, only_missing: bool) -> None:
    changed = False
    for name, target in STABLE_LINKS.items():
        link = published / name
        if link.is_symlink() and os.readlink(link) == target:
            continue
        if only_missing and (link.exists() or link.is_symlink()):
            continue
        _replace_symlink(link, target)
        changed = True
    if changed:
        fsync_path(published)


def adopt_legacy(published: Path, now: dt.datetime) -> Path | None:
    """The layout before releases (a real ``zi.duckdb`` and ``parquet`` pointing at a version folder) becomes a
    release of its own and current, before the first publish with releases switches anything.

    So each step is safe: until ``zi.duckdb`` is replaced, both stable paths show the old copy; after, both
    lead through ``current`` to the same old copy; the publish that follows switches ``current`` in one
    rename like every other. Returns the adopted release, or None when there was nothing to adopt.
    """
    old_db = published / DUCKDB_FILE
    if old_db.is_symlink() or not old_db.is_file():
        return None
    moment = dt.datetime.fromtimestamp(old_db.stat().st_mtime, dt.UTC)
    release_id = f"{moment:%Y%m%dT%H%M%SZ}-vorher"
    folder = releases_dir(published)
    folder.mkdir(exist_ok=True)
    final = folder / release_id
    if not final.exists():
        staging = folder / f"{STAGING_PREFIX}{release_id}"
        remove_tree(staging)
        staging.mkdir()
        (staging / PARQUET_DIR).mkdir()
        link_or_copy(old_db, staging / DUCKDB_FILE)
        old_parquet = published / PARQUET_DIR
        if old_parquet.is_dir():
            for path in sorted(old_parquet.glob("*.parquet")):
                link_or_copy(path, staging / PARQUET_DIR / path.name)
        write_json(
            staging / MANIFEST_FILE,
            {
                "format": MANIFEST_FORMAT,
                "release_id": release_id,
                "published_at": moment.isoformat(),
                "adopted_at": now.astimezone(dt.UTC).isoformat(),
                "run_id": None,
                "code": {},
                "previous_release": None,
                "reporting_release": None,
                "marts": {},
                "landed_files": [],
                "note": "Veröffentlichte Fassung aus der Zeit vor den Releases, unverändert übernommen",
            },
        )
        fsync_path(staging / PARQUET_DIR)
        fsync_path(staging)
        make_read_only(staging)
        os.rename(staging, final)
        fsync_path(folder)
    make_current(published, final)
    return final


def remove_leftovers(published: Path, keep: set[str]) -> list[str]:
    """Staging folders of killed publishes and the files of the layout before releases."""
    removed = []
    releases = releases_dir(published)
    if releases.exists():
        for entry in releases.iterdir():
            if entry.name.startswith(STAGING_PREFIX) and entry.name not in keep:
                remove_tree(entry)
                removed.append(entry.name)
    for entry in published.iterdir():
        name = entry.name
        legacy = (
            name.startswith(".parquet-")
            or name.startswith(".zi.duckdb.")
            or (name.endswith(".lnk") and entry.is_symlink())
            or name.endswith(".old")
        )
        if legacy:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(name)
    return removed


# --------------------------------------------------------------------------------------------------
# Retention
# --------------------------------------------------------------------------------------------------


def retention_days() -> int:
    raw = os.environ.get(RETENTION_ENV, "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    try:
        return max(0, int(raw))
    except ValueError:
        raise ReleaseError(f"{RETENTION_ENV}={raw!r} ist keine Anzahl von Tagen.") from None


def _published_at(release: Path, manifest: dict | None) -> dt.datetime:
    if manifest and manifest.get("published_at"):
        return dt.datetime.fromisoformat(manifest["published_at"])
    return dt.datetime.fromtimestamp(release.stat().st_mtime, dt.UTC)


#: A release replaced less than this long ago stays: a reader that resolved ``current`` just before the switch
#: still finds the file it is about to open (an open file survives its removal anyway).
READER_GRACE = dt.timedelta(minutes=15)


def apply_retention(published: Path, days: int, now: dt.datetime) -> list[str]:
    """Remove releases past retention (see the module docstring); returns the removed ids.

    Skipped while a Berichtsstand is being frozen (it may be linking the files of a release right now).
    """
    folder = releases_dir(published)
    current = current_release(published)
    if not folder.exists():
        return []
    with _lock(published, exclusive=True, wait=False) as locked:
        if not locked:
            return []
        releases = []
        for entry in folder.iterdir():
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            releases.append((_published_at(entry, read_manifest(entry)), entry))
        releases.sort()
        today = now.astimezone(LOCAL_TIME_ZONE).date()
        last_of_day: dict[dt.date, Path] = {}
        for published_at, entry in releases:
            last_of_day[published_at.astimezone(LOCAL_TIME_ZONE).date()] = entry
        removed = []
        replaced_at = {entry: releases[i + 1][0] for i, (_at, entry) in enumerate(releases[:-1])}
        for published_at, entry in releases:
            day = published_at.astimezone(LOCAL_TIME_ZONE).date()
            keep = (
                entry == current
                or now - replaced_at.get(entry, now) < READER_GRACE
                or (day < today and last_of_day[day] == entry and (today - day).days <= days)
            )
            if not keep:
                remove_tree(entry)
                removed.append(entry.name)
        if removed:
            fsync_path(folder)
        return removed


@contextmanager
def _lock(published: Path, exclusive: bool, wait: bool = True) -> Iterator[bool]:
    """flock on ``published/.releases.lock``: freezing holds it shared, retention exclusive and without waiting."""
    published.mkdir(parents=True, exist_ok=True)
    fd = os.open(published / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------
# Berichtsstände
# --------------------------------------------------------------------------------------------------


def freeze(
    published: Path,
    quarter: str,
    render: Callable[[Path, Path], list[Path]],
    frozen_by: str | None = None,
    now: dt.datetime | None = None,
) -> Path:
    """Freeze the current release as the Berichtsstand of ``quarter``: ``reporting/<quarter>/``.

    The release's files are hard-linked (the same bytes; nothing is copied), then ``render(database, folder)``
    writes the report from that very file into the folder and returns the files it wrote. ``freeze.json``
    records the quarter, release, time and the SHA-256 of every file; everything becomes read-only and the
    folder gets its final name in one rename. A quarter is frozen once; a second freeze raises
    :class:`AlreadyFrozen` and changes nothing. A quarter is frozen after its last day (local time), not before.
    """
    if not QUARTER_PATTERN.match(quarter):
        raise ReleaseError(f"Ungültiges Quartal {quarter!r}: Format JJJJ-Qn, z. B. 2026-Q3")
    from zi_warehouse.forecasts.parsing import quarter_bounds
    from zi_warehouse.german import format_date

    quarter_end = quarter_bounds(int(quarter[:4]), int(quarter[-1]))[1]
    today = (now or dt.datetime.now(dt.UTC)).astimezone(LOCAL_TIME_ZONE).date()
    if today <= quarter_end:  # a Berichtsstand is for good: one frozen early would lack the quarter's last deliveries
        raise ReleaseError(
            f"Das Quartal {quarter} endet erst am {format_date(quarter_end)}: ein Berichtsstand wird nach dem "
            f"Quartalsende eingefroren, wenn die Meldungen da sind, und bleibt dann dauerhaft erhalten. Einen "
            f"Entwurf aus dem aktuellen Stand schreibt, sobald Daten zu dem Quartal vorliegen: "
            f"zi report --quarter {quarter} --draft"
        )
    folder = reporting_dir(published)
    target = folder / quarter
    if target.exists():
        raise AlreadyFrozen(quarter, target)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f"{STAGING_PREFIX}{quarter}-{uuid.uuid4().hex[:8]}"
    try:
        with _lock(published, exclusive=False):  # retention leaves the release alone while we link it
            release = current_release(published)
            if release is None:
                raise ReleaseError(f"Kein veröffentlichtes Release unter {published}: zuerst `zi build` ausführen.")
            staging.mkdir()
            (staging / PARQUET_DIR).mkdir()
            for path in sorted(release.rglob("*")):
                if path.is_dir():  # a history mart's Parquet folder
                    (staging / path.relative_to(release)).mkdir(exist_ok=True)
                elif path.is_file():
                    link_or_copy(path, staging / path.relative_to(release))
        written = render(staging / DUCKDB_FILE, staging)
        manifest = read_manifest(staging) or {}
        files = {p.relative_to(staging).as_posix(): file_sha256(p) for p in sorted(staging.rglob("*")) if p.is_file()}
        write_json(
            staging / FREEZE_FILE,
            {
                "quarter": quarter,
                "release_id": manifest.get("release_id", release.name),
                "run_id": manifest.get("run_id"),
                "frozen_at": (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat(),
                "frozen_by": frozen_by,
                "report_files": sorted(p.relative_to(staging).as_posix() for p in written),
                "sha256": files,
            },
        )
        for path in staging.rglob("*"):
            fsync_path(path)
        fsync_path(staging)
        make_read_only(staging)
        try:
            os.rename(staging, target)  # fails if the quarter was frozen meanwhile: the first one stays
        except OSError as exc:
            if target.exists():
                raise AlreadyFrozen(quarter, target) from exc
            raise
        fsync_path(folder)
    except BaseException:
        remove_tree(staging)
        raise
    return target


def verify_frozen(folder: Path) -> list[str]:
    """Files of a Berichtsstand whose content differs from what ``freeze.json`` recorded (empty: unchanged)."""
    record = json.loads((folder / FREEZE_FILE).read_text(encoding="utf-8"))
    differing = []
    for name, digest in record["sha256"].items():
        path = folder / name
        if not path.exists() or file_sha256(path) != digest:
            differing.append(name)
    return differing


# --------------------------------------------------------------------------------------------------
# Listing and finding
# --------------------------------------------------------------------------------------------------


@dataclass
class ReleaseInfo:
    release_id: str
    path: Path
    published_at: dt.datetime
    run_id: str | None
    code: dict
    marts: int
    marts_written: int
    is_current: bool
    frozen_as: list[str]


@dataclass
class ReportingInfo:
    quarter: str
    path: Path
    release_id: str
    run_id: str | None
    frozen_at: dt.datetime | None
    report_files: list[str]


def list_reporting(published: Path) -> list[ReportingInfo]:
    """Berichtsstände, oldest quarter first."""
    folder = reporting_dir(published)
    out = []
    if not folder.exists():
        return out
    for entry in folder.iterdir():
        if not QUARTER_PATTERN.match(entry.name) or not entry.is_dir():
            continue
        try:
            record = json.loads((entry / FREEZE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        frozen_at = record.get("frozen_at")
        out.append(
            ReportingInfo(
                entry.name,
                entry,
                record.get("release_id", "?"),
                record.get("run_id"),
                dt.datetime.fromisoformat(frozen_at) if frozen_at else None,
                record.get("report_files", []),
            )
        )
    return sorted(out, key=lambda r: r.quarter)


def latest_reporting(published: Path) -> ReportingInfo | None:
    """The Berichtsstand of the latest quarter: what restatements compare with."""
    frozen = list_reporting(published)
    return frozen[-1] if frozen else None


def list_releases(published: Path) -> list[ReleaseInfo]:
    """Releases still kept, oldest first."""
    folder = releases_dir(published)
    if not folder.exists():
        return []
    current = current_release(published)
    frozen: dict[str, list[str]] = {}
    for info in list_reporting(published):
        frozen.setdefault(info.release_id, []).append(info.quarter)
    out = []
    for entry in folder.iterdir():
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        manifest = read_manifest(entry)
        if manifest is None:
            continue
        marts = manifest.get("marts", {})
        out.append(
            ReleaseInfo(
                release_id=entry.name,
                path=entry,
                published_at=_published_at(entry, manifest),
                run_id=manifest.get("run_id"),
                code=manifest.get("code", {}),
                marts=len(marts),
                marts_written=sum(1 for m in marts.values() if m.get("written")),
                is_current=entry == current,
                frozen_as=frozen.get(entry.name, []),
            )
        )
    return sorted(out, key=lambda r: (r.published_at, r.release_id))


def resolve(published: Path, name: str) -> Path:
    """The folder of a Berichtsstand (``2026-Q2``), a release (its id or a unique beginning of it) or the
    current release (``current``/``aktuell``); a German error naming what exists otherwise."""
    name = name.strip()
    if QUARTER_PATTERN.match(name):
        folder = reporting_dir(published) / name
        if (folder / FREEZE_FILE).exists():
            return folder
        available = ", ".join(r.quarter for r in list_reporting(published)) or "keine"
        raise ReleaseError(f"Kein Berichtsstand {name}. Eingefroren: {available}.")
    if name in (CURRENT_LINK, "aktuell"):
        release = current_release(published)
        if release is None:
            raise ReleaseError(f"Noch kein Release unter {published}.")
        return release
    matches = [r for r in list_releases(published) if r.release_id.startswith(name)]
    if len(matches) == 1:
        return matches[0].path
    if not matches:
        raise ReleaseError(f"Kein Release {name!r}; `zi releases` listet die vorhandenen.")
    raise ReleaseError(f"{name!r} passt auf {len(matches)} Releases; bitte eindeutiger angeben.")
