"""Funding database, database channel: incremental extraction from a real (throwaway) PostgreSQL server."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pytest

from zi_warehouse import config, warehouse
from zi_warehouse.demo import funding_database, funding_extracts
from zi_warehouse.demo.programme import build_programme
from zi_warehouse.ingest import ingest
from zi_warehouse.sources import funding, funding_db

try:
    from tests.pg_server import postgres_server
except ImportError:  # pytest puts tests/ itself on sys.path
    from pg_server import postgres_server

SEED = 7
END_2022 = dt.datetime(2022, 12, 31, 23, 59, 59)
NOW = dt.datetime(2026, 10, 5, 6, 0, 0)


@pytest.fixture(scope="module")
def pg():
    """A throwaway PostgreSQL 15 server for this module (fails, never skips, if PostgreSQL is missing)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def programme():
    return build_programme(0.05, SEED)


_db_counter = iter(range(1000))


@pytest.fixture
def funding_dsn(pg) -> str:
    """A fresh, empty database per test."""
    return pg.create_database(f"foerder_{next(_db_counter)}")


def _current_versions(con, channel: str) -> dict[str, list[tuple]]:
    """Latest version per business key of each raw entity table, business columns only."""
    out = {}
    for entity in funding.ENTITIES:
        cols = [c.name for c in entity.columns] + (["municipality_key"] if entity.name == "applications" else [])
        out[entity.name] = con.execute(
            f"select {', '.join(cols)} from raw.{entity.raw_table} where extract_channel = ? "
            f"qualify row_number() over (partition by {entity.key} order by updated_at desc, extract_as_of desc) = 1 "
            f"order by {entity.key}",
            [channel],
        ).fetchall()
    return out


def test_extract_is_incremental_by_watermark_and_idempotent(funding_dsn, programme, tmp_path):
    funding_database.load(funding_dsn, programme, SEED, as_of=END_2022)
    db = tmp_path / "zi.duckdb"
    with warehouse.connect(db) as con:
        first = funding_db.run(con, funding_dsn, now=NOW, log=lambda m: None)
        state_2022 = funding_extracts.database_rows(programme, END_2022, SEED)
        assert first.rows_read == first.rows_loaded == sum(len(v) for v in state_2022.values())
        assert con.execute("select distinct extract_kind from raw.funding__applications").fetchall() == [("full",)]
        marks = {e.name: funding_db.watermark(con, e) for e in funding.ENTITIES}
        assert marks["applications"] == max(r["updated_at"] for r in state_2022["applications"])

        # nothing changed: nothing stored
        again = funding_db.run(con, funding_dsn, now=NOW, log=lambda m: None)
        assert again.files == [] and again.rows_read == 0

        # the database moves on to the end of the demo: only rows changed since the watermark come over
        funding_database.load(funding_dsn, programme, SEED)
        second = funding_db.run(con, funding_dsn, now=NOW + dt.timedelta(days=1), log=lambda m: None)
        final = funding_extracts.database_rows(programme, dt.datetime(2026, 9, 30, 23, 59, 59), SEED)
        changed = sum(1 for e in funding.ENTITIES for r in final[e.name] if r["updated_at"] >= marks[e.name])
        assert second.rows_read == changed < sum(len(v) for v in final.values())
        assert all(f.startswith("funding/db/") and "@" in f for f in second.files)
        ledger = warehouse.ledger(con, funding_db.LEDGER_FAMILY)
        assert len(ledger) == 10 and all(r["outcome"] == "loaded" for r in ledger.values())
        # the file ingest of the same family name must not remove the database channel's rows
        ingest(con, funding, tmp_path / "landing", log=lambda m: None)
        assert len(warehouse.ledger(con, funding_db.LEDGER_FAMILY)) == 10

        current = _current_versions(con, "db")
    assert len(current["applications"]) == len(final["applications"])
    assert [r[0] for r in current["payments"]] == [r["payment_id"] for r in final["payments"]]


def test_database_and_files_give_the_same_current_records(funding_dsn, programme, tmp_path):
    funding_database.load(funding_dsn, programme, SEED)
    funding_extracts.write(tmp_path / "landing", programme, SEED)
    db = tmp_path / "zi.duckdb"
    with warehouse.connect(db) as con:
        ingest(con, funding, tmp_path / "landing", log=lambda m: None)
        funding_db.run(con, funding_dsn, now=NOW, log=lambda m: None)
        from_files, from_db = _current_versions(con, "file"), _current_versions(con, "db")
    for entity in funding.ENTITIES:
        assert from_db[entity.name] == from_files[entity.name], entity.name
        assert len(from_db[entity.name]) > 0


def test_database_rows_are_validated_like_file_rows(funding_dsn, programme, tmp_path):
    funding_database.load(funding_dsn, programme, SEED, as_of=END_2022)
    with psycopg.connect(funding_dsn) as conn:
        conn.execute(
            "update foerderung.zahlung set betrag_eur = -100, geaendert_am = '2022-12-31 10:00:00' "
            "where zahlung_nr = (select min(zahlung_nr) from foerderung.zahlung)"
        )
        conn.execute("update foerderung.antrag set kommune = 'Gotham City' where antrag_nr = 'ZI-A-00003'")
    db = tmp_path / "zi.duckdb"
    with warehouse.connect(db) as con:
        summary = funding_db.run(con, funding_dsn, now=NOW, log=lambda m: None)
        rejected = con.execute(
            "select source_file, sheet, column_name, value_found, rule, message_de from raw.rejected_rows order by rule"
        ).fetchall()
    assert summary.rows_rejected == 2 and summary.rows_read == summary.rows_loaded + 2
    assert [r[4] for r in rejected] == ["negative_amount", "unknown_municipality"]
    assert rejected[1][1] == "foerderung.antrag" and rejected[1][3] == "Gotham City"
    assert "antrag_nr = ZI-A-00003" in rejected[1][5]


def test_a_row_deleted_in_the_database_is_recorded_in_the_key_list(funding_dsn, programme, tmp_path):
    funding_database.load(funding_dsn, programme, SEED, as_of=END_2022)
    db = tmp_path / "zi.duckdb"
    with warehouse.connect(db) as con:
        funding_db.run(con, funding_dsn, now=NOW, log=lambda m: None)
        with psycopg.connect(funding_dsn) as conn:
            (mark,) = conn.execute("select max(geaendert_am) from foerderung.zahlung").fetchone()
            (gone,) = conn.execute(
                "delete from foerderung.zahlung where zahlung_nr = "
                "(select max(zahlung_nr) from foerderung.zahlung) returning zahlung_nr"
            ).fetchone()
            # rows changed in the watermark's own second are read again by design (nothing committed in
            # that second is lost); the deletion itself adds no row, only a new key list
            (overlap,) = conn.execute(
                "select count(*) from foerderung.zahlung where geaendert_am >= %s", [mark]
            ).fetchone()
        later = funding_db.run(con, funding_dsn, now=NOW + dt.timedelta(hours=1), log=lambda m: None)
        assert later.rows_loaded == overlap and len(later.files) == 1 and "+" in later.files[0]
        lists = con.execute(
            "select extract_as_of, bool_or(business_key = ?) from raw.funding__key_lists "
            "where entity = 'payments' group by 1 order by 1",
            [gone],
        ).fetchall()
    assert [present for _, present in lists] == [True, False]


def test_channel_is_off_without_dsn_and_reads_pg_variables_with_env(monkeypatch, pg, funding_dsn, programme, tmp_path):
    monkeypatch.delenv(config.FUNDING_DB_DSN_ENV, raising=False)
    assert config.funding_db_dsn() is None
    summary = funding_db.run(None)
    assert not summary.ran and config.FUNDING_DB_DSN_ENV in summary.message_de

    funding_database.load(funding_dsn, programme, SEED, as_of=END_2022)
    monkeypatch.setenv(config.FUNDING_DB_DSN_ENV, "env")
    for key, value in pg.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PGDATABASE", funding_dsn.rsplit("/", 1)[1])
    assert config.funding_db_dsn() == ""
    with warehouse.connect(tmp_path / "zi.duckdb") as con:
        assert funding_db.run(con, now=NOW, log=lambda m: None).rows_loaded > 0


def test_dagster_asset_and_check_severities(monkeypatch, tmp_path):
    from dagster import materialize

    from dagster_zi import funding as dagster_funding

    monkeypatch.delenv(config.FUNDING_DB_DSN_ENV, raising=False)
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path))
    result = materialize([dagster_funding.raw_funding_db])
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["ran"].value is False
    assert result.get_asset_materialization_events()[0].asset_key.path == ["raw_funding_db", "funding_db_extracts"]
    specs = [s for check in dagster_funding.asset_checks for s in check.check_specs]
    blocking = {s.name for s in specs if s.blocking}
    assert blocking == {
        "funding_delta_sequence_complete",
        "funding_payments_have_approval",
        "funding_approvals_have_application",
        "funding_applications_municipality_known",
    }
    assert {s.name for s in specs if not s.blocking} == {
        "funding_approved_within_requested",
        "funding_funding_rate_within_limits",
        "funding_minimum_grant_thresholds",
        "funding_applications_keep_their_municipality",
        "funding_applications_before_approval",
    }
    # the sequence check guards every raw funding table, so no staging model builds on a gap
    sequence_keys = {tuple(s.asset_key.path) for s in specs if s.name == "funding_delta_sequence_complete"}
    assert sequence_keys == {("raw_funding", table) for table in funding.RAW_TABLES}
    assert not Path(tmp_path / "warehouse" / "zi.duckdb").exists()  # did nothing, opened nothing
