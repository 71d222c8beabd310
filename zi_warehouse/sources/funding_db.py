"""Funding database, database channel: an incremental extract from PostgreSQL (psycopg 3) by an
updated-at watermark, into the same raw tables as the CSV extracts (``sources/funding.py``).

What belongs here: the watermark (kept in the warehouse:
the ledger ``raw.ingestion_files``, source family ``funding_db``), the extraction queries and the
storing of the results. Validation is the file channel's (``funding.validate``, dialect "iso"), so
both channels reject the same things with the same rules.

Every run and entity gives one pseudo file ``funding/db/<entity>@<watermark>``: the rows changed since
the last watermark (``geaendert_am >= watermark``: rows committed in the same second are not lost; the
overlap is harmless because staging merges by key and change time) plus the complete key list of the
table (a key that disappears was deleted). A run that finds nothing newer stores nothing, so running
it twice changes nothing.

Environment (never in the repository):
- ``ZI_FUNDING_DB_DSN``: libpq connection string or URI, e.g. ``host=db.example port=5432 dbname=foerder
  user=zi_reader``; the value ``env`` means "use the standard PG* variables" (PGHOST, PGPORT, PGDATABASE,
  PGUSER, PGPASSWORD or better PGPASSFILE, PGSSLMODE). Unset: the channel is off.
- ``ZI_FUNDING_DB_SCHEMA``: schema of the funding tables (default ``foerderung``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from zi_warehouse import warehouse
from zi_warehouse.accounting import FileResult, Rejection
from zi_warehouse.config import FUNDING_DB_DSN_ENV, funding_db_dsn
from zi_warehouse.sources import funding as spec

#: Ledger family of the database channel (not "funding": the file ingest removes ledger entries of its
#: family whose file is not in the landing folder, and these pseudo files never are).
LEDGER_FAMILY = "funding_db"
SCHEMA_ENV = "ZI_FUNDING_DB_SCHEMA"
DEFAULT_SCHEMA = "foerderung"


def source_file_prefix(entity: spec.Entity) -> str:
    return f"{spec.SOURCE_FAMILY}/db/{entity.name}@"


def watermark(con: duckdb.DuckDBPyConnection, entity: spec.Entity) -> dt.datetime | None:
    """Latest change time already extracted for ``entity`` (from the ledger), None before the first run.

    If the raw table holds no row of the database channel any more (e.g. it was recreated), the
    watermark is dropped and the next run extracts everything again. Expects the raw tables to exist
    (``run`` creates them).
    """
    (value,) = con.execute(
        f"select max(period) from {warehouse.raw_table('ingestion_files')} "
        "where source_family = ? and starts_with(source_file, ?)",
        [LEDGER_FAMILY, source_file_prefix(entity)],
    ).fetchone()
    if value is None:
        return None
    (rows,) = con.execute(
        f"select count(*) from {warehouse.raw_table(entity.raw_table)} where extract_channel = 'db'"
    ).fetchone()
    return dt.datetime.fromisoformat(value) if rows else None


def _previous_keys(con: duckdb.DuckDBPyConnection, entity: spec.Entity) -> set[str] | None:
    table = warehouse.raw_table(spec.KEY_LIST_TABLE)
    rows = con.execute(
        f"select business_key from {table} where entity = ? and extract_channel = 'db' and extract_as_of = "
        f"(select max(extract_as_of) from {table} where entity = ? and extract_channel = 'db')",
        [entity.name, entity.name],
    ).fetchall()
    return {r[0] for r in rows} if rows else None


def _copy_csv(conn: psycopg.Connection, query: sql.Composable) -> bytes:
    """Run ``query`` as COPY ... TO STDOUT (CSV with header): one round trip, parsed by pyarrow."""
    buffer = bytearray()
    copy_sql = sql.SQL("copy ({}) to stdout with (format csv, header true)").format(query)
    with conn.cursor() as cur, cur.copy(copy_sql) as copy:
        for block in copy:
            buffer += block
    return bytes(buffer)


def _select(entity: spec.Entity, schema: str, since: dt.datetime | None) -> sql.Composable:
    # Every column as text in ISO form: the shared validation types and checks them (dialect "iso").
    columns = sql.SQL(", ").join(
        sql.SQL("{}::text as {}").format(sql.Identifier(c.db_column), sql.Identifier(c.name)) for c in entity.columns
    )
    query = sql.SQL("select {} from {}").format(columns, sql.Identifier(schema, entity.db_table))
    if since is not None:
        query += sql.SQL(" where geaendert_am >= {}").format(sql.Literal(since))
    return query + sql.SQL(" order by {}").format(sql.Identifier(entity.column(entity.key).db_column))


@dataclass
class DbExtractSummary:
    ran: bool
    extracted_at: dt.datetime | None = None
    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    watermarks: dict[str, str] = field(default_factory=dict)
    message_de: str = ""

    def as_metadata(self) -> dict:
        return {
            "ran": self.ran,
            "files": len(self.files),
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "watermarks": str(self.watermarks),
            "message_de": self.message_de,
        }


def extract(
    con: duckdb.DuckDBPyConnection,
    conn: psycopg.Connection,
    schema: str = DEFAULT_SCHEMA,
    now: dt.datetime | None = None,
    full: bool = False,
) -> list[FileResult]:
    """Read what changed since each entity's watermark; ``full`` ignores the watermarks."""
    now = (now or dt.datetime.now()).replace(microsecond=0)
    conn.execute("set datestyle to 'ISO, YMD'")
    conn.execute("set intervalstyle to 'iso_8601'")
    pending = []
    for entity in spec.ENTITIES:
        since = None if full else watermark(con, entity)
        data = _copy_csv(conn, _select(entity, schema, since))
        key_col = sql.Identifier(entity.column(entity.key).db_column)
        with conn.cursor() as cur:
            keys = [
                r[0]
                for r in cur.execute(
                    sql.SQL("select {}::text from {}").format(key_col, sql.Identifier(schema, entity.db_table))
                ).fetchall()
            ]
        strings = pacsv.read_csv(
            pa.py_buffer(data),
            convert_options=pacsv.ConvertOptions(column_types={c.name: pa.string() for c in entity.columns}),
        )
        strings = strings.append_column("_row_number", pa.array(range(1, strings.num_rows + 1), pa.int64()))
        extract_info = {
            "extract_channel": "db",
            "extract_kind": "delta" if since else "full",
            "extract_seq": None,
            "extract_as_of": now,
        }
        pending.append((entity, since, strings, keys, extract_info, hashlib.sha256(data).hexdigest()))
    results = []
    for entity, since, strings, keys, info, digest in pending:
        validated = spec.validate(entity, [(strings, info)], "iso")[0]
        has_newer = validated.max_updated_at is not None and (since is None or validated.max_updated_at > since)
        previous = _previous_keys(con, entity)
        keys_changed = previous is None or previous != set(keys)
        if not has_newer and not keys_changed:
            continue
        mark = validated.max_updated_at if has_newer else since
        name = f"{source_file_prefix(entity)}{mark:%Y-%m-%dT%H:%M:%S}" if mark else f"{source_file_prefix(entity)}leer"
        if not has_newer:  # only deletions: keep the earlier pseudo file, add one for this key list
            name += f"+{now:%Y%m%dT%H%M%S}"
        info = {**info, "extract_id": name}
        table = validated.table.set_column(
            validated.table.schema.get_field_index("extract_id"),
            "extract_id",
            pa.array([name] * validated.table.num_rows, pa.string()),
        )
        result = FileResult(
            LEDGER_FAMILY,
            name,
            digest,
            rows_read=strings.num_rows,
            period=mark.isoformat(sep=" ") if mark else None,
            primary_tables=(entity.raw_table,),
            file_size_bytes=None,
        )
        result.tables = {
            entity.raw_table: spec.with_source_file(table, name),
            spec.KEY_LIST_TABLE: spec.with_source_file(spec.key_list_table(entity, keys, info), name),
        }
        key_values = strings.column(entity.key).to_pylist()
        where = f"{schema}.{entity.db_table}"
        result.rejections = [
            Rejection(
                r.row_number,
                r.column,
                r.value_found,
                r.rule,
                f"{where}, {entity.column(entity.key).db_column} = {key_values[r.row_number - 1]}: {r.message_de}",
                sheet=where,
            )
            for r in validated.rejections
        ]
        results.append(result)
    return results


def run(
    con: duckdb.DuckDBPyConnection,
    dsn: str | None = None,
    schema: str | None = None,
    now: dt.datetime | None = None,
    full: bool = False,
    log=print,
) -> DbExtractSummary:
    """Extract from the funding database and store the results in one transaction.

    ``dsn`` defaults to the environment (``ZI_FUNDING_DB_DSN``); without one nothing happens and the
    summary says so.
    """
    dsn = funding_db_dsn() if dsn is None else dsn
    if dsn is None:
        return DbExtractSummary(
            ran=False,
            message_de=(
                f"Kein Datenbankzugang konfiguriert ({FUNDING_DB_DSN_ENV} ist nicht gesetzt): Förderdaten kommen nur über Dateien."
            ),
        )
    schema = schema or os.environ.get(SCHEMA_ENV, DEFAULT_SCHEMA)
    warehouse.ensure_tables(con, spec.RAW_TABLES)
    with psycopg.connect(dsn, autocommit=False) as conn:
        conn.read_only = True
        results = extract(con, conn, schema=schema, now=now, full=full)
        conn.rollback()
    extracted_at = (now or dt.datetime.now()).replace(microsecond=0)
    summary = DbExtractSummary(ran=True, extracted_at=extracted_at)
    for result in results:
        result.check()
        summary.files.append(result.source_file)
        summary.rows_read += result.rows_read
        summary.rows_loaded += result.rows_loaded
        summary.rows_rejected += result.rows_rejected
        summary.watermarks[result.source_file.split("@")[0]] = result.period or ""
    con.execute("begin transaction")
    try:
        warehouse.store_results(con, LEDGER_FAMILY, spec.RAW_TABLES, results, dt.datetime.now(dt.UTC))
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    summary.message_de = (
        f"{len(results)} Extrakt(e) aus der Förderdatenbank übernommen."
        if results
        else "Förderdatenbank: keine Änderungen seit dem letzten Lauf."
    )
    log(summary.message_de)
    return summary
