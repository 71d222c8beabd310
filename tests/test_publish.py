"""Publishing: the read-only copy is complete, swapped in atomically, readable by DuckDB 1.x drivers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from zi_warehouse import publish as publish_module
from zi_warehouse.publish import publish

OLD_DUCKDB = "1.1.3"  # a DuckDB 1.x release as BI drivers still bundle it


def _warehouse(path: Path, rows: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("create schema if not exists marts; create schema if not exists raw")
    con.execute("create or replace table raw.secret as select 'anna@example.de' as contact_email")
    con.execute(f"create or replace table marts.mart_a as select range as id, range * 1.5 as v from range({rows})")
    con.execute("create or replace table marts.mart_b as select 'Bochum' as municipality_name, 2020 as year")
    con.execute("comment on table marts.mart_a is 'Grain: eine Zeile je id'")
    con.close()


def test_publish_copies_only_marts_as_duckdb_and_parquet(tmp_path):
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, 100)
    result = publish(wh, tmp_path / "published")
    assert result.tables == {"mart_a": 100, "mart_b": 1}
    con = duckdb.connect(str(result.duckdb_path), read_only=True)
    schemas = {r[0] for r in con.execute("select schema_name from duckdb_tables()").fetchall()}
    assert schemas == {"marts"}  # raw data never leaves the working warehouse
    assert con.execute("select count(*), sum(id) from marts.mart_a").fetchone() == (100, 4950)
    assert con.execute("select comment from duckdb_tables() where table_name = 'mart_a'").fetchone()[0].startswith("Grain")
    con.close()
    assert pq.read_table(tmp_path / "published" / "parquet" / "mart_a.parquet").num_rows == 100
    assert sorted(p.name for p in (tmp_path / "published").iterdir()) == [
        ".parquet-" + (tmp_path / "published" / "parquet").resolve().name.split("-", 1)[1], "parquet", "zi.duckdb"
    ]


def test_failed_publish_leaves_previous_copy_untouched(tmp_path, monkeypatch):
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, 10)
    publish(wh, tmp_path / "published")
    _warehouse(wh, 20)

    def broken_swap(*args, **kwargs):
        raise OSError("Datenträger voll")

    monkeypatch.setattr(publish_module, "_swap_symlink", broken_swap)
    monkeypatch.setattr(publish_module.os, "replace", broken_swap)
    with pytest.raises(OSError):
        publish(wh, tmp_path / "published")
    con = duckdb.connect(str(tmp_path / "published" / "zi.duckdb"), read_only=True)
    assert con.execute("select count(*) from marts.mart_a").fetchone()[0] == 10
    con.close()
    assert pq.read_table(tmp_path / "published" / "parquet" / "mart_a.parquet").num_rows == 10
    leftovers = [p.name for p in (tmp_path / "published").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_reader_holding_the_old_copy_keeps_a_consistent_view(tmp_path):
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, 10)
    publish(wh, tmp_path / "published")
    reader = duckdb.connect(str(tmp_path / "published" / "zi.duckdb"), read_only=True)
    _warehouse(wh, 30)
    publish(wh, tmp_path / "published")  # the open reader does not block the swap
    assert reader.execute("select count(*) from marts.mart_a").fetchone()[0] == 10
    reader.close()
    fresh = duckdb.connect(str(tmp_path / "published" / "zi.duckdb"), read_only=True)
    assert fresh.execute("select count(*) from marts.mart_a").fetchone()[0] == 30
    fresh.close()


def test_published_file_opens_in_duckdb_1x(tmp_path):
    """A BI driver bundling DuckDB 1.x must open the file (storage compatibility setting)."""
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, 5)
    result = publish(wh, tmp_path / "published")
    old = Path(__file__).resolve().parent.parent / ".cache" / f"duckdb-{OLD_DUCKDB}"
    if not (old / "duckdb").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(old),
                        f"duckdb=={OLD_DUCKDB}"], check=True)
    code = (
        "import sys, duckdb; assert duckdb.__version__.startswith('1.'), duckdb.__version__;"
        f"c = duckdb.connect({str(result.duckdb_path)!r}, read_only=True);"
        "print(c.execute('select count(*) from marts.mart_a').fetchone()[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(old)}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "5"
