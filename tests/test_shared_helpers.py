"""The shared small helpers: German notation (zi_warehouse/german.py) and the DuckDB helpers of
zi_warehouse/warehouse.py (``rows``, ``table_exists``) that the reports read the marts with."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import duckdb
import pytest

from zi_warehouse.german import format_date, format_datetime, format_number
from zi_warehouse.warehouse import rows, table_exists


@pytest.mark.parametrize(
    ("value", "kwargs", "text"),
    [
        (1234.5, {"decimals": 1}, "1.234,5"),
        (1234567, {}, "1.234.567"),
        (0.125, {"decimals": 2, "unit": "%"}, "0,12\u00a0%"),  # round half to even, as Python's format does
        (Decimal("2.5"), {"decimals": 3, "unit": "pp"}, "2,500\u00a0pp"),
        (-1234.5, {"decimals": 2}, "-1.234,50"),
        (-0.0004, {"decimals": 2}, "0,00"),  # no "-0,00"
        (-0.4, {}, "0"),
        (1234.5, {"decimals": 2, "thousands": False}, "1234,50"),
        (None, {"unit": "EUR"}, "–"),
        (math.nan, {"decimals": 1}, "–"),
        (True, {}, "ja"),
        (False, {}, "nein"),
    ],
)
def test_format_number_writes_german_notation(value, kwargs, text):
    assert format_number(value, **kwargs) == text


def test_dates_and_moments_are_written_the_german_way_with_the_zone_named():
    assert format_date(dt.date(2026, 3, 9)) == "09.03.2026"
    utc = dt.UTC
    # Local time of the programme (Europe/Berlin) whatever zone the value comes in, with the German zone name.
    assert format_datetime(dt.datetime(2026, 7, 1, 12, 5, tzinfo=utc)) == "01.07.2026 14:05 MESZ"
    assert format_datetime(dt.datetime(2026, 12, 31, 23, 30, tzinfo=utc)) == "01.01.2027 00:30 MEZ"
    new_york = dt.timezone(dt.timedelta(hours=-5))
    assert format_datetime(dt.datetime(2026, 3, 29, 0, 59, tzinfo=utc)) == "29.03.2026 01:59 MEZ"
    assert format_datetime(dt.datetime(2026, 3, 28, 20, 0, tzinfo=new_york)) == "29.03.2026 03:00 MESZ"


def test_rows_returns_one_dict_per_row_and_binds_parameters():
    con = duckdb.connect()
    con.execute("create table t as select * from (values (1, 'a'), (2, 'b'), (3, 'c')) v(n, s)")
    assert rows(con, "select n, s from t where n >= ? order by n", [2]) == [{"n": 2, "s": "b"}, {"n": 3, "s": "c"}]
    assert rows(con, "select n from t where n > 9") == []


def test_table_exists_sees_tables_and_views_of_its_own_database_only():
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute("create table marts.t (n int)")
    con.execute("create view marts.v as select 1 as n")
    con.execute("attach ':memory:' as other")
    con.execute("create schema other.marts")
    con.execute("create table other.marts.elsewhere (n int)")
    assert table_exists(con, "marts", "t") and table_exists(con, "marts", "v")
    assert not table_exists(con, "marts", "missing")
    assert not table_exists(con, "raw", "t")
    assert not table_exists(con, "marts", "elsewhere")


def test_table_exists_looks_into_an_attached_database_when_named():
    con = duckdb.connect()
    con.execute("attach ':memory:' as other")
    con.execute("create schema other.raw")
    con.execute("create table other.raw.ingestion_files (n int)")
    assert table_exists(con, "raw", "ingestion_files", database="other")
    assert not table_exists(con, "raw", "ingestion_files")
    assert not table_exists(con, "raw", "rejected_rows", database="other")


def test_german_order_and_quarters_as_people_write_them():
    from zi_warehouse.german import format_quarter, sort_key

    names = ["Breckerfeld", "Bönen", "bochum", "Essen", "Ennepetal", "Gladbeck", "Straße"]
    assert sorted(names, key=sort_key) == ["bochum", "Bönen", "Breckerfeld", "Ennepetal", "Essen", "Gladbeck", "Straße"]
    assert format_quarter("2026-Q4") == "Q4/2026" and format_quarter("ohne Quartal") == "ohne Quartal"


def test_a_value_is_shown_to_the_sender_as_typed():
    """A count or an area with the decimals it was typed with, an amount with its cents, German-style."""
    from zi_warehouse.forecasts import validation as v

    trees = next(r for r in v.rules() if r.rule == "trees_non_negative")
    area = next(r for r in v.rules() if r.column == "expected_disconnected_area_m2")
    cost = next(r for r in v.rules() if r.rule == "total_cost_range")
    assert v.display({"expected_trees": [-3.0, -2.5]}, 0, trees) == "-3"
    assert v.display({"expected_trees": [-3.0, -2.5]}, 1, trees) == "-2,5"
    assert v.display({"expected_disconnected_area_m2": [-1405.25]}, 0, area) == "-1.405,25"
    assert v.display({"total_cost_eur": [-5.0]}, 0, cost) == "-5,00"
