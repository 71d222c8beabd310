"""PostgreSQL for BI: every mart arrives complete, the read-only role reads the marts and nothing else, the
swap is atomic for readers, re-publishing is idempotent, an unreachable server fails clearly after retries.

Runs against a real, throwaway PostgreSQL server (tests/pg_server.py). A missing PostgreSQL installation is
an error here, never a skip.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import duckdb
import psycopg
import pytest
from psycopg import sql

try:  # tests/ is not a package; pytest puts it on sys.path
    from pg_server import postgres_server
except ImportError:  # pragma: no cover - when tests/ becomes a package
    from tests.pg_server import postgres_server

from zi_warehouse.config import postgres_dsn
from zi_warehouse.publish import publish
from zi_warehouse.publish_postgres import (
    STATE_SCHEMA,
    PostgresPublishError,
    PostgresUnavailable,
    audit_reader,
    postgres_column,
    publish_to_postgres,
)

pytestmark = pytest.mark.postgres

PERSON_EMAIL = "anna.beispiel@example.de"


# --------------------------------------------------------------------------------------------------
# A small warehouse: a few marts of every common type, raw tables with personal data, a staging view
# --------------------------------------------------------------------------------------------------


def build_warehouse(path: Path, version: int = 1) -> None:
    """(Re)write a working warehouse; ``version`` changes row counts and values so two publishes differ."""
    con = duckdb.connect(str(path))
    con.execute(
        "create schema if not exists raw; create schema if not exists staging; create schema if not exists marts"
    )
    con.execute(
        "create or replace table raw.forecasts__projects as select 'P-' || range as project_id, "
        f"'{PERSON_EMAIL}' as contact_email, 'Anna Beispiel' as contact_name from range(5)"
    )
    con.execute(
        "create or replace table raw.rejected_rows as select 'forecasts' as source_family, 'forecasts/a.xlsx' as "
        "source_file, 'Projekte' as sheet, 7::bigint as row_number, 'contact_phone' as column_name, "
        "'0201 123456' as value_found, 'phone_format' as rule, 'Telefonnummer prüfen' as message_de"
    )
    con.execute(
        "create or replace view staging.stg_forecasts__projects as select project_id from raw.forecasts__projects"
    )
    con.execute(
        "create or replace table marts.dim_municipality as select * from (values "
        "('05913000', 'Dortmund', 588250, 280.71, true), ('05117000', 'Mülheim an der Ruhr', 170921, 91.28, true), "
        "('05562004', 'Gladbeck', 75610, 35.91, false)) "
        "as t(municipality_key, municipality_name, population_2020, area_km2, is_zi_member)"
    )
    con.execute(
        "create or replace table marts.mart_budget_year as select (2020 + range)::integer as year, "
        f"cast(25000000 + range * {version} * 1000.25 as decimal(14,2)) as envelope_eur, "
        "cast(range * 333333.33 as decimal(14,2)) as approved_eur, "
        f"cast(null as decimal(14,2)) as paid_eur, range / 7.0 as paid_share_pct from range({3 + version})"
    )
    con.execute(
        "create or replace table marts.fct_measure as select range::bigint as measure_id, "
        "case range % 3 when 0 then '05913000' when 1 then '05117000' else '05562004' end as municipality_key, "
        "date '2020-01-01' + (range % 1500)::integer as approved_on, "
        "timestamp '2021-03-28 01:59:59.123456' + to_seconds(range * 37) as updated_at, "
        "timestamptz '2024-10-27 02:30:00+02' + to_minutes(range) as reported_at, "
        f"cast(range * 1.5 + {version} as decimal(12,2)) as area_m2, range % 5 = 0 as is_designated_area, "
        "case range % 4 when 0 then null when 1 then '' when 2 then 'Mulde; \"Rigole\"' || chr(10) || 'zweite Zeile' "
        "else 'Entsiegelung Straße' end as note, "
        "case when range % 11 = 0 then null else (range * 0.1)::double end as runoff_reduction_mm "
        f"from range({400 * version})"
    )
    con.execute(
        "create or replace table marts.mart_rejected_rows as select source_family, source_file, sheet, row_number, "
        "column_name, '[personenbezogen, ausgeblendet]' as value_found, rule, message_de from raw.rejected_rows"
    )
    con.execute("comment on table marts.fct_measure is 'Eine Zeile je Maßnahme (Grain: measure_id)'")
    con.execute("comment on table marts.mart_budget_year is 'Eine Zeile je Jahr'")
    con.close()


def published_file(tmp_path: Path, version: int = 1) -> Path:
    wh = tmp_path / "warehouse" / "zi.duckdb"
    wh.parent.mkdir(parents=True, exist_ok=True)
    build_warehouse(wh, version)
    return publish(wh, tmp_path / "published").duckdb_path


def duckdb_marts(path: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'marts' order by 1"
            ).fetchall()
        ]
        return {n: con.execute(f'select * from marts."{n}"').fetchall() for n in names}
    finally:
        con.close()


def postgres_marts(dsn: str) -> dict[str, list[tuple]]:
    with psycopg.connect(dsn) as con:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts' order by 1"
            ).fetchall()
        ]
        return {
            n: con.execute(sql.SQL("select * from {}").format(sql.Identifier("marts", n))).fetchall() for n in names
        }


def reader_dsn(pg_dsn: str, role: str, password: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    params.update(user=role, password=password)
    return psycopg.conninfo.make_conninfo(**params)


@pytest.fixture(scope="module")
def pg():
    with postgres_server() as server:  # PostgresNotAvailable is an error, not a skip
        yield server


@pytest.fixture
def db(pg) -> str:
    """A fresh database per test, so tests do not see each other's schemas."""
    return pg.create_database(f"zi_{uuid.uuid4().hex[:10]}")


def new_role() -> str:
    return f"zi_reader_{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------------------------------


def test_every_mart_arrives_with_equal_rows_content_types_and_comments(tmp_path, db):
    # Column comments: dbt's persist_docs puts them in the working warehouse; they reach PostgreSQL through
    # the published file (a release's files are read-only: the comment goes into the warehouse first).
    wh = tmp_path / "warehouse" / "zi.duckdb"
    wh.parent.mkdir(parents=True)
    build_warehouse(wh)
    con = duckdb.connect(str(wh))
    con.execute("comment on column marts.fct_measure.area_m2 is 'Fläche in m²'")
    con.close()
    source = publish(wh, tmp_path / "published").duckdb_path

    result = publish_to_postgres(source, db, reader_role=new_role(), reader_password="pw")

    expected = duckdb_marts(source)
    assert len(expected) >= 4
    assert result.tables == {name: len(rows) for name, rows in expected.items()}
    actual = postgres_marts(db)
    assert set(actual) == set(expected)
    for name, rows in expected.items():
        assert len(actual[name]) == len(rows), name
        assert Counter(actual[name]) == Counter(rows), name  # values and types equal (Decimal, date, tz ...)
    with psycopg.connect(db) as con:
        types = dict(
            con.execute(
                "select column_name, format_type(atttypid, atttypmod) from information_schema.columns c "
                "join pg_attribute a on a.attrelid = ('marts.' || quote_ident(c.table_name))::regclass "
                "and a.attname = c.column_name where table_schema = 'marts' and table_name = 'fct_measure'"
            ).fetchall()
        )
        assert types == {
            "measure_id": "bigint",
            "municipality_key": "text",
            "approved_on": "date",
            "updated_at": "timestamp without time zone",
            "reported_at": "timestamp with time zone",
            "area_m2": "numeric(12,2)",
            "is_designated_area": "boolean",
            "note": "text",
            "runoff_reduction_mm": "double precision",
        }
        assert (
            con.execute("select obj_description('marts.fct_measure'::regclass)")
            .fetchone()[0]
            .startswith("Eine Zeile je Maßnahme")
        )
        assert (
            con.execute(
                "select col_description('marts.fct_measure'::regclass, attnum) from pg_attribute "
                "where attrelid = 'marts.fct_measure'::regclass and attname = 'area_m2'"
            ).fetchone()[0]
            == "Fläche in m²"
        )
        schemas = {
            r[0]
            for r in con.execute(
                "select nspname from pg_namespace where nspname not like 'pg\\_%' and nspname <> 'information_schema'"
            )
        }
        # no staging left, raw never leaves the warehouse; zi_publish: which release each mart holds
        assert schemas == {"public", "marts", STATE_SCHEMA}
        personal = con.execute(
            "select count(*) from information_schema.columns where column_name like 'contact%'"
        ).fetchone()[0]
        assert personal == 0


def test_reader_role_reads_every_mart_and_nothing_else(tmp_path, db, monkeypatch):
    monkeypatch.delenv("ZI_POSTGRES_READER_ROLE", raising=False)
    monkeypatch.setenv("ZI_POSTGRES_READER_PASSWORD", "lesen-2026")
    source = published_file(tmp_path)
    # Data of others in the same database: raw rows with personal data, rejected rows, a public table.
    with psycopg.connect(db, autocommit=True) as admin:
        admin.execute("create schema raw")
        admin.execute("create table raw.forecasts__projects (project_id text, contact_email text)")
        admin.execute("insert into raw.forecasts__projects values ('P-1', %s)", [PERSON_EMAIL])
        admin.execute("create table raw.rejected_rows (source_file text, value_found text)")
        admin.execute("insert into raw.rejected_rows values ('forecasts/a.xlsx', %s)", [PERSON_EMAIL])
        admin.execute("create table public.notes (note text)")
    result = publish_to_postgres(source, db)
    assert result.reader_role == "zi_reader"  # the default name
    assert result.findings == []

    reader = reader_dsn(db, "zi_reader", "lesen-2026")
    with psycopg.connect(reader, autocommit=True) as con:
        for name, rows in result.tables.items():
            query = sql.SQL("select count(*) from {}").format(sql.Identifier("marts", name))
            assert con.execute(query).fetchone()[0] == rows

        refused = [
            "insert into marts.dim_municipality values ('x', 'x', 1, 1, true)",
            "update marts.mart_budget_year set envelope_eur = 0",
            "delete from marts.fct_measure",
            "truncate marts.fct_measure",
            "create table marts.mine (x int)",
            "create table public.mine (x int)",
            "create schema mine",
            "drop table marts.fct_measure",
            "alter table marts.fct_measure add column x int",
            "create view public.v as select 1",
            "select * from raw.forecasts__projects",
            "select * from raw.rejected_rows",
            "select * from public.notes",
        ]
        for statement in refused:
            # Even with the role's read-only default switched off, privileges refuse it.
            with pytest.raises(psycopg.errors.InsufficientPrivilege), con.transaction():
                con.execute("set local default_transaction_read_only = off")
                con.execute("set local transaction_read_only = off")
                con.execute(statement)
        assert con.execute("show default_transaction_read_only").fetchone()[0] == "on"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            con.execute("create temporary table t (x int)")

    # A mart that only a later publish creates is readable too (grants re-applied after each swap), and a
    # table the publishing account adds to marts in between as well (default privileges).
    wh = tmp_path / "warehouse" / "zi.duckdb"
    c = duckdb.connect(str(wh))
    c.execute("create table marts.mart_new_after_first_publish as select 1 as x")
    c.close()
    source = publish(wh, tmp_path / "published").duckdb_path
    publish_to_postgres(source, db)
    with psycopg.connect(db, autocommit=True) as admin:
        admin.execute("create table marts.added_by_publisher as select 42 as answer")
    with psycopg.connect(reader, autocommit=True) as con:
        assert con.execute("select x from marts.mart_new_after_first_publish").fetchone() == (1,)
        assert con.execute("select answer from marts.added_by_publisher").fetchone() == (42,)
    with psycopg.connect(db) as admin:
        assert audit_reader(admin, "zi_reader") == []


def test_a_publisher_without_superuser_sets_the_reader_password_on_every_publish(tmp_path, pg, db):
    # As bi-connections.md sets it up: a publishing account with CREATE on the database and CREATEROLE, no
    # superuser. The reader logs in with its password (scram), so a password that was not set shows.
    publisher, role = f"zi_publisher_{uuid.uuid4().hex[:8]}", new_role()
    with psycopg.connect(db, autocommit=True) as admin:
        admin.execute(sql.SQL("create role {} login createrole").format(sql.Identifier(publisher)))
        admin.execute(
            sql.SQL("grant create on database {} to {}").format(
                sql.Identifier(psycopg.conninfo.conninfo_to_dict(db)["dbname"]), sql.Identifier(publisher)
            )
        )
        # Every DDL statement in the server's log, as where changes are audited: the password must not be there.
        admin.execute(
            sql.SQL("alter database {} set log_statement = 'ddl'").format(
                sql.Identifier(psycopg.conninfo.conninfo_to_dict(db)["dbname"])
            )
        )
    pg.require_password(role)
    as_publisher = reader_dsn(db, publisher, "")
    source = published_file(tmp_path)

    first = publish_to_postgres(source, as_publisher, reader_role=role, reader_password="alt-2026")
    rotated = publish_to_postgres(source, as_publisher, reader_role=role, reader_password="neu-2027")

    assert first.findings == rotated.findings == []
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(reader_dsn(db, role, "alt-2026")).close()
    with psycopg.connect(reader_dsn(db, role, "neu-2027")) as con:
        assert con.execute("select count(*) from marts.fct_measure").fetchone()[0] == 400
        assert con.execute("show default_transaction_read_only").fetchone()[0] == "on"
    with psycopg.connect(db) as admin:
        assert audit_reader(admin, role) == []
    server_log = (pg.data_dir.parent / "server.log").read_text(encoding="utf-8", errors="replace")
    assert f'alter role "{role}" password' in server_log  # logged, as the DBA's audit wants ...
    assert "alt-2026" not in server_log and "neu-2027" not in server_log  # ... but never the password itself


def test_reader_holding_a_transaction_sees_the_complete_old_then_the_complete_new_set(tmp_path, db):
    role = new_role()
    publish_to_postgres(published_file(tmp_path, version=1), db, reader_role=role, reader_password="pw")
    new_source = published_file(tmp_path / "v2", version=2)
    reader = reader_dsn(db, role, "pw")
    names = sorted(duckdb_marts(new_source))
    counts = sql.SQL("select ") + sql.SQL(", ").join(
        sql.SQL("(select count(*) from {})").format(sql.Identifier("marts", n)) for n in names
    )
    old = tuple(len(r) for _, r in sorted(duckdb_marts(tmp_path / "published" / "zi.duckdb").items()))
    new = tuple(len(r) for _, r in sorted(duckdb_marts(new_source).items()))
    assert old != new
    changed = changed_marts(tmp_path / "published" / "zi.duckdb", new_source)  # only these are copied again
    assert 2 <= len(changed) < len(names)

    # A second reader polls all marts in single statements during the whole publish.
    seen: list[tuple] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        try:
            with psycopg.connect(reader, autocommit=True) as con:
                while not stop.is_set():
                    seen.append(con.execute(counts).fetchone())
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    poller = threading.Thread(target=poll)
    poller.start()

    holder = psycopg.connect(reader)  # not autocommit: one transaction across the statements below
    assert holder.execute(counts).fetchone() == old
    outcome: dict = {}
    publisher = threading.Thread(
        target=lambda: outcome.setdefault(
            "result", publish_to_postgres(new_source, db, reader_role=role, swap_timeout_s=30, retry_first_delay_s=0.1)
        )
    )
    publisher.start()
    with psycopg.connect(db, autocommit=True) as admin:
        staging = None
        deadline = time.monotonic() + 20
        while staging is None and time.monotonic() < deadline:
            staging = admin.execute(
                "select n.nspname from pg_namespace n join pg_class c on c.relnamespace = n.oid "
                "where n.nspname like 'marts\\_staging\\_%%' group by 1 having count(*) = %s",
                [len(changed)],
            ).fetchone()
            time.sleep(0.05)
        assert staging is not None, "staging schema never built"
        time.sleep(1.0)
    assert publisher.is_alive()  # the swap waits for the reader's transaction
    polled = len(seen)
    time.sleep(0.5)
    assert len(seen) > polled  # ... without holding locks that would queue other readers behind it
    assert holder.execute(counts).fetchone() == old  # still the complete old set
    with psycopg.connect(reader, autocommit=True) as other:
        for n in changed:  # the staging schema is invisible to the reader
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                other.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(staging[0], n)))
    holder.commit()
    publisher.join(timeout=30)
    assert not publisher.is_alive()
    assert outcome["result"].swap_attempts > 1
    assert outcome["result"].written == changed and set(outcome["result"].unchanged) == set(names) - set(changed)
    assert holder.execute(counts).fetchone() == new  # next transaction: the complete new set
    holder.close()
    time.sleep(0.2)
    stop.set()
    poller.join()
    assert errors == []
    assert set(seen) <= {old, new}, set(seen) - {old, new}  # never a mix
    assert seen[0] == old and seen[-1] == new


def changed_marts(before: Path, after: Path) -> list[str]:
    """Marts whose checksum differs between the releases behind two published files (their manifests)."""
    marts = [json.loads((p.resolve().parent / "manifest.json").read_text())["marts"] for p in (before, after)]
    return sorted(n for n in marts[1] if marts[0].get(n, {}).get("checksum") != marts[1][n]["checksum"])


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
def test_a_snapshot_taken_before_the_publish_keeps_the_old_figures(tmp_path, db, isolation):
    """A REPEATABLE READ (or SERIALIZABLE) transaction that started before a publish and reads the marts only
    afterwards sees the complete old figures, not empty tables: the publish replaces rows, not tables."""
    role = new_role()
    publish_to_postgres(published_file(tmp_path, version=1), db, reader_role=role, reader_password="pw")
    new_source = published_file(tmp_path / "v2", version=2)
    names = sorted(duckdb_marts(new_source))
    counts = sql.SQL("select ") + sql.SQL(", ").join(
        sql.SQL("(select count(*) from {})").format(sql.Identifier("marts", n)) for n in names
    )
    sums = sql.SQL(
        "select (select sum(area_m2) from marts.fct_measure), (select sum(envelope_eur) from marts.mart_budget_year)"
    )
    old = tuple(len(r) for _, r in sorted(duckdb_marts(tmp_path / "published" / "zi.duckdb").items()))
    new = tuple(len(r) for _, r in sorted(duckdb_marts(new_source).items()))
    with psycopg.connect(reader_dsn(db, role, "pw")) as before:
        old_sums = before.execute(sums).fetchone()

    reader = psycopg.connect(reader_dsn(db, role, "pw"))
    reader.execute(f"begin isolation level {isolation}")
    reader.execute("select 1")  # the snapshot is taken here; no mart is touched (no lock held)
    result = publish_to_postgres(new_source, db, reader_role=role, swap_timeout_s=5)
    assert result.swap_attempts == 1  # nothing held the marts: the publish did not wait
    assert reader.execute(counts).fetchone() == old  # the complete old set, no empty table
    assert reader.execute(sums).fetchone() == old_sums
    reader.rollback()
    assert reader.execute(counts).fetchone() == new  # a new transaction: the new set
    assert reader.execute(sums).fetchone() != old_sums
    reader.close()


def test_only_changed_marts_are_copied_and_removed_marts_go(tmp_path, db):
    role = new_role()
    first = publish_to_postgres(published_file(tmp_path, version=1), db, reader_role=role, reader_password="pw")
    assert first.unchanged == [] and first.written == sorted(first.tables)
    again = publish_to_postgres(tmp_path / "published" / "zi.duckdb", db, reader_role=role)
    assert again.written == [] and again.unchanged == sorted(first.tables) and again.swap_attempts == 0
    wh = tmp_path / "warehouse" / "zi.duckdb"
    con = duckdb.connect(str(wh))
    con.execute("drop table marts.mart_rejected_rows")
    con.execute("alter table marts.dim_municipality add column note varchar")  # columns changed: new table
    con.close()
    source = publish(wh, tmp_path / "published").duckdb_path
    third = publish_to_postgres(source, db, reader_role=role)
    assert third.dropped == ["mart_rejected_rows"] and third.written == ["dim_municipality"]
    assert Counter(postgres_marts(db)["dim_municipality"]) == Counter(duckdb_marts(source)["dim_municipality"])
    with psycopg.connect(db) as admin:
        held = dict(admin.execute(f"select mart, release_id from {STATE_SCHEMA}.published_marts").fetchall())
        assert set(held) == set(third.tables) and set(held.values()) == {third.release_id}
        assert audit_reader(admin, role) == []


def _history(path: Path, runs: list[str]) -> None:
    """The quality history in the working warehouse: four checks per run, the last run the newest."""
    con = duckdb.connect(str(path))
    values = ", ".join(f"('{run}', timestamptz '2026-10-01 08:00+00' + to_days({run[1:]}))" for run in runs)
    con.execute(
        "create or replace table marts.mart_data_quality as select run_id, run_started_at, "
        f"run_id = '{runs[-1]}' as is_latest_run, check_no, 'ok' as outcome "
        f"from (values {values}) as r(run_id, run_started_at), range(4) as c(check_no)"
    )
    con.close()


def test_the_quality_history_is_copied_run_by_run(tmp_path, db):
    """Only the runs that changed since the state PostgreSQL holds are copied; the result is the release."""
    role = new_role()
    wh = tmp_path / "warehouse" / "zi.duckdb"
    published_file(tmp_path)
    _history(wh, ["r1", "r2", "r3"])
    first = publish_to_postgres(publish(wh, tmp_path / "published").duckdb_path, db, reader_role=role)
    assert first.runs_replaced == {} and "mart_data_quality" in first.written  # nothing held yet: whole
    _history(wh, ["r1", "r2", "r3", "r4"])
    source = publish(wh, tmp_path / "published").duckdb_path
    second = publish_to_postgres(source, db, reader_role=role)
    assert second.written == ["mart_data_quality"]
    assert second.runs_replaced == {"mart_data_quality": 2}  # r4 new, r3 no longer the newest
    assert Counter(postgres_marts(db)["mart_data_quality"]) == Counter(duckdb_marts(source)["mart_data_quality"])
    _history(wh, ["r2", "r3", "r4"])  # r1 gone
    source = publish(wh, tmp_path / "published").duckdb_path
    third = publish_to_postgres(source, db, reader_role=role)
    assert third.runs_replaced == {"mart_data_quality": 1}
    assert Counter(postgres_marts(db)["mart_data_quality"]) == Counter(duckdb_marts(source)["mart_data_quality"])
    with psycopg.connect(db) as admin:
        runs = admin.execute(
            f"select runs from {STATE_SCHEMA}.published_marts where mart = 'mart_data_quality'"
        ).fetchone()[0]
        assert sorted(runs) == ["r2", "r3", "r4"]
        admin.execute("delete from marts.mart_data_quality where run_id = 'r2'")  # changed by hand
    _history(wh, ["r2", "r3", "r4", "r5"])
    source = publish(wh, tmp_path / "published").duckdb_path
    fourth = publish_to_postgres(source, db, reader_role=role)
    assert fourth.runs_replaced == {}  # the runs did not add up: written whole
    assert Counter(postgres_marts(db)["mart_data_quality"]) == Counter(duckdb_marts(source)["mart_data_quality"])


def test_republishing_is_idempotent_and_cleans_up_killed_runs(tmp_path, db):
    role = new_role()
    source = published_file(tmp_path)
    first = publish_to_postgres(source, db, reader_role=role, reader_password="pw")
    before = postgres_marts(db)
    with psycopg.connect(db, autocommit=True) as admin:  # leftover of a killed run
        admin.execute("create schema marts_staging_deadbeef0000")
        admin.execute("create table marts_staging_deadbeef0000.half (x int)")
    second = publish_to_postgres(source, db, reader_role=role, reader_password="pw")
    assert second.tables == first.tables
    after = postgres_marts(db)
    assert {n: Counter(r) for n, r in after.items()} == {n: Counter(r) for n, r in before.items()}
    with psycopg.connect(db) as admin:
        schemas = [r[0] for r in admin.execute("select nspname from pg_namespace where nspname like 'marts%'")]
        assert schemas == ["marts"]
        grants = admin.execute(
            "select count(*) from information_schema.role_table_grants where grantee = %s and privilege_type = 'SELECT'",
            [role],
        ).fetchone()[0]
        assert grants == len(first.tables)
        assert audit_reader(admin, role) == []


def test_a_failed_publish_leaves_the_previous_marts_in_place(tmp_path, db):
    role = new_role()
    publish_to_postgres(published_file(tmp_path), db, reader_role=role, reader_password="pw")
    before = postgres_marts(db)
    wh = tmp_path / "warehouse" / "zi.duckdb"
    build_warehouse(wh, version=2)
    con = duckdb.connect(str(wh))  # a NUL character: PostgreSQL text cannot hold it, COPY fails mid-way
    con.execute("create table marts.zz_broken as select 'a' || chr(0) || 'b' as note")
    con.close()
    source = publish(wh, tmp_path / "published").duckdb_path
    with pytest.raises(PostgresPublishError, match="zz_broken"):
        publish_to_postgres(source, db, reader_role=role)
    after = postgres_marts(db)
    assert {n: Counter(r) for n, r in after.items()} == {n: Counter(r) for n, r in before.items()}
    with psycopg.connect(db) as admin:
        assert [r[0] for r in admin.execute("select nspname from pg_namespace where nspname like 'marts%'")] == [
            "marts"
        ]


def test_unreachable_server_fails_clearly_after_bounded_retries(tmp_path):
    source = published_file(tmp_path)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    retries: list[str] = []
    started = time.perf_counter()
    with pytest.raises(PostgresUnavailable) as error:
        publish_to_postgres(
            source,
            f"postgresql://zi@127.0.0.1:{port}/zi",
            connect_attempts=3,
            retry_first_delay_s=0.2,
            progress=retries.append,
        )
    elapsed = time.perf_counter() - started
    message = str(error.value)
    assert "nicht erreichbar" in message and "3 Versuchen" in message and f"127.0.0.1:{port}" in message
    assert "DuckDB-Datei ist davon nicht betroffen" in message
    assert len([r for r in retries if "neuer Versuch" in r]) == 2
    assert 0.6 <= elapsed < 10  # 0.2 s + 0.4 s backoff, bounded
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest  # the DuckDB publish is untouched


def test_personal_columns_never_reach_postgres(tmp_path):
    wh = tmp_path / "wh.duckdb"
    build_warehouse(wh)
    con = duckdb.connect(str(wh))
    con.execute("create table marts.mart_leak as select project_id, contact_email from raw.forecasts__projects")
    con.close()
    source = publish(wh, tmp_path / "published").duckdb_path
    # Refused before any connection is attempted (the DSN points nowhere).
    with pytest.raises(PostgresPublishError, match="Personenbezogene Spalten.*mart_leak.contact_email"):
        publish_to_postgres(source, "postgresql://zi@127.0.0.1:1/zi", connect_attempts=1)


def test_type_mapping():
    con = duckdb.connect()
    rel = con.sql(
        "select 1.5::decimal(14,2) a, 1::tinyint b, 1::ubigint c, 1::hugeint d, 'x'::blob e, [1] f, "
        "{'k': 1} g, uuid() h, interval 1 day i, time '01:00' j, 1::float k"
    )
    mapped = {name: postgres_column(name, t)[0] for name, t in zip(rel.columns, rel.types)}
    assert mapped == {
        "a": "numeric(14,2)",
        "b": "smallint",
        "c": "numeric(20,0)",
        "d": "numeric(39,0)",
        "e": "bytea",
        "f": "jsonb",
        "g": "jsonb",
        "h": "uuid",
        "i": "interval",
        "j": "time",
        "k": "real",
    }


def test_dsn_comes_from_the_environment():
    assert postgres_dsn({}) is None
    assert postgres_dsn({"PGPORT": "5433"}) is None  # a port alone names no server
    assert postgres_dsn({"PGHOST": "db.intern"}) == ""  # libpq reads the PG* variables
    assert postgres_dsn({"ZI_POSTGRES_DSN": "postgresql://bi@db/zi", "PGHOST": "x"}) == "postgresql://bi@db/zi"


def test_dagster_asset_publishes_the_published_file_or_says_it_has_nothing_to_do(tmp_path, pg, db, monkeypatch):
    from dagster import build_asset_context

    from dagster_zi import serving

    assert [a.key.to_user_string() for a in serving.assets] == ["published_postgres"]
    assert serving.asset_checks == serving.sensors == serving.schedules == serving.jobs == []
    spec = serving.published_postgres
    assert spec.group_names_by_key[spec.key] == "publish"
    assert [d.asset_key.path for d in spec.specs_by_key[spec.key].deps] == [["published_warehouse"]]

    data_dir = tmp_path / "data"
    published_file(data_dir)
    # The working warehouse is held by a writer (a build in progress): the asset never needs it.
    writer = duckdb.connect(str(data_dir / "warehouse" / "zi.duckdb"))
    monkeypatch.setenv("ZI_DATA_DIR", str(data_dir))
    for name in ("ZI_POSTGRES_DSN", "PGHOST", "PGHOSTADDR", "PGSERVICE", "PGDATABASE"):
        monkeypatch.delenv(name, raising=False)
    context = build_asset_context()  # creating one costs seconds (an ephemeral instance): build it once
    skipped = serving.published_postgres(context)
    assert skipped.metadata["status"] == "übersprungen"

    monkeypatch.setenv("ZI_POSTGRES_DSN", db)
    monkeypatch.setenv("ZI_POSTGRES_READER_ROLE", new_role())
    done = serving.published_postgres(context)
    writer.close()
    assert done.metadata["status"] == "veröffentlicht"
    assert done.metadata["marts"] == len(postgres_marts(db)) >= 4

    # The build's summary says where it published and what the DBA has to do: here a publishing account
    # without CREATEROLE, asked to set the reader's password (dagster_zi/runner.py reads the materialization).
    from dagster_zi.runner import BuildReport, _report_postgres

    report = BuildReport(success=True, run_id="r")
    _report_postgres(report, skipped.metadata)
    assert report.postgres == "" and report.postgres_findings == []
    publisher, role, dbname = (f"zi_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("publisher", "reader", "db"))
    other_db = pg.create_database(dbname)
    with psycopg.connect(other_db, autocommit=True) as admin:
        admin.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))  # by the DBA, once
        admin.execute(sql.SQL("create role {} login").format(sql.Identifier(publisher)))
        admin.execute(
            sql.SQL("grant create on database {} to {}").format(sql.Identifier(dbname), sql.Identifier(publisher))
        )
    monkeypatch.setenv("ZI_POSTGRES_DSN", reader_dsn(other_db, publisher, ""))
    monkeypatch.setenv("ZI_POSTGRES_READER_ROLE", role)
    monkeypatch.setenv("ZI_POSTGRES_READER_PASSWORD", "Leser-Geheimnis-4711")
    _report_postgres(report, serving.published_postgres(context).metadata)
    assert report.postgres.startswith("PostgreSQL ") and "Schema marts" in report.postgres, report.postgres
    [password] = [f for f in report.postgres_findings if f.startswith("Passwort der Rolle")]
    assert "CREATEROLE" in password and "ZI_POSTGRES_READER_PASSWORD leeren" in password, password
    # The refused statement is in the server's log (failed statements are logged by default), its password is not.
    server_log = (pg.data_dir.parent / "server.log").read_text(encoding="utf-8", errors="replace")
    assert f'alter role "{role}" password' in server_log and "Leser-Geheimnis-4711" not in server_log
