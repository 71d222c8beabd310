"""The working DuckDB warehouse: raw tables, the ingestion ledger and rejected rows.

Only the pipeline opens this file, one writer at a time (Dagster pool ``zi_warehouse``). Readers use the
published copy (see ``publish.py``). Loading is per file: a file's rows are replaced as a whole, so a
re-delivered file replaces its predecessor and an unchanged file is skipped.

Also the home of the small DuckDB helpers any reader of a warehouse file uses (the published copy
included): ``connect``, ``quote_ident``, ``rows`` (a result as dicts) and ``table_exists``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from zi_warehouse.accounting import LINEAGE_FIELDS, NOTHING_TO_DO_RULES, PROJECT_PREFIX_PATTERN, FileResult

RAW_SCHEMA = "raw"

LEDGER_SCHEMA = pa.schema(
    [
        pa.field("source_family", pa.string()),
        pa.field("source_file", pa.string()),
        pa.field("file_name", pa.string()),
        pa.field("file_hash", pa.string()),
        pa.field("file_size_bytes", pa.int64()),
        pa.field("municipality_key", pa.string()),
        pa.field("period", pa.string()),
        pa.field("rows_read", pa.int64()),
        pa.field("rows_loaded", pa.int64()),
        pa.field("rows_rejected", pa.int64()),
        pa.field("outcome", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("error_rule", pa.string()),  # rule key of error_message (seeds/rule_texts.csv)
        pa.field("data_team_note", pa.string()),  # for the data team only, e.g. a proposed header map entry
        pa.field("loaded_at", pa.timestamp("us", tz="UTC")),
    ]
)

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("source_family", pa.string()),
        pa.field("source_file", pa.string()),
        pa.field("sheet", pa.string()),
        pa.field("row_number", pa.int64()),
        pa.field("project_id", pa.string()),
        pa.field("column_name", pa.string()),
        pa.field("value_found", pa.string()),
        pa.field("rule", pa.string()),
        pa.field("message_de", pa.string()),
    ]
)


#: DuckDB's integer and numeric type names (a DECIMAL carries its precision: compare the name before "(").
INTEGER_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
)
NUMERIC_TYPES = (*INTEGER_TYPES, "FLOAT", "DOUBLE", "DECIMAL")


def quote_ident(name: str) -> str:
    """Quote an SQL identifier; names from files, sheets or headers never reach SQL unquoted."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: object) -> str:
    """An SQL string literal, for the statements that take no parameters (ATTACH, COPY, COMMENT)."""
    return "'" + str(value).replace("'", "''") + "'"


def raw_table(entity: str) -> str:
    return f"{RAW_SCHEMA}.{quote_ident(entity)}"


class WarehouseLocked(RuntimeError):
    """Another process has the DuckDB file open for writing (DuckDB allows one writing process per file)."""


def locked_message(path: Path, error: Exception) -> str | None:
    """The German sentence for DuckDB's "Could not set lock on file" error (naming the process that holds the
    file, as DuckDB does); None for any other error."""
    text = str(error)
    if "could not set lock" not in text.lower():
        return None
    holder = re.search(r"held in (\S+) \(PID (\d+)\)", text)
    by = f" (Prozess {holder[2]}: {Path(holder[1]).name})" if holder else ""
    return f"Die Datei {path} ist von einem anderen Programm geöffnet{by}: es beenden oder warten, bis es fertig ist."


@contextmanager
def connect(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        message = locked_message(path, exc)
        if message is None:
            raise
        raise WarehouseLocked(message) from exc
    try:
        yield con
    finally:
        con.close()


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    """The result of ``sql`` as one dict per row, keyed by column name (for small results: it fetches all)."""
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str, database: str | None = None) -> bool:
    """Whether ``schema.table`` (table or view) exists in the connection's own database file.

    Databases attached to the connection are not looked at, so an attached copy cannot stand in for it;
    name one with ``database`` (its attach alias) to look there instead.
    """
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ? and table_catalog = coalesce(?, current_database())",
            [schema, table, database],
        ).fetchone()[0]
    )


def content_hash(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[int, list, str]:
    """Rows, columns (name, type) and an order-independent hash of every row of ``relation``: equal for two
    tables with the same columns and the same multiset of rows, whatever their order."""
    count, total = con.execute(f"select count(*), coalesce(sum(hash(t)), 0)::varchar from {relation} t").fetchone()
    columns = [[c[0], c[1]] for c in con.execute(f"describe select * from {relation}").fetchall()]
    return count, columns, total


def content_hash_by(
    con: duckdb.DuckDBPyConnection, relation: str, column: str, label_sql: str | None = None
) -> tuple[int, list, str, dict[str, list] | None]:
    """``content_hash`` in one scan, plus the same per value of ``column``: ``{value: [rows, hash]}``, with
    ``label_sql`` (an aggregate over the value's rows) as a third item.

    The per-value hashes add up to the total (the hash is a sum over rows), so a table that changed in a
    few values can be compared value by value. The breakdown is None where ``column`` holds a null.
    """
    label = f", {label_sql}" if label_sql else ""
    parts = con.execute(
        f"select {quote_ident(column)}::varchar, count(*), sum(hash(t))::varchar{label} from {relation} t group by 1"
    ).fetchall()
    columns = [[c[0], c[1]] for c in con.execute(f"describe select * from {relation}").fetchall()]
    count = sum(part[1] for part in parts)
    total = str(sum(int(part[2]) for part in parts))
    by_value = None if any(part[0] is None for part in parts) else {part[0]: list(part[1:]) for part in parts}
    return count, columns, total, by_value


def with_lineage(schema: pa.Schema) -> pa.Schema:
    names = set(schema.names)
    return pa.schema(list(schema) + [f for f in LINEAGE_FIELDS if f.name not in names])


def _table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str] | None:
    rows = con.execute(
        "select column_name from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [RAW_SCHEMA, table],
    ).fetchall()
    return [r[0] for r in rows] or None


def _create_from_schema(con: duckdb.DuckDBPyConnection, qualified: str, schema: pa.Schema) -> None:
    empty = schema.empty_table()  # noqa: F841 - referenced by name in SQL
    con.execute(f"create table {qualified} as select * from empty")


def ensure_tables(con: duckdb.DuckDBPyConnection, raw_tables: dict[str, pa.Schema]) -> list[str]:
    """Create the ledger, rejected rows and a source's raw tables; recreate any whose columns changed.

    A raw table of another shape is recreated empty and its source read again (the caller forces the reload);
    the ledger and the rejected rows keep every row (an unchanged file is not read again to restore them).
    Returns the raw entities that were (re)created, so the caller can force a reload of that source.
    """
    con.execute(f"create schema if not exists {RAW_SCHEMA}")
    recreated = []
    fixed = {"ingestion_files": LEDGER_SCHEMA, "rejected_rows": REJECTED_SCHEMA}
    for entity, schema in {**fixed, **{k: with_lineage(v) for k, v in raw_tables.items()}}.items():
        existing = _table_columns(con, entity)
        if existing == schema.names:
            continue
        if existing is not None and entity in fixed:
            # The ledger and the rejections are not read again from the landing files: a new column keeps the rows.
            _migrate_keeping_rows(con, entity, schema, existing)
            if entity == "rejected_rows" and "project_id" not in existing:
                _fill_project_ids(con)
            continue
        if existing is not None:
            con.execute(f"drop table {raw_table(entity)}")
        _create_from_schema(con, raw_table(entity), schema)
        if entity not in fixed:
            recreated.append(entity)
    # Ledgers written before the outcome 'duplicate' existed filed a copy of a delivery as 'failed'; the copy is
    # not read again (its hash is known), so its row is brought up to date here.
    con.execute(
        f"update {raw_table('ingestion_files')} set outcome = 'duplicate' "
        f"where outcome = 'failed' and error_rule in ({', '.join(map(quote_literal, sorted(NOTHING_TO_DO_RULES)))})"
    )
    return recreated


def _migrate_keeping_rows(con: duckdb.DuckDBPyConnection, entity: str, schema: pa.Schema, existing: list[str]) -> None:
    """Give a table the columns of ``schema``, every row kept: shared columns copied, new ones empty (one
    transaction, so a crash leaves the old table)."""
    staged = f"{entity}__migrating"
    shared = ", ".join(quote_ident(c) for c in schema.names if c in existing)
    con.execute("begin transaction")
    try:
        con.execute(f"drop table if exists {raw_table(staged)}")
        _create_from_schema(con, raw_table(staged), schema)
        con.execute(f"insert into {raw_table(staged)} ({shared}) select {shared} from {raw_table(entity)}")
        con.execute(f"drop table {raw_table(entity)}")
        con.execute(f"alter table {raw_table(staged)} rename to {quote_ident(entity)}")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def _fill_project_ids(con: duckdb.DuckDBPyConnection) -> None:
    """Rejections stored before ``project_id`` existed: the project is read back from the message, which names it
    (``accounting.PROJECT_PREFIX``), so that feedback rewritten for an old delivery lists its projects too."""
    con.execute(
        f"update {raw_table('rejected_rows')} "
        "set project_id = nullif(regexp_extract(message_de, ?, 1), '') "
        "where source_family = 'forecasts' and row_number is not null and project_id is null",
        [PROJECT_PREFIX_PATTERN],
    )


def ledger(con: duckdb.DuckDBPyConnection, source_family: str) -> dict[str, dict]:
    cur = con.execute(f"select * from {raw_table('ingestion_files')} where source_family = ?", [source_family])
    cols = [d[0] for d in cur.description]
    return {row[1]: dict(zip(cols, row)) for row in cur.fetchall()}


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Order and cast a reader's table to the declared raw schema (missing lineage columns as NULL)."""
    if table.schema.equals(schema):  # already conform (most readers build the declared schema): no copy
        return table
    columns = []
    for f in schema:
        if f.name in table.column_names:
            columns.append(table.column(f.name).cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def forget_files(con: duckdb.DuckDBPyConnection, source_family: str, entities, source_files) -> None:
    """Remove every trace of the given files (their rows, rejections and ledger entries)."""
    files = pa.table({"source_file": pa.array(list(source_files), pa.string())})  # noqa: F841
    for entity in entities:
        con.execute(f"delete from {raw_table(entity)} where _source_file in (select source_file from files)")
    for table in ("rejected_rows", "ingestion_files"):
        con.execute(
            f"delete from {raw_table(table)} where source_family = ? "
            "and source_file in (select source_file from files)",
            [source_family],
        )


def store_results(
    con: duckdb.DuckDBPyConnection,
    source_family: str,
    raw_tables: dict[str, pa.Schema],
    results: list[FileResult],
    loaded_at,
) -> None:
    """Replace the rows of each file in ``results`` with what its reader made of it."""
    if not results:
        return
    forget_files(con, source_family, raw_tables, [r.source_file for r in results])
    for entity, schema in raw_tables.items():
        parts = [_conform(r.tables[entity], with_lineage(schema)) for r in results if entity in r.tables]
        parts = [p for p in parts if p.num_rows]
        if parts:
            batch = pa.concat_tables(parts)
            if len(parts) > 1 and batch.num_rows < 10_000 * len(parts):
                # Many small files (forecast workbooks): DuckDB inserts one contiguous chunk several times
                # faster than a chunk per file (1,000 workbooks: 0.9 s -> 0.1 s). Large parts are left
                # as they are (no copy of a register's millions of rows).
                batch = batch.combine_chunks()
            con.execute(f"insert into {raw_table(entity)} by name select * from batch")
    rejected = [record for r in results for record in r.rejection_records()]
    if rejected:
        rejected_tbl = pa.Table.from_pylist(rejected, schema=REJECTED_SCHEMA)  # noqa: F841
        con.execute(f"insert into {raw_table('rejected_rows')} by name select * from rejected_tbl")
    ledger_rows = pa.Table.from_pylist(  # noqa: F841
        [{**r.ledger_record(), "loaded_at": loaded_at} for r in results], schema=LEDGER_SCHEMA
    )
    con.execute(f"insert into {raw_table('ingestion_files')} by name select * from ledger_rows")
