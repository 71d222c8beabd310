"""BI connectivity and SQL for controllers: what Superset/Metabase/DBeaver/Power BI and `zi sql` rely on.

- SQLAlchemy through duckdb-engine opens the published file read-only, reflects and queries every mart
  (the settings docs/bi-connections.md gives to Superset);
- psycopg reads every mart from PostgreSQL as the read-only role (what a BI tool does over the network);
- `zi sql` answers a one-off query, a query file, the console, writes CSV and Excel, and keeps answering
  while another process writes the working warehouse and a publish swaps the published file.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb
import openpyxl
import psycopg
import pytest
import sqlalchemy
from psycopg import sql
from sqlalchemy import create_engine, func, inspect, select, text
from typer.testing import CliRunner

try:  # tests/ is not a package; pytest puts it on sys.path
    from pg_server import postgres_server
    from test_serving_postgres import build_warehouse, duckdb_marts, published_file, reader_dsn
except ImportError:  # pragma: no cover - when tests/ becomes a package
    from tests.pg_server import postgres_server
    from tests.test_serving_postgres import build_warehouse, duckdb_marts, published_file, reader_dsn

from zi_warehouse.cli import app
from zi_warehouse.publish_postgres import publish_to_postgres

REPO_ROOT = Path(__file__).resolve().parent.parent
ZI = Path(sys.executable).parent / "zi"


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A ZI_DATA_DIR with a working warehouse and its published copy."""
    root = tmp_path / "data"
    published_file(root)
    monkeypatch.setenv("ZI_DATA_DIR", str(root))
    monkeypatch.setenv("COLUMNS", "250")  # rich tables: no truncated cells in the captured output
    return root


def zi_sql(*args: str, input: str | None = None):
    return CliRunner().invoke(app, ["sql", *args], input=input)


# --------------------------------------------------------------------------------------------------
# SQLAlchemy / duckdb-engine (Superset, any SQLAlchemy client) and psycopg (PostgreSQL)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["connect_args", "superset_uri"])
def test_sqlalchemy_duckdb_engine_reflects_and_queries_every_mart_read_only(data_dir, style):
    path = data_dir / "published" / "zi.duckdb"
    if style == "connect_args":
        engine = create_engine(f"duckdb:///{path}", connect_args={"read_only": True})
    else:  # exactly the URI docs/bi-connections.md gives for Superset
        engine = create_engine(f"duckdb:///{path.resolve()}?access_mode=read_only")
    expected = duckdb_marts(path)
    con = duckdb.connect(str(path), read_only=True)  # closed before the engine opens the file its own way
    column_names = {
        name: [
            r[0]
            for r in con.execute(
                "select column_name from duckdb_columns() where schema_name = 'marts' and table_name = ? "
                "order by column_index",
                [name],
            ).fetchall()
        ]
        for name in expected
    }
    con.close()
    try:
        inspector = inspect(engine)
        assert sorted(inspector.get_table_names(schema="marts")) == sorted(expected)
        for name, rows in expected.items():
            columns = inspector.get_columns(name, schema="marts")  # needs SQLAlchemy < 2.1 with duckdb-engine
            assert [c["name"] for c in columns] == column_names[name]
            assert inspector.get_table_comment(name, schema="marts") is not None
            # A table from the reflected columns (Table(autoload_with=...) also reflects primary keys, which
            # duckdb-engine 0.17 cannot do on DuckDB 2.0: REGCLASS; the marts carry no key constraints).
            table = sqlalchemy.table(name, *[sqlalchemy.column(c["name"]) for c in columns], schema="marts")
            with engine.connect() as conn:
                assert conn.execute(select(func.count()).select_from(table)).scalar_one() == len(rows)
                assert sorted(map(tuple, conn.execute(select(table)).all()), key=repr) == sorted(rows, key=repr)
        with engine.connect() as conn, pytest.raises(sqlalchemy.exc.DBAPIError, match="read-only"):
            conn.execute(text("create table marts.bi_scratch (x integer)"))
    finally:
        engine.dispose()


def test_psycopg_reads_every_mart_from_postgres_as_the_read_only_role(data_dir):
    path = data_dir / "published" / "zi.duckdb"
    expected = duckdb_marts(path)
    role = f"zi_reader_{uuid.uuid4().hex[:8]}"
    with postgres_server() as pg:
        publish_to_postgres(path, pg.dsn, reader_role=role, reader_password="bi-passwort")
        with psycopg.connect(reader_dsn(pg.dsn, role, "bi-passwort")) as con:
            listed = [
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables where table_schema = 'marts' order by 1"
                )
            ]
            assert listed == sorted(expected)
            for name, rows in expected.items():
                got = con.execute(sql.SQL("select * from {}").format(sql.Identifier("marts", name))).fetchall()
                assert sorted(got, key=repr) == sorted(rows, key=repr)


# --------------------------------------------------------------------------------------------------
# zi sql
# --------------------------------------------------------------------------------------------------


def test_zi_sql_answers_a_one_off_query_and_a_query_file(data_dir, tmp_path):
    result = zi_sql("select municipality_name, population_2020 from marts.dim_municipality order by 2 desc")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "│" in line]
    assert "Dortmund" in lines[0] and "588250" in lines[0]
    assert "Mülheim an der Ruhr" in lines[1]

    query = tmp_path / "budget.sql"
    query.write_text(
        "-- Budget je Jahr\nselect year, envelope_eur\nfrom marts.mart_budget_year\nwhere year >= 2021\norder by year;\n",
        encoding="utf-8",
    )
    result = zi_sql("--file", str(query))
    assert result.exit_code == 0, result.output
    years = re.findall(r"│\s*(20\d\d)\s*│", result.output)
    assert years == ["2021", "2022", "2023"]


def test_zi_sql_writes_csv_for_german_excel(data_dir, tmp_path):
    out = tmp_path / "massnahmen.csv"
    result = zi_sql(
        "select measure_id, municipality_key, area_m2, note from marts.fct_measure order by measure_id",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "400 Zeilen geschrieben" in result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens UTF-8 with umlauts correctly
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines(keepends=True), delimiter=";"))
    assert rows[0] == ["measure_id", "municipality_key", "area_m2", "note"]
    body = rows[1:]
    assert len(body) == 400
    assert body[1][:3] == ["1", "05117000", "2,50"]  # key kept as text with its leading zero, decimal comma, the scale
    assert body[2][3] == 'Mulde; "Rigole"\nzweite Zeile'  # separator, quotes and line break survive


def test_zi_sql_writes_excel(data_dir, tmp_path):
    out = tmp_path / "budget.xlsx"
    result = zi_sql(
        "select year, envelope_eur, paid_eur, paid_share_pct from marts.mart_budget_year order by year",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    sheet = openpyxl.load_workbook(out).active
    values = list(sheet.iter_rows(values_only=True))
    # This warehouse has no column descriptions: the keys are the headers (German ones: test_sql_console.py).
    assert values[0] == ("year", "envelope_eur", "paid_eur", "paid_share_pct")
    con = duckdb.connect(str(data_dir / "published" / "zi.duckdb"), read_only=True)
    expected = con.execute(
        "select year, envelope_eur, paid_share_pct from marts.mart_budget_year order by year"
    ).fetchall()
    con.close()
    assert len(values) == len(expected) + 1
    for row, (year, envelope, share) in zip(values[1:], expected):
        assert row[0] == year and row[1] == pytest.approx(float(envelope)) and row[2] is None
        assert row[3] == pytest.approx(share)


def test_zi_sql_writes_excel_with_timestamps_with_time_zone(data_dir, tmp_path):
    out = tmp_path / "zeiten.xlsx"
    result = zi_sql(
        "select measure_id, reported_at from marts.fct_measure order by measure_id limit 2", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    values = list(openpyxl.load_workbook(out).active.iter_rows(values_only=True))
    assert str(values[1][1]) == "2024-10-27 02:30:00"  # local time Europe/Berlin, as controllers read it


def test_zi_sql_console(data_dir):
    result = zi_sql(input=".tables\nselect count(*) as n\nfrom marts.fct_measure;\nselect * from nope;\n.quit\n")
    assert result.exit_code == 0, result.output
    for name in duckdb_marts(data_dir / "published" / "zi.duckdb"):
        assert name in result.output
    assert re.search(r"│\s*400\s*│", result.output)
    assert "Fehler:" in result.output  # a wrong query does not end the console


def test_zi_sql_cannot_change_the_published_warehouse(data_dir):
    path = data_dir / "published" / "zi.duckdb"
    before = path.read_bytes()
    for statement in (
        "create table marts.x (a integer)",
        "delete from marts.fct_measure",
        "drop table marts.fct_measure",
    ):
        result = zi_sql(statement)
        assert result.exit_code != 0
    assert path.read_bytes() == before


def test_zi_sql_reports_a_wrong_query_in_german_without_a_traceback(data_dir):
    result = zi_sql("select * from marts.gibt_es_nicht")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "Fehler" in result.output and "gibt_es_nicht" in result.output


WRITER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])  # a build in progress: the pipeline's one writer holds the file
con.execute("create table if not exists raw.build_progress (step integer)")
print("bereit", flush=True)
step = 0
while step < 4000 and not sys.stdin.closed:
    con.execute("insert into raw.build_progress values (?)", [step]); step += 1
    time.sleep(0.005)
"""

PUBLISHER = """
import sys
from pathlib import Path
from zi_warehouse.publish import publish
sources = [Path(sys.argv[1]), Path(sys.argv[2])]
published, stop = Path(sys.argv[3]), Path(sys.argv[4])
print("bereit", flush=True)
rounds = 0
while not stop.exists() and rounds < 500:  # bounded even if the test dies
    publish(sources[rounds % 2], published)
    rounds += 1
print(rounds, flush=True)
"""


def test_zi_sql_answers_while_the_warehouse_is_written_and_the_published_file_is_swapped(data_dir, tmp_path):
    published = data_dir / "published"
    working = data_dir / "warehouse" / "zi.duckdb"
    small, large = tmp_path / "v1.duckdb", tmp_path / "v2.duckdb"
    build_warehouse(small, version=1)  # fct_measure: 400 rows
    build_warehouse(large, version=2)  # fct_measure: 800 rows
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(working)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    publisher = None
    try:
        assert writer.stdout.readline().strip() == "bereit"
        with pytest.raises(duckdb.IOException, match="[Ll]ock"):  # the working file is really held
            duckdb.connect(str(working), read_only=True)
        zi_sql("select 1")  # imports done before the race starts (the first call loads pandas)
        stop = tmp_path / "stop"
        publisher = subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, str(small), str(large), str(published), str(stop)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert publisher.stdout.readline().strip() == "bereit"
        answers, versions = [], set()
        deadline = time.monotonic() + 30
        while (len(versions) < 4 or len(answers) < 10) and time.monotonic() < deadline:
            stat = (published / "zi.duckdb").stat()
            versions.add((stat.st_ino, stat.st_mtime_ns))  # inode numbers alone are reused
            result = zi_sql("select count(*) as n from marts.fct_measure")
            assert result.exit_code == 0, result.output
            answers.append(int(re.search(r"│\s*(\d+)\s*│", result.output).group(1)))
        assert writer.poll() is None  # the writer held the working file the whole time
        stop.touch()
        rounds = int(publisher.communicate(timeout=60)[0].strip())
    finally:
        writer.stdin.close()
        writer.kill()
        writer.wait()
        if publisher is not None:
            publisher.kill()
            publisher.wait()
    print(f"{len(answers)} Abfragen, {len(versions)} Dateifassungen gesehen, {rounds} Veröffentlichungen")
    assert set(answers) <= {400, 800}, answers  # always a complete published copy
    assert len(versions) >= 4, "the published file was not swapped during the queries"
