"""Publishing: the read-only copy users and BI tools read, swapped in atomically.

``published/zi.duckdb`` holds only the public ``marts`` schema, written with a storage compatibility
setting so DuckDB 1.x drivers (BI tools lag behind) can open it. ``published/parquet/<mart>.parquet`` holds
one Parquet file per mart, whose fields carry the columns' descriptions and units as metadata
(``zi_warehouse/data_dictionary.py``). Both are built under temporary names and swapped in with
``os.replace`` (the DuckDB file) and an atomic symlink swap (the Parquet folder): a reader sees the old or
the new copy, never a half-written one, and a failed run leaves the previous copy untouched.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

from zi_warehouse.data_dictionary import parquet_kv_metadata
from zi_warehouse.warehouse import quote_ident

PUBLIC_SCHEMA = "marts"
#: Oldest DuckDB release that must be able to read the published file (BI drivers lag behind).
STORAGE_COMPATIBILITY_VERSION = "v1.0.0"


class PublishError(OSError):
    """Publishing could not write its copy (disk full, read-only, no rights); the previous copy is unchanged."""


@dataclass
class PublishResult:
    duckdb_path: Path
    parquet_dir: Path
    tables: dict[str, int]  # mart -> rows


def public_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = ? "
        "and table_catalog = current_database() order by table_name",
        [PUBLIC_SCHEMA],
    ).fetchall()
    return [r[0] for r in rows]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(warehouse_path: Path, published_dir: Path) -> PublishResult:
    """Copy every table of the ``marts`` schema into a fresh published DuckDB file and Parquet set."""
    published_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    tmp_db = published_dir / f".zi.duckdb.{token}.tmp"
    parquet_version = published_dir / f".parquet-{token}"
    tables: dict[str, int] = {}
    try:
        parquet_version.mkdir()
        con = duckdb.connect()  # in-memory: attach the warehouse read-only and the new file writable
        try:
            con.execute(f"attach {_literal(warehouse_path)} as warehouse (read_only)")
            con.execute("use warehouse")
            names = public_tables(con)
            if not names:
                raise RuntimeError(f"Keine Tabellen im Schema {PUBLIC_SCHEMA} von {warehouse_path}")
            comments = dict(
                con.execute(
                    "select table_name, comment from duckdb_tables() where schema_name = ? "
                    "and database_name = 'warehouse'",
                    [PUBLIC_SCHEMA],
                ).fetchall()
            )
            con.execute(
                f"attach {_literal(tmp_db)} as published (storage_version '{STORAGE_COMPATIBILITY_VERSION}')"
            )
            con.execute(f"create schema published.{PUBLIC_SCHEMA}")
            for name in names:
                source = f"warehouse.{PUBLIC_SCHEMA}.{quote_ident(name)}"
                target = f"published.{PUBLIC_SCHEMA}.{quote_ident(name)}"
                con.execute(f"create table {target} as select * from {source}")
                if comments.get(name):
                    con.execute(f"comment on table {target} is {_literal(comments[name])}")
                # Column descriptions (German, from the dbt YAML) travel with the data to BI tools.
                column_comments = dict(con.execute(
                    "select column_name, comment from duckdb_columns() where database_name = 'warehouse' "
                    "and schema_name = ? and table_name = ? and comment is not null",
                    [PUBLIC_SCHEMA, name],
                ).fetchall())
                for column, comment in column_comments.items():
                    con.execute(f"comment on column {target}.{quote_ident(column)} is {_literal(comment)}")
                tables[name] = con.execute(f"select count(*) from {target}").fetchone()[0]
                parquet_file = parquet_version / f"{name}.parquet"
                # ... and into the Parquet file: field metadata description/unit, table description/grain.
                metadata = parquet_kv_metadata(con, source, comments.get(name), column_comments, parquet_version)
                con.execute(f"copy {source} to {_literal(parquet_file)} "
                            f"(format parquet, compression zstd, kv_metadata {metadata})")
            con.execute("use memory")
            con.execute("detach published")
            con.execute("detach warehouse")
        finally:
            con.close()
        _fsync(tmp_db)
        os.replace(tmp_db, published_dir / "zi.duckdb")
        _swap_symlink(published_dir / "parquet", parquet_version.name)
    except BaseException as exc:
        for leftover in (tmp_db, Path(f"{tmp_db}.wal")):  # the .wal: DuckDB's log of the half-written file
            try:
                leftover.unlink(missing_ok=True)
            except OSError:
                pass  # e.g. a read-only disk: nothing was written, and the cause below matters more
        shutil.rmtree(parquet_version, ignore_errors=True)
        if isinstance(exc, (OSError, duckdb.IOException)) and not isinstance(exc, PublishError):
            raise PublishError(_failure_message(exc, published_dir)) from exc
        raise
    _remove_stale_versions(published_dir, keep=parquet_version.name)
    return PublishResult(published_dir / "zi.duckdb", published_dir / "parquet", tables)


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


def _literal(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _swap_symlink(link: Path, target_name: str) -> None:
    """Point ``link`` at ``target_name`` atomically (rename of a fresh symlink over the old one)."""
    if link.exists() and not link.is_symlink():
        shutil.rmtree(link)  # a real folder from an older layout: replace it once
    tmp_link = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.lnk")
    os.symlink(target_name, tmp_link)
    os.replace(tmp_link, link)


def _remove_stale_versions(published_dir: Path, keep: str) -> None:
    """Old Parquet versions and leftovers of killed runs; open readers keep their file handles on Linux."""
    for entry in published_dir.iterdir():
        if entry.name.startswith(".parquet-") and entry.name != keep:
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(".zi.duckdb.") or entry.name.startswith(".parquet.") and entry.is_symlink():
            entry.unlink(missing_ok=True)
