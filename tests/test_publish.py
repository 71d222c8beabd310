"""Publishing: every publish is a complete release, made current atomically, readable by DuckDB 1.x drivers;
only changed marts are written again; releases are kept for the retention time.

Crash safety (a publish killed at every step) is in tests/test_publish_crash.py; Berichtsstände and
restatements on the demo build in tests/test_releases.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from zi_warehouse import publish as publish_module
from zi_warehouse import releases
from zi_warehouse.publish import publish

OLD_DUCKDB = "1.1.3"  # a DuckDB 1.x release as BI drivers still bundle it
UTC = dt.UTC


def _warehouse(path: Path, rows: int, b_town: str = "Bochum") -> None:
    con = duckdb.connect(str(path))
    con.execute("create schema if not exists marts; create schema if not exists raw")
    con.execute("create or replace table raw.secret as select 'anna@example.de' as contact_email")
    con.execute(f"create or replace table marts.mart_a as select range as id, range * 1.5 as v from range({rows})")
    con.execute(f"create or replace table marts.mart_b as select '{b_town}' as municipality_name, 2020 as year")
    con.execute("comment on table marts.mart_a is 'Grain: eine Zeile je id'")
    con.close()


def _files(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_publish_writes_a_release_with_only_marts_and_a_manifest(tmp_path):
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, 100)
    published = tmp_path / "published"
    result = publish(wh, published, run_id="3f2a1b2c-0000-4000-8000-000000000000")
    assert result.tables == {"mart_a": 100, "mart_b": 1, "mart_restatements": 0}
    # The stable paths point through `current` into the release.
    assert os.readlink(published / "zi.duckdb") == "current/zi.duckdb"
    assert os.readlink(published / "parquet") == "current/parquet"
    assert (published / "current").resolve() == result.release_dir == published / "releases" / result.release_id
    assert result.release_id.endswith("-3f2a1b2c")
    con = duckdb.connect(str(result.duckdb_path), read_only=True)
    schemas = {r[0] for r in con.execute("select schema_name from duckdb_tables()").fetchall()}
    assert schemas == {"marts"}  # raw data never leaves the working warehouse
    assert con.execute("select count(*), sum(id) from marts.mart_a").fetchone() == (100, 4950)
    assert (
        con.execute("select comment from duckdb_tables() where table_name = 'mart_a'").fetchone()[0].startswith("Grain")
    )
    assert con.execute("select count(*) from marts.mart_restatements").fetchone()[0] == 0  # no Berichtsstand yet
    con.close()
    assert pq.read_table(published / "parquet" / "mart_a.parquet").num_rows == 100
    manifest = json.loads((result.release_dir / "manifest.json").read_text())
    assert manifest["run_id"] == "3f2a1b2c-0000-4000-8000-000000000000"
    assert manifest["release_id"] == result.release_id and manifest["previous_release"] is None
    assert manifest["code"]["code"] and manifest["code"]["dbt"] and "git_commit" in manifest["code"]
    assert manifest["storage_version"] == publish_module.STORAGE_COMPATIBILITY_VERSION
    assert {n: m["rows"] for n, m in manifest["marts"].items()} == result.tables
    for name, mart in manifest["marts"].items():
        assert len(mart["checksum"]) == 32 and mart["written"]
        assert (
            mart["parquet_sha256"]
            == hashlib.sha256((published / "parquet" / f"{name}.parquet").read_bytes()).hexdigest()
        )
    # Every file of a release is read-only; nothing but the release is left in releases/.
    assert all(os.stat(p).st_mode & 0o222 == 0 for p in result.release_dir.rglob("*"))
    assert sorted(p.name for p in (published / "releases").iterdir()) == [result.release_id]
    assert sorted(p.name for p in published.iterdir()) == [
        ".releases.lock",
        "current",
        "parquet",
        "releases",
        "zi.duckdb",
    ]


def test_the_manifest_names_every_landed_file_with_its_hash_and_reach(tmp_path):
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, 3)
    con = duckdb.connect(str(wh))
    con.execute(
        "create table raw.ingestion_files (source_family varchar, source_file varchar, file_name varchar, "
        "file_hash varchar, file_size_bytes bigint, municipality_key varchar, period varchar, rows_read bigint, "
        "rows_loaded bigint, rows_rejected bigint, outcome varchar, error_message varchar, loaded_at timestamptz)"
    )
    con.execute(
        "insert into raw.ingestion_files (source_family, source_file, file_hash, municipality_key, outcome, "
        "rows_loaded) values ('forecasts', 'forecasts/P_Herne_2024-Q1.xlsx', 'h1', 'herne', 'loaded', 2), "
        "('funding', 'funding/delta_zahlungen.csv', 'h2', null, 'loaded', 2), "
        "('climate', 'climate/kl.zip', 'h3', null, 'loaded', 1), "
        "('funding', 'funding/broken.csv', 'h4', null, 'failed', 0)"
    )
    con.execute(
        "create table raw.funding__applications as select * from (values ('A1', 'bochum', 'funding/x.csv'), "
        "('A2', 'essen', 'funding/x.csv')) t(application_id, municipality_key, _source_file)"
    )
    con.execute(
        "create table raw.funding__approvals as select * from (values ('B1', 'A1', 'funding/x.csv'), "
        "('B2', 'A2', 'funding/x.csv')) t(approval_id, application_id, _source_file)"
    )
    con.execute(
        "create table raw.funding__payments as select * from (values ('Z1', 'B1', 'funding/delta_zahlungen.csv'), "
        "('Z2', 'B2', 'funding/delta_zahlungen.csv')) t(payment_id, approval_id, _source_file)"
    )
    con.execute(
        "create table raw.forecasts__projects as select * from (values ('P1', 'herne', "
        "'forecasts/P_Herne_2024-Q1.xlsx'), ('P2', 'herne', 'forecasts/P_Herne_2024-Q1.xlsx')) "
        "t(project_id, municipality_key, _source_file)"
    )
    con.execute("create table raw.climate__daily as select 1 as station_id, 'climate/kl.zip' as _source_file")
    con.close()
    result = publish(wh, tmp_path / "published")
    files = {f["path"]: f for f in json.loads((result.release_dir / "manifest.json").read_text())["landed_files"]}
    assert set(files) == {
        "forecasts/P_Herne_2024-Q1.xlsx",
        "funding/delta_zahlungen.csv",
        "climate/kl.zip",
        "funding/broken.csv",
    }
    assert files["forecasts/P_Herne_2024-Q1.xlsx"] == {
        "path": "forecasts/P_Herne_2024-Q1.xlsx",
        "family": "forecasts",
        "hash": "h1",
        "outcome": "loaded",
        "rows_loaded": 2,
        "raw_tables": ["forecasts__projects"],
        "municipalities": ["herne"],
    }
    # a payment reaches its municipality through the approval and the application
    assert files["funding/delta_zahlungen.csv"]["municipalities"] == ["bochum", "essen"]
    assert files["funding/delta_zahlungen.csv"]["raw_tables"] == ["funding__payments"]
    assert files["climate/kl.zip"]["municipalities"] is None  # rows of no municipality: they reach all
    assert files["funding/broken.csv"]["raw_tables"] == [] and files["funding/broken.csv"]["municipalities"] == []


def test_unchanged_marts_are_taken_over_not_written_again(tmp_path):
    wh = tmp_path / "wh.duckdb"
    published = tmp_path / "published"
    _warehouse(wh, 100)
    first = publish(wh, published)
    inodes = {p.name: p.stat().st_ino for p in first.release_dir.rglob("*") if p.is_file()}
    _warehouse(wh, 100, b_town="Herne")  # mart_a the same, mart_b changed
    second = publish(wh, published)
    assert second.written == ["mart_b"] and second.reused == ["mart_a", "mart_restatements"]
    assert second.previous_release == first.release_id
    assert second.removed_releases == []  # superseded just now: kept for readers a while (READER_GRACE)
    # Reused Parquet files are the same file (a hard link), the DuckDB file is a copy with mart_b replaced.
    for name in second.reused:
        assert (second.release_dir / "parquet" / f"{name}.parquet").stat().st_ino == inodes[f"{name}.parquet"]
    assert (second.release_dir / "parquet" / "mart_b.parquet").stat().st_ino != inodes["mart_b.parquet"]
    assert (second.release_dir / "zi.duckdb").stat().st_ino != inodes["zi.duckdb"]
    manifest = json.loads((second.release_dir / "manifest.json").read_text())
    assert manifest["duckdb_file_from_previous"] is True
    assert {n: m["written"] for n, m in manifest["marts"].items()} == {
        "mart_a": False,
        "mart_b": True,
        "mart_restatements": False,
    }
    con = duckdb.connect(str(published / "zi.duckdb"), read_only=True)
    assert con.execute("select municipality_name from marts.mart_b").fetchall() == [("Herne",)]
    assert con.execute("select count(*), sum(id) from marts.mart_a").fetchone() == (100, 4950)
    assert (
        con.execute("select comment from duckdb_tables() where table_name = 'mart_a'").fetchone()[0].startswith("Grain")
    )
    con.close()
    # A mart gone from the warehouse is gone from the next release; a new one appears.
    con = duckdb.connect(str(wh))
    con.execute("drop table marts.mart_b; create table marts.mart_c as select 1 as x")
    con.close()
    third = publish(wh, published)
    con = duckdb.connect(str(published / "zi.duckdb"), read_only=True)
    assert {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()} == {
        "mart_a",
        "mart_c",
        "mart_restatements",
    }
    con.close()
    assert sorted(p.name for p in (third.release_dir / "parquet").iterdir()) == [
        "mart_a.parquet",
        "mart_c.parquet",
        "mart_restatements.parquet",
    ]
    # Writing everything (how publishing worked before) gives the same content.
    full = publish(wh, tmp_path / "full", reuse=False)
    assert full.reused == [] and sorted(full.written) == sorted(third.tables)
    assert _mart_rows(full.duckdb_path) == _mart_rows(third.duckdb_path)


def _not_null_columns(path: Path) -> set[tuple[str, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return set(con.execute("select table_name, column_name from duckdb_columns() where not is_nullable").fetchall())
    finally:
        con.close()


def test_the_published_tables_declare_the_required_columns_not_null(tmp_path, monkeypatch):
    """BI tools read a column's nullability from the file: the published marts declare the columns the dbt
    contracts require as NOT NULL, as the working warehouse does; a table taken over unchanged from a release
    written without them gets them too."""
    wh = tmp_path / "wh.duckdb"
    published = tmp_path / "published"
    _warehouse(wh, 10)
    monkeypatch.setattr(publish_module, "_declare_not_null", lambda _con, _marts: None)  # as releases were before
    publish(wh, published)
    assert _not_null_columns(published / "zi.duckdb") == set()
    monkeypatch.undo()
    con = duckdb.connect(str(wh))
    con.execute("alter table marts.mart_a alter column id set not null")  # what an enforced contract creates
    con.execute("alter table marts.mart_b alter column year set not null")
    con.close()
    again = publish(wh, published)
    assert "mart_a" in again.reused  # same content: taken over from the previous file, and declared now
    assert _not_null_columns(published / "zi.duckdb") == {("mart_a", "id"), ("mart_b", "year")}
    written = publish(wh, tmp_path / "full", reuse=False)
    assert _not_null_columns(written.duckdb_path) == {("mart_a", "id"), ("mart_b", "year")}


def _mart_rows(path: Path) -> dict[str, list]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in con.execute("select table_name from duckdb_tables() order by 1").fetchall()]
        return {n: sorted(con.execute(f'select * from marts."{n}"').fetchall()) for n in names}
    finally:
        con.close()


def test_a_changed_description_counts_as_a_change(tmp_path):
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, 5)
    publish(wh, tmp_path / "published")
    con = duckdb.connect(str(wh))
    con.execute("comment on column marts.mart_a.v is 'Wert in m²'")
    con.close()
    result = publish(wh, tmp_path / "published")
    assert result.written == ["mart_a"]
    con = duckdb.connect(str(result.duckdb_path), read_only=True)
    assert con.execute("select comment from duckdb_columns() where column_name = 'v'").fetchone()[0] == "Wert in m²"
    con.close()


RUN_STARTS = {"r1": "2026-10-30 23:00", "r2": "2026-11-02 08:00", "r3": "2026-12-01 08:00", "r4": "2026-12-02 08:00"}


def _quality_history(path: Path, runs: list[str], *, extra_column: bool = False) -> None:
    """A warehouse whose ``mart_data_quality`` holds three checks per run, the last run flagged newest."""
    con = duckdb.connect(str(path))
    con.execute("create schema if not exists marts")
    values = ", ".join(f"('{run}', timestamptz '{RUN_STARTS[run]}+00')" for run in runs)
    con.execute(
        "create or replace table marts.mart_data_quality as "
        f"select run_id, run_started_at, run_id = '{runs[-1]}' as is_latest_run, check_no, "
        "check_no * 2 as rows_failed "
        + (", 'x' as note " if extra_column else "")
        + f"from (values {values}) as r(run_id, run_started_at), range(3) as c(check_no)"
    )
    con.execute("comment on table marts.mart_data_quality is 'Grain: eine Zeile je Lauf und Prüfung'")
    con.close()


def _history_files(release: Path) -> dict[str, int]:
    """The quality history's Parquet files of a release: file name -> inode."""
    return {p.name: p.stat().st_ino for p in sorted((release / "parquet" / "mart_data_quality").iterdir())}


def test_the_quality_history_is_published_run_by_run(tmp_path):
    """A new quality run writes only the runs whose rows changed (the new one, and the one that lost
    is_latest_run) and only their month's Parquet file; a run gone from the warehouse goes from the release; the
    result is the same table a full write gives."""
    wh, published = tmp_path / "wh.duckdb", tmp_path / "published"
    _quality_history(wh, ["r1", "r2", "r3"])
    first = publish(wh, published)
    assert first.runs_replaced == {}  # nothing to start from: written whole
    manifest = json.loads((first.release_dir / "manifest.json").read_text())
    entry = manifest["marts"]["mart_data_quality"]
    assert {run: month for run, (_, _, month) in entry["runs"].items()} == {
        "r1": "2026-10",
        "r2": "2026-11",
        "r3": "2026-12",
    }
    files = _history_files(first.release_dir)
    assert sorted(files) == ["2026-10.parquet", "2026-11.parquet", "2026-12.parquet"]
    for name, sha in entry["parquet_files"].items():
        assert (
            sha == hashlib.sha256((first.release_dir / "parquet" / "mart_data_quality" / name).read_bytes()).hexdigest()
        )
    table = pq.read_table(published / "parquet" / "mart_data_quality")  # the folder reads as one table
    assert table.num_rows == 9
    assert table.schema.field("rows_failed").metadata is not None  # the data dictionary travels with each file

    _quality_history(wh, ["r1", "r2", "r3", "r4"])
    second = publish(wh, published)
    assert second.written == ["mart_data_quality"]
    assert second.runs_replaced == {"mart_data_quality": 2}  # r4 new, r3 no longer the newest
    assert second.history_runs == {"mart_data_quality": 4}
    assert second.history_files == {"mart_data_quality": (["2026-12.parquet"], 2)}
    again = _history_files(second.release_dir)
    assert {name: again[name] == files[name] for name in files} == {  # months without a change: the same file
        "2026-10.parquet": True,
        "2026-11.parquet": True,
        "2026-12.parquet": False,
    }
    full = publish(wh, tmp_path / "full", reuse=False)
    assert _mart_rows(second.duckdb_path) == _mart_rows(full.duckdb_path)
    assert sorted(pq.read_table(published / "parquet" / "mart_data_quality").to_pylist(), key=str) == sorted(
        pq.read_table(tmp_path / "full" / "parquet" / "mart_data_quality").to_pylist(), key=str
    )

    _quality_history(wh, ["r2", "r3", "r4"])  # r1 removed, nothing else changed
    third = publish(wh, published)
    assert third.runs_replaced == {"mart_data_quality": 1}
    assert sorted(_history_files(third.release_dir)) == ["2026-11.parquet", "2026-12.parquet"]
    con = duckdb.connect(str(third.duckdb_path), read_only=True)
    assert [r[0] for r in con.execute("select distinct run_id from marts.mart_data_quality order by 1").fetchall()] == [
        "r2",
        "r3",
        "r4",
    ]
    comment = con.execute("select comment from duckdb_tables() where table_name = 'mart_data_quality'").fetchone()[0]
    assert comment.startswith("Grain")
    con.close()
    assert pq.read_table(published / "parquet" / "mart_data_quality").num_rows == 9

    _quality_history(wh, ["r2", "r3", "r4"], extra_column=True)  # another shape: everything written again
    fourth = publish(wh, published)
    assert fourth.written == ["mart_data_quality"] and fourth.runs_replaced == {}
    assert not set(_history_files(fourth.release_dir).values()) & set(_history_files(third.release_dir).values())
    con = duckdb.connect(str(fourth.duckdb_path), read_only=True)
    assert con.execute("select count(*), count(note) from marts.mart_data_quality").fetchone() == (9, 9)
    con.close()
    assert pq.read_table(published / "parquet" / "mart_data_quality").num_rows == 9

    freeze = releases.freeze(published, "2026-Q3", render=lambda duckdb_file, folder: [])
    assert sorted(p.name for p in (freeze / "parquet" / "mart_data_quality").iterdir()) == sorted(
        _history_files(fourth.release_dir)
    )


def test_a_history_whose_previous_release_differs_from_its_manifest_is_written_whole(tmp_path):
    """The per-run manifest is trusted only as far as the checksum proves: if the previous release's table no
    longer holds what its manifest says, the result differs from the warehouse and the mart is written whole."""
    wh, published = tmp_path / "wh.duckdb", tmp_path / "published"
    _quality_history(wh, ["r1", "r2", "r3"])
    first = publish(wh, published)
    (first.release_dir / "zi.duckdb").chmod(0o644)
    con = duckdb.connect(str(first.release_dir / "zi.duckdb"))
    con.execute("update marts.mart_data_quality set rows_failed = 99 where run_id = 'r1'")  # r1 is not rewritten
    con.close()
    _quality_history(wh, ["r1", "r2", "r3", "r4"])
    second = publish(wh, published)
    assert second.written == ["mart_data_quality"] and second.runs_replaced == {}
    assert _mart_rows(second.duckdb_path) == _mart_rows(publish(wh, tmp_path / "full", reuse=False).duckdb_path)


def test_a_history_with_a_run_without_start_is_one_parquet_file(tmp_path):
    wh, published = tmp_path / "wh.duckdb", tmp_path / "published"
    _quality_history(wh, ["r1", "r2"])
    con = duckdb.connect(str(wh))
    con.execute("update marts.mart_data_quality set run_started_at = null where run_id = 'r1'")
    con.close()
    publish(wh, published)
    assert sorted(p.name for p in (published / "parquet" / "mart_data_quality").iterdir()) == ["all-runs.parquet"]
    assert pq.read_table(published / "parquet" / "mart_data_quality").num_rows == 6


def test_failed_publish_leaves_previous_release_current(tmp_path, monkeypatch):
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, 10)
    first = publish(wh, tmp_path / "published")
    _warehouse(wh, 20)

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(publish_module.releases, "make_current", broken)
    with pytest.raises(publish_module.PublishError, match="kein Speicherplatz"):
        publish(wh, tmp_path / "published")
    assert (tmp_path / "published" / "current").resolve() == first.release_dir
    con = duckdb.connect(str(tmp_path / "published" / "zi.duckdb"), read_only=True)
    assert con.execute("select count(*) from marts.mart_a").fetchone()[0] == 10
    con.close()
    assert pq.read_table(tmp_path / "published" / "parquet" / "mart_a.parquet").num_rows == 10
    assert not [p for p in (tmp_path / "published" / "releases").iterdir() if p.name.startswith(".staging-")]


def test_reader_holding_the_old_copy_keeps_a_consistent_view(tmp_path):
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, 10)
    publish(wh, tmp_path / "published")
    reader = duckdb.connect(str(tmp_path / "published" / "zi.duckdb"), read_only=True)
    _warehouse(wh, 30)
    publish(wh, tmp_path / "published")  # the open reader does not block the switch
    publish(wh, tmp_path / "published")  # ... nor the removal of its release (same day, superseded)
    assert reader.execute("select count(*) from marts.mart_a").fetchone()[0] == 10
    reader.close()
    fresh = duckdb.connect(str(tmp_path / "published" / "zi.duckdb"), read_only=True)
    assert fresh.execute("select count(*) from marts.mart_a").fetchone()[0] == 30
    fresh.close()


def test_the_layout_before_releases_is_taken_over(tmp_path):
    """A data directory published by the earlier code (a real zi.duckdb, parquet -> .parquet-<token>)."""
    published = tmp_path / "published"
    (published / ".parquet-0123456789ab").mkdir(parents=True)
    (published / ".parquet-0123456789ab" / "mart_a.parquet").write_bytes(b"old")
    (published / "parquet").symlink_to(".parquet-0123456789ab")
    (published / "zi.duckdb").write_bytes(b"old file")
    (published / ".zi.duckdb.deadbeef.tmp").write_bytes(b"left by a killed run")
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, 4)
    result = publish(wh, published)
    assert sorted(p.name for p in published.iterdir()) == [
        ".releases.lock",
        "current",
        "parquet",
        "releases",
        "zi.duckdb",
    ]
    assert pq.read_table(published / "parquet" / "mart_a.parquet").num_rows == 4
    # The old copy became a release of its own first (so each step left both stable paths on one copy).
    assert result.previous_release.endswith("-vorher") and result.reused == []


def test_retention_keeps_the_current_release_and_the_last_of_each_day(tmp_path):
    wh = tmp_path / "wh.duckdb"
    published = tmp_path / "published"
    times = [
        dt.datetime(2026, 11, 1, 8, tzinfo=UTC),
        dt.datetime(2026, 11, 1, 15, tzinfo=UTC),
        dt.datetime(2026, 11, 20, 8, tzinfo=UTC),
        dt.datetime(2026, 12, 4, 9, tzinfo=UTC),
        dt.datetime(2026, 12, 4, 17, tzinfo=UTC),
        dt.datetime(2026, 12, 5, 7, tzinfo=UTC),
        dt.datetime(2026, 12, 5, 8, tzinfo=UTC),
    ]
    ids = []
    for n, moment in enumerate(times):
        _warehouse(wh, n + 1)
        ids.append(publish(wh, published, now=moment, retention_days=365).release_id)
    kept = [r.release_id for r in releases.list_releases(published)]
    # 1 Nov 15:00 and 4 Dec 17:00 are Tagesstände; 5 Dec 07:00 was replaced just now (READER_GRACE: a reader
    # may be about to open it); 5 Dec 08:00 current.
    assert kept == [ids[1], ids[2], ids[4], ids[5], ids[6]]
    _warehouse(wh, 99)
    last = publish(wh, published, now=dt.datetime(2026, 12, 5, 9, tzinfo=UTC), retention_days=20)
    kept = [r.release_id for r in releases.list_releases(published)]
    # 1 Nov is older than 20 days; 07:00, replaced an hour ago, went; 08:00 was replaced just now.
    assert kept == [ids[2], ids[4], ids[6], last.release_id]
    assert last.removed_releases == [ids[1], ids[5]]
    _warehouse(wh, 100)
    soon = publish(wh, published, now=dt.datetime(2026, 12, 5, 9, 5, tzinfo=UTC), retention_days=20)
    assert [r.release_id for r in releases.list_releases(published)][-3:] == [ids[6], last.release_id, soon.release_id]
    _warehouse(wh, 101)
    later = publish(wh, published, now=dt.datetime(2026, 12, 5, 9, 30, tzinfo=UTC), retention_days=20)
    kept = [r.release_id for r in releases.list_releases(published)]
    assert kept == [ids[2], ids[4], soon.release_id, later.release_id]


def test_retention_days_come_from_the_environment(monkeypatch):
    monkeypatch.delenv(releases.RETENTION_ENV, raising=False)
    assert releases.retention_days() == releases.DEFAULT_RETENTION_DAYS
    monkeypatch.setenv(releases.RETENTION_ENV, "7")
    assert releases.retention_days() == 7
    monkeypatch.setenv(releases.RETENTION_ENV, "eine Woche")
    with pytest.raises(releases.ReleaseError, match="keine Anzahl"):
        releases.retention_days()


def test_freezing_links_the_release_and_keeps_it_byte_for_byte(tmp_path):
    wh = tmp_path / "wh.duckdb"
    published = tmp_path / "published"
    _warehouse(wh, 7)
    release = publish(wh, published).release_dir

    def render(database: Path, folder: Path) -> list[Path]:
        con = duckdb.connect(str(database), read_only=True)  # the report reads the frozen file itself
        rows = con.execute("select count(*) from marts.mart_a").fetchone()[0]
        con.close()
        (folder / "bericht.html").write_text(f"<p>{rows}</p>", encoding="utf-8")
        return [folder / "bericht.html"]

    folder = releases.freeze(published, "2026-Q3", render, frozen_by="test")
    assert folder == published / "reporting" / "2026-Q3"
    assert (folder / "bericht.html").read_text() == "<p>7</p>"
    assert os.path.samefile(folder / "zi.duckdb", release / "zi.duckdb")  # the same bytes, not a copy
    record = json.loads((folder / "freeze.json").read_text())
    assert record["release_id"] == release.name and record["quarter"] == "2026-Q3"
    assert all(os.stat(p).st_mode & 0o222 == 0 for p in [folder, *folder.rglob("*")])
    before = _files(folder)
    with pytest.raises(releases.AlreadyFrozen):
        releases.freeze(published, "2026-Q3", render)
    # Later publishes (and retention removing the frozen release) leave the Berichtsstand as it was.
    for rows, minutes in ((8, 20), (9, 40)):  # the release goes once it was replaced longer than READER_GRACE ago
        _warehouse(wh, rows)
        publish(wh, published, retention_days=0, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes))
    assert not release.exists()
    assert _files(folder) == before and releases.verify_frozen(folder) == []
    con = duckdb.connect(str(releases.resolve(published, "2026-Q3") / "zi.duckdb"), read_only=True)
    assert con.execute("select count(*) from marts.mart_a").fetchone()[0] == 7
    con.close()
    assert [r.quarter for r in releases.list_reporting(published)] == ["2026-Q3"]
    with pytest.raises(releases.ReleaseError, match="Eingefroren: 2026-Q3"):
        releases.resolve(published, "2026-Q2")


def test_a_quarter_is_frozen_only_after_its_last_day(tmp_path):
    """A Berichtsstand stays for good: frozen before the quarter's end it would lack the quarter's last
    deliveries, and every later restatement would be measured against it."""
    wh, published = tmp_path / "wh.duckdb", tmp_path / "published"
    _warehouse(wh, 3)
    publish(wh, published)
    last_evening = dt.datetime(2026, 12, 31, 22, 30, tzinfo=dt.UTC)  # 23:30 on 31 December in Germany
    with pytest.raises(releases.ReleaseError, match=r"endet erst am 31\.12\.2026.*--draft"):
        releases.freeze(published, "2026-Q4", render=lambda duckdb_file, folder: [], now=last_evening)
    assert not (published / "reporting").exists()
    new_year = last_evening + dt.timedelta(hours=1)  # 00:30 on 1 January in Germany
    assert releases.freeze(published, "2026-Q4", render=lambda duckdb_file, folder: [], now=new_year).is_dir()


def test_a_failed_report_freezes_nothing(tmp_path):
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, 3)
    publish(wh, tmp_path / "published")

    def render(database: Path, folder: Path) -> list[Path]:
        raise ValueError("Für 2010-Q1 liegen keine Daten vor")

    with pytest.raises(ValueError):
        releases.freeze(tmp_path / "published", "2010-Q1", render)
    assert list((tmp_path / "published" / "reporting").iterdir()) == []


def test_published_file_opens_in_duckdb_1x(tmp_path):
    """A BI driver bundling DuckDB 1.x must open the file (storage compatibility setting), also a release
    whose file started as a copy of the previous one with some marts replaced."""
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, 5)
    publish(wh, tmp_path / "published")
    _warehouse(wh, 6, b_town="Herne")
    con = duckdb.connect(str(wh))
    con.execute("alter table marts.mart_a alter column id set not null")  # declared not null in the file too
    con.close()
    result = publish(wh, tmp_path / "published")
    assert result.written == ["mart_a", "mart_b"]
    old = Path(__file__).resolve().parent.parent / ".cache" / f"duckdb-{OLD_DUCKDB}"
    if not (old / "duckdb").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(old),
                f"duckdb=={OLD_DUCKDB}",
            ],
            check=True,
        )
    code = (
        "import sys, duckdb; assert duckdb.__version__.startswith('1.'), duckdb.__version__;"
        f"c = duckdb.connect({str(result.duckdb_path)!r}, read_only=True);"
        "print(c.execute('select count(*) from marts.mart_a').fetchone()[0], "
        "c.execute('select municipality_name from marts.mart_b').fetchone()[0], "
        "c.execute('select count(*) from marts.mart_restatements').fetchone()[0], "
        "c.execute(\"select is_nullable from duckdb_columns() where table_name = 'mart_a' and column_name = 'id'\")"
        ".fetchone()[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(old)}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["6", "Herne", "0", "False"]
