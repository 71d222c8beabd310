"""Starting the working warehouse over (``zi build --rebuild``) without losing what no landing file can rebuild.

The landing area is the source of truth for every raw table, but two things in the working file are history
that only the runs themselves wrote: the data-quality results of every earlier run (``raw.data_quality_results``,
the controllers' quality history behind ``marts.mart_data_quality``) and dbt's snapshots of the funding
statuses (schema ``snapshots``: since when an application or approval had which status). Deleting the file
would lose both. Here the old file is moved aside, a new one starts with copies of those tables, and the build
fills the rest from the landing area; after a failed build the old file is put back as it was.

What belongs here: which tables are history, moving the file aside and back. The run's executor
(``dagster_zi/execution.py``) calls it for a whole build tagged ``zi/rebuild=true`` (``zi build --rebuild``, or the
tag set in the UI's launchpad), so it works the same whoever launches the run.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from zi_warehouse.quality.results import RESULTS_QUALIFIED
from zi_warehouse.warehouse import quote_ident, quote_literal

#: dbt's snapshot schema (``+target_schema`` of the snapshots in dbt_project.yml): every table in it is kept.
SNAPSHOT_SCHEMA = "snapshots"
#: The old working file while the rebuilt one is built, to put back if that build fails.
ASIDE_SUFFIX = ".vor-neuaufbau"
#: The new working file while the history tables are copied into it.
NEW_SUFFIX = ".neuaufbau"


def aside_path(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ASIDE_SUFFIX)


def _new_path(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + NEW_SUFFIX)


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _move(source: Path, target: Path) -> None:
    """The DuckDB file with its write-ahead log, if one was left (a process that ended without closing it)."""
    source.replace(target)
    if _wal(source).exists():
        _wal(source).replace(_wal(target))


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    _wal(path).unlink(missing_ok=True)


def history_tables(con: duckdb.DuckDBPyConnection, database: str) -> list[str]:
    """The history tables present in ``database`` (attached name), as ``schema.table``."""
    found = con.execute(
        "select schema_name || '.' || table_name from duckdb_tables() where database_name = ? "
        "and (schema_name = ? or schema_name || '.' || table_name = ?) order by 1",
        [database, SNAPSHOT_SCHEMA, RESULTS_QUALIFIED],
    ).fetchall()
    return [row[0] for row in found]


def start_over(warehouse: Path) -> dict[str, int]:
    """Put a new working file in place holding only the old one's history tables (name -> rows copied); the
    old file waits aside for :func:`finish`. Called under the writer lock.

    The copy is made into a file beside the warehouse and swapped in by renaming, so an interrupted rebuild
    leaves either the old file or the complete new one in place. A file still aside from such a rebuild is
    stale (the file in place is the one later runs wrote to) and is dropped.
    """
    aside, new = aside_path(warehouse), _new_path(warehouse)
    if aside.exists():
        if warehouse.exists():
            _remove(aside)
        else:  # interrupted between the two renames below
            _move(aside, warehouse)
    _remove(new)
    if not warehouse.exists():
        return {}
    kept: dict[str, int] = {}
    con = duckdb.connect(str(new))
    try:
        con.execute(f"attach {quote_literal(warehouse)} as previous (read_only)")
        for name in history_tables(con, "previous"):
            schema, table = (quote_ident(part) for part in name.split("."))
            con.execute(f"create schema if not exists {schema}")
            con.execute(f"create table {schema}.{table} as select * from previous.{schema}.{table}")
            kept[name] = con.execute(f"select count(*) from {schema}.{table}").fetchone()[0]
        con.execute("detach previous")
        con.close()
    except BaseException:
        con.close()
        _remove(new)
        raise
    _move(warehouse, aside)
    _move(new, warehouse)
    return kept


#: What the run log and ``zi build`` say when a rebuild ended without publishing.
UNDONE_DE = "Neuaufbau fehlgeschlagen: das bisherige Arbeits-Warehouse ist wieder in Kraft."


def started_de(kept: dict[str, int]) -> str:
    """The run log's line when a rebuild starts: what it took over."""
    from zi_warehouse.german import format_number

    taken = ", ".join(f"{name} ({format_number(rows)} Zeilen)" for name, rows in kept.items())
    return f"Neuaufbau: neues Arbeits-Warehouse aus dem Landebereich; übernommen: {taken or 'nichts (leer)'}"


def finish(warehouse: Path, published: bool) -> None:
    """After the build: drop the old file once the new one was published (a release was made from it), else
    put the old one back in place of the new one."""
    aside = aside_path(warehouse)
    if not aside.exists():
        return
    if published:
        _remove(aside)
    else:
        _remove(warehouse)
        _move(aside, warehouse)
