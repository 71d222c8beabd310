"""The ingest framework: per-file replacement, idempotence, removal, blocking and row accounting.

A small line-based source defined here exercises the framework itself; the real readers have their own tests.
"""

from __future__ import annotations

import types

import duckdb
import pyarrow as pa
import pytest

from zi_warehouse.accounting import FileResult, Rejection
from zi_warehouse.ingest import ingest
from zi_warehouse.warehouse import REJECTED_SCHEMA


def _make_source(schema=None):
    schema = schema or pa.schema([pa.field("name", pa.string()), pa.field("value", pa.int64())])

    def read_files(files, context):
        for f in files:
            result = FileResult("demo", f.source_file, f.file_hash, file_size_bytes=f.size_bytes)
            text = f.path.read_text(encoding="utf-8")
            if text.startswith("BLOCK"):
                yield result.block("Vorgänger fehlt", "sequence_gap")
                continue
            if text.startswith("BROKEN"):
                yield result.fail("Datei nicht lesbar")
                continue
            good = []
            for i, line in enumerate(text.splitlines(), start=1):
                result.rows_read += 1
                name, value = line.split(",")
                if int(value) < 0:
                    result.rejections.append(Rejection(i, "value", value, "value_ge_0", "Wert darf nicht negativ sein"))
                else:
                    good.append({"name": name, "value": int(value), "_source_file": f.source_file, "_row_number": i})
            result.tables["demo__items"] = pa.Table.from_pylist(
                good,
                schema=schema.append(pa.field("_source_file", pa.string())).append(pa.field("_row_number", pa.int64())),
            )
            yield result

    return types.SimpleNamespace(SOURCE_FAMILY="demo", RAW_TABLES={"demo__items": schema}, read_files=read_files)


@pytest.fixture()
def setup(tmp_path):
    landing = tmp_path / "landing"
    (landing / "demo").mkdir(parents=True)
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    yield landing, con
    con.close()


def _items(con):
    return con.execute("select _source_file, name, value from raw.demo__items order by all").fetchall()


def test_rows_are_loaded_or_rejected_and_reloading_changes_nothing(setup):
    landing, con = setup
    (landing / "demo" / "a.csv").write_text("x,1\ny,-2\nz,3\n")
    source = _make_source()
    s1 = ingest(con, source, landing, log=lambda m: None)
    assert (s1.rows_read, s1.rows_loaded, s1.rows_rejected) == (3, 2, 1)
    ledger = con.execute("select rows_read, rows_loaded, rows_rejected, outcome from raw.ingestion_files").fetchall()
    assert ledger == [(3, 2, 1, "partially_loaded")]
    rejected = con.execute(
        "select source_file, row_number, column_name, value_found, rule from raw.rejected_rows"
    ).fetchall()
    assert rejected == [("demo/a.csv", 2, "value", "-2", "value_ge_0")]
    before = _items(con)
    s2 = ingest(con, source, landing, log=lambda m: None)
    assert s2.files_read == 0
    assert _items(con) == before
    assert con.execute("select count(*) from raw.rejected_rows").fetchone()[0] == 1


def test_changed_file_replaces_its_rows_and_removed_file_disappears(setup):
    landing, con = setup
    source = _make_source()
    (landing / "demo" / "a.csv").write_text("x,1\n")
    (landing / "demo" / "b.csv").write_text("y,-1\n")
    ingest(con, source, landing, log=lambda m: None)
    (landing / "demo" / "a.csv").write_text("x,10\nw,11\n")
    (landing / "demo" / "b.csv").unlink()
    summary = ingest(con, source, landing, log=lambda m: None)
    assert summary.files_read == 1 and summary.files_removed == 1
    assert _items(con) == [("demo/a.csv", "w", 11), ("demo/a.csv", "x", 10)]
    assert con.execute("select count(*) from raw.rejected_rows").fetchone()[0] == 0
    assert con.execute("select source_file from raw.ingestion_files").fetchall() == [("demo/a.csv",)]


def test_blocked_file_is_retried_and_failed_file_recorded(setup):
    landing, con = setup
    source = _make_source()
    (landing / "demo" / "late.csv").write_text("BLOCK")
    (landing / "demo" / "bad.csv").write_text("BROKEN")
    ingest(con, source, landing, log=lambda m: None)
    outcomes = dict(con.execute("select file_name, outcome from raw.ingestion_files").fetchall())
    assert outcomes == {"late.csv": "blocked", "bad.csv": "failed"}
    message = con.execute("select message_de from raw.rejected_rows where source_file = 'demo/bad.csv'").fetchone()
    assert message == ("Datei nicht lesbar",)
    summary = ingest(con, source, landing, log=lambda m: None)
    assert summary.files_read == 1  # only the blocked one is read again
    (landing / "demo" / "late.csv").write_text("q,5\n")
    ingest(con, source, landing, log=lambda m: None)
    assert _items(con) == [("demo/late.csv", "q", 5)]


def test_lost_rows_are_refused(setup):
    landing, con = setup
    (landing / "demo" / "a.csv").write_text("x,1\n")

    def lossy(files, context):
        for f in files:
            yield FileResult("demo", f.source_file, f.file_hash, rows_read=5)

    source = types.SimpleNamespace(
        SOURCE_FAMILY="demo", RAW_TABLES={"demo__items": pa.schema([("name", pa.string())])}, read_files=lossy
    )
    with pytest.raises(AssertionError, match="rows read 5"):
        ingest(con, source, landing, log=lambda m: None)
    # nothing was stored: the transaction never started
    assert con.execute("select count(*) from raw.ingestion_files").fetchone()[0] == 0


def test_changed_raw_schema_reloads_the_family(setup):
    landing, con = setup
    (landing / "demo" / "a.csv").write_text("x,1\n")
    ingest(con, _make_source(), landing, log=lambda m: None)
    wider = pa.schema([pa.field("name", pa.string()), pa.field("value", pa.int64()), pa.field("extra", pa.string())])
    summary = ingest(con, _make_source(wider), landing, log=lambda m: None)
    assert summary.files_read == 1
    cols = [r[0] for r in con.execute("describe raw.demo__items").fetchall()]
    assert "extra" in cols and _items(con) == [("demo/a.csv", "x", 1)]


def test_a_ledger_or_rejections_table_of_an_older_shape_keeps_its_rows(setup):
    """The ledger and the rejections are not read again from the landing files (an unchanged file is skipped):
    a column the code adds later must not cost their rows, or a sender's rejections vanish without a word."""
    landing, con = setup
    (landing / "demo" / "a.csv").write_text("x,1\ny,-2\n")
    source = _make_source()
    ingest(con, source, landing, log=lambda m: None)
    before = (
        con.execute("select source_file, outcome, rows_rejected from raw.ingestion_files").fetchall(),
        con.execute("select source_file, row_number, rule, message_de from raw.rejected_rows").fetchall(),
    )
    con.execute("alter table raw.ingestion_files drop column data_team_note")  # as written by older code
    con.execute("alter table raw.rejected_rows drop column sheet")
    summary = ingest(con, source, landing, log=lambda m: None)
    assert summary.files_read == 0  # nothing re-read: the rows must have been kept
    after = (
        con.execute("select source_file, outcome, rows_rejected from raw.ingestion_files").fetchall(),
        con.execute("select source_file, row_number, rule, message_de from raw.rejected_rows").fetchall(),
    )
    assert after == before and before[1]
    assert "data_team_note" in [r[0] for r in con.execute("describe raw.ingestion_files").fetchall()]
    assert [r[0] for r in con.execute("describe raw.rejected_rows").fetchall()] == REJECTED_SCHEMA.names


def test_personal_values_are_masked_in_rejections():
    rec = Rejection(3, "contact_email", "anna@example.de", "email_format", "E-Mail ungültig").as_record()
    assert "anna" not in rec["value_found"]


def test_hostile_file_names_are_data_not_sql(setup):
    landing, con = setup
    (landing / "demo" / 'x"; drop table raw.demo__items; --.csv').write_text("x,1\n")
    (landing / "demo" / "o'hara.csv").write_text("y,2\n")
    ingest(con, _make_source(), landing, log=lambda m: None)
    ingest(con, _make_source(), landing, log=lambda m: None)
    assert len(_items(con)) == 2
