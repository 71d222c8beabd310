"""Publishing: the read-only copy users and BI tools read, one release per publish, made current atomically.

A release (layout, switch, retention, Berichtsstände: ``releases.py``) holds

- ``zi.duckdb``: only the public ``marts`` schema, written with a storage compatibility setting so DuckDB 1.x
  drivers (BI tools lag behind) can open it, with the German table and column comments;
- ``parquet/<mart>.parquet``: one Parquet file per mart, whose fields carry the columns' descriptions and
  units as metadata (``zi_warehouse/data_dictionary.py``); a history mart (``RUN_HISTORY_MARTS``) is a folder
  ``parquet/<mart>/<YYYY-MM>.parquet`` instead, one file per month of runs (UTC);
- ``manifest.json``: run id, code version, the hash (and reach) of every landed file that went in, rows and
  checksum of every mart;
- ``marts.mart_restatements``: the figures that changed since the last Berichtsstand (``restatements.py``).

Only what changed is written. A mart's checksum covers its columns, types, comments and rows (an
order-independent hash of every row); a mart whose checksum equals the one in the current release is taken
over: its Parquet file is hard-linked (same bytes), and the DuckDB file starts as a copy of the current
release's file in which only the changed marts are replaced (cheaper than writing every mart again:
docs/performance.md, "Publishing"). A history mart that grows by runs (``RUN_HISTORY_MARTS``) is not even
replaced whole: only the runs whose rows changed are deleted and inserted again, and the table is then proven
equal to the warehouse's by its checksum (else it is written whole); of its Parquet files only the months
with a changed run are written, the others are linked. Everything is written under ``releases/.staging-<id>``, synced to disk,
made read-only and renamed; then ``current`` is switched in one rename. A reader sees the old or the new
release, never a mix; a failed or killed publish leaves the current release untouched.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import duckdb

from zi_warehouse import releases, restatements, warehouse
from zi_warehouse.data_dictionary import parquet_kv_metadata
from zi_warehouse.landing import file_sha256
from zi_warehouse.releases import DUCKDB_FILE, MANIFEST_FILE, PARQUET_DIR
from zi_warehouse.warehouse import quote_ident, quote_literal

log = logging.getLogger(__name__)

PUBLIC_SCHEMA = "marts"
#: Oldest DuckDB release that must be able to read the published file (BI drivers lag behind).
STORAGE_COMPATIBILITY_VERSION = "v1.0.0"


class RunHistory(NamedTuple):
    run_column: str  # identifies a run's rows
    started_column: str  # when the run started: its month (UTC) names the Parquet file that holds the run


#: Marts that grow by whole runs: the quality history gains ~6,000 rows per quality run, and writing all of it
#: again made every publish slower with each month of operation (docs/performance.md, fix 24). Their manifest
#: entry keeps rows, hash and month per run, so the next publish writes only the runs and months that changed.
RUN_HISTORY_MARTS = {"mart_data_quality": RunHistory("run_id", "run_started_at")}
#: The Parquet file of a history mart whose runs cannot be told apart (a run without id or start).
ALL_RUNS_FILE = "all-runs.parquet"


class PublishError(OSError):
    """Publishing could not write its copy (disk full, read-only, no rights); the previous copy is unchanged."""


@dataclass
class PublishResult:
    release_id: str
    release_dir: Path
    duckdb_path: Path  # the stable path (published/zi.duckdb), now on this release
    parquet_dir: Path  # the stable path (published/parquet)
    tables: dict[str, int]  # mart -> rows
    written: list[str]  # marts written anew (changed or new since the previous release)
    reused: list[str]  # marts taken over unchanged from the previous release
    previous_release: str | None
    reporting_quarter: str | None  # the Berichtsstand mart_restatements compares with
    restatements: int
    removed_releases: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> seconds
    runs_replaced: dict[str, int] = field(default_factory=dict)  # history mart -> runs written (not the whole mart)
    history_runs: dict[str, int] = field(default_factory=dict)  # history mart -> runs it holds
    history_files: dict[str, tuple[list[str], int]] = field(default_factory=dict)  # -> (files written, files linked)


@dataclass
class _Mart:
    relation: str  # where the publish reads it (the working warehouse, or the publish connection's memory)
    comment: str | None
    column_comments: dict[str, str]
    not_null: tuple[str, ...] = ()  # columns the dbt contract declares not null (BI tools read it as required)
    rows: int = 0
    checksum: str = ""
    shape: list = field(default_factory=list)  # [column, type, comment] per column, in order
    total: str = "0"  # the order-independent hash of every row (warehouse.content_hash)
    runs: dict[str, list] | None = None  # RUN_HISTORY_MARTS only: run -> [rows, hash, month]


def public_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = ? "
        "and table_catalog = current_database() order by table_name",
        [PUBLIC_SCHEMA],
    ).fetchall()
    return [r[0] for r in rows]


def publish(
    warehouse_path: Path,
    published_dir: Path,
    *,
    run_id: str | None = None,
    reuse: bool = True,
    retention_days: int | None = None,
    now: dt.datetime | None = None,
) -> PublishResult:
    """Publish every table of the ``marts`` schema (and ``mart_restatements``) as a new current release.

    ``reuse`` False writes every mart even when unchanged (how publishing worked before; for measuring).
    ``retention_days`` None: from ``ZI_RELEASE_RETENTION_DAYS`` (default 30).
    """
    clock = _Clock()
    now = now or dt.datetime.now(dt.UTC)
    days = releases.retention_days() if retention_days is None else retention_days
    folder = releases.releases_dir(published_dir)
    if published_dir.exists():
        releases.adopt_legacy(published_dir, now)
    previous = releases.current_release(published_dir) if published_dir.exists() else None
    previous_manifest = releases.read_manifest(previous) if previous else None
    release_id = releases.new_release_id(run_id, now)
    staging = folder / f"{releases.STAGING_PREFIX}{release_id}"
    final = folder / release_id
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if final.exists():  # two publishes of one run in the same second
            release_id = releases.new_release_id(None, now)
            staging, final = folder / f"{releases.STAGING_PREFIX}{release_id}", folder / release_id
        releases.remove_tree(staging)  # left by a publish of this run killed a moment ago
        staging.mkdir()
        (staging / PARQUET_DIR).mkdir()
        con = duckdb.connect()  # in-memory: attach the warehouse read-only and the new file writable
        try:
            con.execute(f"attach {quote_literal(warehouse_path)} as warehouse (read_only)")
            marts = _read_marts(con)
            baseline = _attach_baseline(con, published_dir)
            known = {
                (f["path"], f["hash"]): f
                for m in (previous_manifest, baseline and baseline.manifest)
                if m
                for f in m.get("landed_files", [])
            }
            landed = restatements.landed_files(con, "warehouse", known)
            code = releases.code_version()
            restated = restatements.build(
                con,
                "warehouse",
                baseline,
                landed,
                code_changed=bool(baseline) and not releases.same_code(code, baseline.manifest.get("code")),
            )
            if baseline:
                con.execute("detach frozen")
            if restatements.TABLE in marts:
                raise RuntimeError(f"{restatements.TABLE} ist ein Mart des Releases, nicht des Warehouse.")
            marts[restatements.TABLE] = _Mart(
                f"memory.main.{restatements.TABLE}", restatements.TABLE_COMMENT, restatements.column_comments()
            )
            clock.lap("restatements")
            for name, mart in marts.items():
                _checksum(con, mart, RUN_HISTORY_MARTS.get(name))
            clock.lap("checksums")
            before = (previous_manifest or {}).get("marts", {}) if reuse else {}
            reused = sorted(
                name
                for name, mart in marts.items()
                if before.get(name, {}).get("checksum") == mart.checksum
                and (previous / PARQUET_DIR / _parquet_name(name)).exists()
            )
            written = sorted(set(marts) - set(reused))
            reused_file, runs_replaced = _write_duckdb(
                con, staging / DUCKDB_FILE, marts, written, previous, previous_manifest, reuse
            )
            clock.lap("duckdb")
            # Row order is no part of a mart (its checksum ignores it): DuckDB may then write Parquet with both
            # cores, 2.8 s instead of 4.7 s for 6 M rows of quality history.
            con.execute("set preserve_insertion_order = false")
            parquet_sha: dict[str, str | dict[str, str]] = {}
            new_files: list[Path] = []  # written by this publish, to be synced
            for name, mart in marts.items():
                target = staging / PARQUET_DIR / _parquet_name(name)
                if name in RUN_HISTORY_MARTS:
                    parquet_sha[name] = _write_history_parquet(
                        con,
                        mart,
                        RUN_HISTORY_MARTS[name],
                        target,
                        previous and previous / PARQUET_DIR / name,
                        before.get(name, {}),
                        new_files,
                    )
                elif name in reused:
                    releases.link_or_copy(previous / PARQUET_DIR / f"{name}.parquet", target)
                    parquet_sha[name] = before[name].get("parquet_sha256") or file_sha256(target)
                else:
                    # Field metadata description/unit, table description/grain (data_dictionary.py).
                    metadata = parquet_kv_metadata(
                        con, mart.relation, mart.comment, mart.column_comments, staging / PARQUET_DIR
                    )
                    con.execute(
                        f"copy {mart.relation} to {quote_literal(target)} "
                        f"(format parquet, compression zstd, kv_metadata {metadata})"
                    )
                    parquet_sha[name] = file_sha256(target)
                    new_files.append(target)
            clock.lap("parquet")
        finally:
            con.close()
        for leftover in (staging / f"{DUCKDB_FILE}.wal",):  # checkpointed at detach; never part of a release
            leftover.unlink(missing_ok=True)
        manifest = {
            "format": releases.MANIFEST_FORMAT,
            "release_id": release_id,
            "published_at": now.astimezone(dt.UTC).isoformat(),
            "run_id": run_id,
            "code": code,
            "duckdb_version": duckdb.__version__,
            "storage_version": STORAGE_COMPATIBILITY_VERSION,
            "previous_release": previous.name if previous else None,
            "duckdb_file_from_previous": reused_file,
            "reporting_release": (
                {"quarter": baseline.quarter, "release_id": baseline.release_id} if baseline else None
            ),
            "marts": {
                name: {
                    "rows": m.rows,
                    "checksum": m.checksum,
                    ("parquet_files" if name in RUN_HISTORY_MARTS else "parquet_sha256"): parquet_sha[name],
                    "written": name in written,
                    **({"runs": m.runs} if m.runs is not None else {}),
                }
                for name, m in sorted(marts.items())
            },
            "landed_files": landed,
        }
        releases.write_json(staging / MANIFEST_FILE, manifest)
        releases.fsync_path(staging / DUCKDB_FILE)
        for path in new_files:
            releases.fsync_path(path)
        for name in RUN_HISTORY_MARTS.keys() & marts.keys():
            releases.fsync_path(staging / PARQUET_DIR / name)
        releases.fsync_path(staging / PARQUET_DIR)
        releases.fsync_path(staging)
        releases.make_read_only(staging)
        clock.lap("sync")
        staging.rename(final)
        releases.fsync_path(folder)
        releases.make_current(published_dir, final)
        clock.lap("switch")
    except BaseException as exc:
        releases.remove_tree(staging)
        if isinstance(exc, (OSError, duckdb.IOException)) and not isinstance(exc, PublishError):
            raise PublishError(_failure_message(exc, published_dir)) from exc
        raise
    removed = _tidy(published_dir, days, now)
    clock.lap("retention")
    return PublishResult(
        release_id=release_id,
        release_dir=final,
        duckdb_path=published_dir / DUCKDB_FILE,
        parquet_dir=published_dir / PARQUET_DIR,
        tables={n: m.rows for n, m in sorted(marts.items())},
        written=written,
        reused=reused,
        previous_release=previous.name if previous else None,
        reporting_quarter=baseline.quarter if baseline else None,
        restatements=restated,
        removed_releases=removed,
        seconds=clock.laps,
        runs_replaced=runs_replaced,
        history_runs={name: len(marts[name].runs or {}) for name in RUN_HISTORY_MARTS.keys() & marts.keys()},
        history_files={
            name: (
                sorted(p.name for p in new_files if p.parent.name == name),
                len(parquet_sha[name]) - sum(p.parent.name == name for p in new_files),
            )
            for name in RUN_HISTORY_MARTS.keys() & marts.keys()
        },
    )


def _read_marts(con: duckdb.DuckDBPyConnection) -> dict[str, _Mart]:
    """Every table of the warehouse's ``marts`` schema with its German table and column comments."""
    con.execute("use warehouse")
    names = public_tables(con)
    con.execute("use memory")
    if not names:
        raise RuntimeError(f"Keine Tabellen im Schema {PUBLIC_SCHEMA} des Warehouse")
    comments = dict(
        con.execute(
            "select table_name, comment from duckdb_tables() where schema_name = ? and database_name = 'warehouse'",
            [PUBLIC_SCHEMA],
        ).fetchall()
    )
    columns: dict[str, dict[str, str]] = {}
    for table, column, comment in con.execute(
        "select table_name, column_name, comment from duckdb_columns() where database_name = 'warehouse' "
        "and schema_name = ? and comment is not null",
        [PUBLIC_SCHEMA],
    ).fetchall():
        columns.setdefault(table, {})[column] = comment
    not_null: dict[str, list[str]] = {}
    for table, column in con.execute(
        "select table_name, column_name from duckdb_columns() where database_name = 'warehouse' "
        "and schema_name = ? and not is_nullable order by table_name, column_index",
        [PUBLIC_SCHEMA],
    ).fetchall():
        not_null.setdefault(table, []).append(column)
    return {
        name: _Mart(
            f"warehouse.{PUBLIC_SCHEMA}.{quote_ident(name)}",
            comments.get(name) or None,
            columns.get(name, {}),
            tuple(not_null.get(name, ())),
        )
        for name in names
    }


def _attach_baseline(con: duckdb.DuckDBPyConnection, published_dir: Path) -> restatements.Baseline | None:
    """The last Berichtsstand (latest quarter), attached read-only as ``frozen``."""
    info = releases.latest_reporting(published_dir) if published_dir.exists() else None
    if info is None or not (info.path / DUCKDB_FILE).exists():
        return None
    con.execute(f"attach {quote_literal(info.path / DUCKDB_FILE)} as frozen (read_only)")
    return restatements.Baseline(info.quarter, info.release_id, "frozen", releases.read_manifest(info.path) or {})


def _parquet_name(mart: str) -> str:
    """The mart's entry under ``parquet/``: a file, or for a history mart a folder of monthly files."""
    return mart if mart in RUN_HISTORY_MARTS else f"{mart}.parquet"


def _checksum(con: duckdb.DuckDBPyConnection, mart: _Mart, history: RunHistory | None = None) -> None:
    """Rows and a checksum of everything a reader sees of the mart: columns, types, comments, every row;
    for a history mart also rows, hash and month per run."""
    if history:
        month = f"strftime(timezone('UTC', min({quote_ident(history.started_column)})), '%Y-%m')"
        rows, columns, total, mart.runs = warehouse.content_hash_by(con, mart.relation, history.run_column, month)
    else:
        rows, columns, total = warehouse.content_hash(con, mart.relation)
    mart.shape = [[name, type_, mart.column_comments.get(name)] for name, type_ in columns]
    mart.rows, mart.total, mart.checksum = rows, total, _digest(mart.comment, mart.shape, rows, total)


def _digest(comment: str | None, shape: list, rows: int, total: str) -> str:
    return hashlib.sha256(json.dumps([comment, shape, rows, total], ensure_ascii=False).encode()).hexdigest()[:32]


def _write_duckdb(
    con: duckdb.DuckDBPyConnection,
    target: Path,
    marts: dict[str, _Mart],
    written: list[str],
    previous: Path | None,
    previous_manifest: dict | None,
    reuse: bool,
) -> tuple[bool, dict[str, int]]:
    """The release's DuckDB file. Returns whether it started as a copy of the previous release's file, and
    the history marts of which only some runs were written (mart -> runs).

    A copy keeps the previous file's storage version; it is used only when that is the version we write.
    """
    source = previous / DUCKDB_FILE if previous else None
    from_previous = bool(
        reuse
        and source
        and source.exists()
        and previous_manifest
        and previous_manifest.get("storage_version") == STORAGE_COMPATIBILITY_VERSION
    )
    if from_previous:
        shutil.copyfile(source, target)  # a copy, never the previous file itself: that one stays as it is
        con.execute(f"attach {quote_literal(target)} as published")
        existing = set(
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where database_name = 'published' and schema_name = ?",
                [PUBLIC_SCHEMA],
            ).fetchall()
        )
        # One transaction for every change: one commit to the file's log instead of one per statement.
        con.execute("begin")
        for name in sorted(existing - set(marts)):
            con.execute(f"drop table published.{PUBLIC_SCHEMA}.{quote_ident(name)}")
        to_write = sorted(set(written) | (set(marts) - existing))
    else:
        con.execute(f"attach {quote_literal(target)} as published (storage_version '{STORAGE_COMPATIBILITY_VERSION}')")
        con.execute("begin")
        con.execute(f"create schema published.{PUBLIC_SCHEMA}")
        existing, to_write = set(), sorted(marts)
    runs_replaced = {}
    for name in to_write:
        mart = marts[name]
        table = f"published.{PUBLIC_SCHEMA}.{quote_ident(name)}"
        if name in existing:
            before = (previous_manifest or {}).get("marts", {}).get(name, {})
            replaced = _replace_changed_runs(con, table, mart, RUN_HISTORY_MARTS.get(name), before)
            if replaced is not None:
                runs_replaced[name] = replaced
                continue
            con.execute(f"drop table {table}")
        con.execute(f"create table {table} as select * from {mart.relation}")
        if mart.comment:
            con.execute(f"comment on table {table} is {quote_literal(mart.comment)}")
        # Column descriptions (German, from the dbt YAML) travel with the data to BI tools.
        for column, comment in mart.column_comments.items():
            con.execute(f"comment on column {table}.{quote_ident(column)} is {quote_literal(comment)}")
    _declare_not_null(con, marts)
    con.execute("commit")
    con.execute("detach published")
    return from_previous, runs_replaced


def _declare_not_null(con: duckdb.DuckDBPyConnection, marts: dict[str, _Mart]) -> None:
    """The published tables declare the columns the dbt contracts require as NOT NULL, as the working
    warehouse does (``create table as`` drops that): BI tools then show the keys as required. Also for the
    tables a release copied from the previous file unchanged (written before the file declared them)."""
    nullable = set(
        con.execute(
            "select table_name, column_name from duckdb_columns() where database_name = 'published' "
            "and schema_name = ? and is_nullable",
            [PUBLIC_SCHEMA],
        ).fetchall()
    )
    for name, mart in marts.items():
        for column in mart.not_null:
            if (name, column) in nullable:
                con.execute(
                    f"alter table published.{PUBLIC_SCHEMA}.{quote_ident(name)} "
                    f"alter column {quote_ident(column)} set not null"
                )


def _previous_runs(mart: _Mart, before: dict) -> dict[str, list] | None:
    """The previous release's runs of a history mart, if its table had the same columns, types and comments
    (its checksum, recomputed from those runs with today's shape, proves it); else None."""
    old = before.get("runs")
    if mart.runs is None or not isinstance(old, dict):
        return None
    if not all(isinstance(entry, list) and len(entry) == 3 for entry in old.values()):
        return None
    old_rows = sum(entry[0] for entry in old.values())
    old_total = str(sum(int(entry[1]) for entry in old.values()))
    if _digest(mart.comment, mart.shape, old_rows, old_total) != before.get("checksum"):
        return None
    return old


def _replace_changed_runs(
    con: duckdb.DuckDBPyConnection, table: str, mart: _Mart, history: RunHistory | None, before: dict
) -> int | None:
    """In the copied table, delete and insert again only the runs whose rows or hash changed (a new run, and
    the run that was the newest and lost ``is_latest_run``). Returns how many runs were written, or None when
    the table has to be written whole: not a history mart, no runs in the previous manifest, other columns or
    comments, or a result whose rows and hash differ from the warehouse's (a wrong manifest never publishes
    wrong rows)."""
    old = _previous_runs(mart, before) if history else None
    if old is None:
        return None
    stale = sorted(run for run in old.keys() | mart.runs.keys() if old.get(run) != mart.runs.get(run))
    where = f"{quote_ident(history.run_column)}::varchar in (select unnest(?::varchar[]))"
    con.execute(f"delete from {table} where {where}", [stale])
    con.execute(f"insert into {table} select * from {mart.relation} where {where}", [stale])
    rows, _, total = warehouse.content_hash(con, table)
    if (rows, total) != (mart.rows, mart.total):
        log.warning("%s: Läufe einzeln ersetzt ergeben nicht die Mart des Warehouse, wird ganz geschrieben", table)
        return None
    return len(stale)


def _write_history_parquet(
    con: duckdb.DuckDBPyConnection,
    mart: _Mart,
    history: RunHistory,
    folder: Path,
    previous_folder: Path | None,
    before: dict,
    new_files: list[Path],
) -> dict[str, str]:
    """A history mart's Parquet folder: one file per month of runs; a month whose runs are those of the previous
    release is hard-linked from there, the others are written. Returns file name -> sha256."""
    folder.mkdir()
    old = _previous_runs(mart, before) or {}
    old_files = before.get("parquet_files") if isinstance(before.get("parquet_files"), dict) else {}
    metadata = parquet_kv_metadata(con, mart.relation, mart.comment, mart.column_comments, folder.parent)
    options = f"format parquet, compression zstd, kv_metadata {metadata}"
    if not mart.runs or any(month is None for _, _, month in mart.runs.values()):
        con.execute(f"copy {mart.relation} to {quote_literal(folder / ALL_RUNS_FILE)} ({options})")
        new_files.append(folder / ALL_RUNS_FILE)
        return {ALL_RUNS_FILE: file_sha256(folder / ALL_RUNS_FILE)}
    months: dict[str, dict[str, list]] = {}
    for run, entry in mart.runs.items():
        months.setdefault(entry[2], {})[run] = entry
    shas = {}
    for month, runs in sorted(months.items()):
        name, target = f"{month}.parquet", folder / f"{month}.parquet"
        source = previous_folder / name if previous_folder else None
        if (
            old_files.get(name)
            and source
            and source.exists()
            and runs == {run: entry for run, entry in old.items() if entry[2] == month}
        ):
            releases.link_or_copy(source, target)
            shas[name] = old_files[name]
            continue
        con.execute(
            f"copy (select * from {mart.relation} where {quote_ident(history.run_column)}::varchar in "
            f"({', '.join(quote_literal(run) for run in sorted(runs))})) to {quote_literal(target)} ({options})"
        )
        shas[name] = file_sha256(target)
        new_files.append(target)
    return shas


def _tidy(published_dir: Path, days: int, now: dt.datetime) -> list[str]:
    """After the switch: leftovers of killed publishes and the old layout, and releases past retention.
    A failure here never fails the publish (the new release is current already)."""
    try:
        releases.remove_leftovers(published_dir, keep=set())
        return releases.apply_retention(published_dir, days, now)
    except OSError as exc:
        log.warning("Alte Releases nicht aufgeräumt: %s", exc)
        return []


class _Clock:
    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.last, 3)
        self.laps["total"] = round(now - self.started, 3)
        self.last = now


def _failure_message(exc: BaseException, published_dir: Path) -> str:
    """A German message naming the cause a person can fix (space, rights), with the original error."""
    text = str(exc)
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC or "No space left" in text:
        reason = "kein Speicherplatz mehr auf dem Datenträger"
    elif code == errno.EROFS or "Read-only file system" in text:
        reason = "das Verzeichnis ist schreibgeschützt"
    elif code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        reason = "keine Schreibrechte für das Verzeichnis"
    else:
        reason = "Ein-/Ausgabefehler"
    return (
        f"Veröffentlichen nach {published_dir} fehlgeschlagen: {reason}. Die bisher veröffentlichte Fassung "
        f"bleibt unverändert. (Ursache: {text})"
    )
