"""Demo funding database in PostgreSQL: the schema of the approving body's system and the demo data in it.

What belongs here: the DDL of schema ``foerderung`` (tables ``antrag``, ``bescheid``,
``aenderungsbescheid``, ``zahlung``, ``massnahme``; column names from ``sources/funding.py``'s entity
specification, every table with ``geaendert_am``), and ``load`` which upserts the database state as of a
moment, rendered by the same function as the CSV extracts (``funding_extracts.database_rows``) - so the
two channels can be proven to give the same staged tables.
"""

from __future__ import annotations

import datetime as dt

import psycopg
from psycopg import sql

from zi_warehouse.demo.funding_extracts import database_rows
from zi_warehouse.demo.programme import LAST_QUARTER, DemoProgramme, quarter_end
from zi_warehouse.sources import funding as spec

SCHEMA = "foerderung"

_PG_TYPES = {
    "text": "text",
    "date": "date",
    "timestamp": "timestamp(0) without time zone",
    "eur": "numeric(15,2)",
    "number": "numeric(14,4)",
    "int": "integer",
    "bool": "boolean",
    "municipality": "text",
    "measure_type": "text",
    "status": "text",
    "owner_type": "text",
}


def ddl(schema: str = SCHEMA) -> list[str]:
    statements = [f"create schema if not exists {schema}"]
    for entity in spec.ENTITIES:
        cols = []
        for col in entity.columns:
            null = " not null" if col.required else ""
            cols.append(f"{col.db_column} {_PG_TYPES[col.kind]}{null}")
        key = entity.column(entity.key).db_column
        statements.append(
            f"create table if not exists {schema}.{entity.db_table} ({', '.join(cols)}, primary key ({key}))"
        )
        # the extraction reads by watermark: an index on the change time keeps that cheap
        statements.append(
            f"create index if not exists {entity.db_table}_geaendert_am on {schema}.{entity.db_table} (geaendert_am)"
        )
    return statements


def create_schema(conn: psycopg.Connection, schema: str = SCHEMA) -> None:
    for statement in ddl(schema):
        conn.execute(statement)


def load(
    dsn: str, programme: DemoProgramme, seed: int = 7, as_of: dt.datetime | None = None, schema: str = SCHEMA
) -> dict[str, int]:
    """Create the schema and upsert the database state as of ``as_of`` (default: end of the demo's last
    quarter). Rows whose ``geaendert_am`` is unchanged are left alone, so loading twice changes nothing.
    Returns the number of rows written per table."""
    as_of = as_of or dt.datetime.combine(quarter_end(*LAST_QUARTER), dt.time(23, 59, 59))
    state = database_rows(programme, as_of, seed)
    written = {}
    with psycopg.connect(dsn) as conn:
        create_schema(conn, schema)
        for entity in spec.ENTITIES:
            columns = [c.db_column for c in entity.columns]
            key = entity.column(entity.key).db_column
            statement = sql.SQL(
                "insert into {table} ({cols}) values ({vals}) on conflict ({key}) do update set {sets} "
                "where {table}.geaendert_am is distinct from excluded.geaendert_am"
            ).format(
                table=sql.Identifier(schema, entity.db_table),
                cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
                vals=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                key=sql.Identifier(key),
                sets=sql.SQL(", ").join(
                    sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c)) for c in columns if c != key
                ),
            )
            rows = [[r.get(c.name) for c in entity.columns] for r in state[entity.name]]
            with conn.cursor() as cur:
                cur.executemany(statement, rows)
            written[entity.db_table] = len(rows)
        conn.commit()
    return written
