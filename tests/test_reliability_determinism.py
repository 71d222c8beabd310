"""Determinism: the same inputs built twice, in two fresh data directories, give identical marts.

The session's demo build (`zi build` on an empty landing area: demo scale 0.05, seed 7) is compared with a
second, independent `zi build` of the same demo in another fresh ZI_DATA_DIR. Every published mart is
compared by an order-independent content hash (the sorted text of every row), in the DuckDB file and in
the Parquet files; a difference names the mart and shows example rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from zi_warehouse.landing import file_sha256

pytestmark = pytest.mark.slow

ROW_TEXT = "t::varchar"  # a row as text: every column, in order, with DuckDB's exact value rendering


#: Marts that keep a history across runs (run ids, run times): another run adds rows by design.
HISTORY_MARTS = {"mart_data_quality"}


def mart_hashes(con: duckdb.DuckDBPyConnection, relations: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Row count and sha256 over the sorted row texts of each relation (independent of row order)."""
    out = {}
    for name, relation in relations.items():
        rows = [r[0] for r in con.execute(f"select {ROW_TEXT} from {relation} t").fetchall()]
        digest = hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()
        out[name] = (len(rows), digest)
    return out


def published_hashes(data_dir: Path) -> tuple[dict, dict]:
    published = data_dir / "published"
    con = duckdb.connect(str(published / "zi.duckdb"), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'marts' order by 1"
            ).fetchall()
            if r[0] not in HISTORY_MARTS
        ]
        in_duckdb = mart_hashes(con, {n: f'marts."{n}"' for n in names})
    finally:
        con.close()
    con = duckdb.connect()
    try:
        files = sorted((published / "parquet").glob("*.parquet"))
        in_parquet = mart_hashes(con, {p.stem: f"read_parquet('{p}')" for p in files if p.stem not in HISTORY_MARTS})
    finally:
        con.close()
    return in_duckdb, in_parquet


def example_differences(a: Path, b: Path, mart: str, limit: int = 5) -> list:
    con = duckdb.connect()
    try:
        con.execute(f"attach '{a / 'published' / 'zi.duckdb'}' as a (read_only)")
        con.execute(f"attach '{b / 'published' / 'zi.duckdb'}' as b (read_only)")
        return con.execute(
            f"(select 'only first', t::varchar from a.marts.\"{mart}\" t except all "
            f"select 'only first', t::varchar from b.marts.\"{mart}\" t) union all "
            f"(select 'only second', t::varchar from b.marts.\"{mart}\" t except all "
            f"select 'only second', t::varchar from a.marts.\"{mart}\" t) limit {limit}"
        ).fetchall()
    finally:
        con.close()


def landing_hashes(data_dir: Path) -> dict[str, str]:
    landing = data_dir / "landing"
    return {p.relative_to(landing).as_posix(): file_sha256(p) for p in sorted(landing.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def second_build(demo_build_again) -> Path:
    return demo_build_again["data_dir"]  # empty landing area: the same default demo (scale and seed) as demo_build


def test_demo_inputs_are_identical_bytes(demo_build, second_build):
    first, second = landing_hashes(demo_build["data_dir"]), landing_hashes(second_build)
    assert first.keys() == second.keys()
    differing = sorted(name for name in first if first[name] != second[name])
    assert differing == [], f"demo writers are not deterministic for: {differing[:10]}"


def test_same_inputs_give_identical_marts(demo_build, second_build):
    first_db, first_pq = published_hashes(demo_build["data_dir"])
    second_db, second_pq = published_hashes(second_build)
    assert len(first_db) >= 12 and first_db.keys() == second_db.keys()
    # (mart_restatements is empty by design: no Berichtsstand has been frozen in a fresh build)
    assert all(rows for name, (rows, _) in first_db.items() if name != "mart_restatements"), (
        "an empty mart proves nothing"
    )
    differing = sorted(n for n in first_db if first_db[n] != second_db[n])
    examples = {n: example_differences(demo_build["data_dir"], second_build, n) for n in differing[:3]}
    assert differing == [], f"marts differ between two builds of the same input: {differing}; {examples}"
    assert first_pq == second_pq == first_db  # the Parquet files carry the same rows as the DuckDB file
