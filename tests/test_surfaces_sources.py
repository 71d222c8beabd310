"""Paved surfaces per parcel: columnar loading, code mapping, rejections with row numbers, demo realism."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from zi_warehouse import ingest, warehouse
from zi_warehouse.columnar import canonical_columns, code_map, map_headers, new_connection
from zi_warehouse.demo import surfaces as demo_surfaces
from zi_warehouse.landing import discover
from zi_warehouse.reference import match_municipality, municipality_by_key, normalise_name
from zi_warehouse.sources import surfaces
from zi_warehouse.surfaces import parcels

HEADER = "Flurstück;Fläche m2;Flächenart;Kanalanschluss;Kommune;Gestaltungsraum"


def _read(path: Path, landing: Path):
    [landed] = [f for f in discover(landing, "surfaces", ()) if f.path == path]
    [result] = list(surfaces.read_files([landed], None))
    result.check()
    return result


def test_codes_are_mapped_and_bad_rows_rejected_with_line_numbers(tmp_path):
    rows = [
        "0510-001-00001;125,5;Steildach;Mischwasser;Bochum;Gestaltungsraum Bochum Mitte",
        "0510-001-00001;40;Pflaster;Trennsystem;BOCHUM;",
        "0510-001-00002;300,25;Asphalt, fugenloser Beton;kein Anschluss;Bochum;",
        "0510-001-00003;-35,5;Flachdach;Mischwasser;Bochum;",  # negative area
        "0510-001-00004;k.A.;Flachdach;Mischwasser;Bochum;",  # not a number
        "0510-001-00005;80;Flachdach;Sickerschacht?;Bochum;",  # unknown sewer code
        "0510-001-00006;80;Sonstiges;MW;Bochum;",  # unknown surface type
        ";80;Flachdach;RW;Bochum;",  # parcel id missing
        "0510-001-00007;80;gravel_roof;separate;Gotham;",  # unknown municipality
    ]
    path = tmp_path / "surfaces" / "flaechen_bochum.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8-sig")  # with BOM, as Excel writes
    result = _read(path, tmp_path)
    good = result.tables[surfaces.PARCELS].to_pylist()
    assert [(r["_row_number"], r["area_m2"], r["surface_type"], r["sewer_connection"]) for r in good] == [
        (2, 125.5, "pitched_roof", "combined"),
        (3, 40.0, "paving", "separate"),
        (4, 300.25, "asphalt", "none"),
    ]
    assert good[0]["is_in_designated_area"] and good[0]["designated_area_name"] == "Gestaltungsraum Bochum Mitte"
    assert not good[1]["is_in_designated_area"] and good[1]["designated_area_name"] is None
    assert {r["municipality_key"] for r in good} == {"bochum"} and good[0][
        "_source_file"
    ] == "surfaces/flaechen_bochum.csv"
    assert {(r.row_number, r.rule, r.value_found) for r in result.rejections} == {
        (5, "area_m2_positive", "-35,5"),
        (6, "area_m2_not_numeric", "k.A."),
        (7, "sewer_connection_known", "Sickerschacht?"),
        (8, "surface_type_known", "Sonstiges"),
        (9, "parcel_id_missing", None),
        (10, "municipality_known", "Gotham"),
    }
    assert all(r.message_de for r in result.rejections)
    assert result.rows_read == 9 and result.rows_loaded == 3 and result.rows_rejected == 6


def test_an_area_written_nan_or_inf_is_rejected_and_not_loaded(tmp_path):
    # DuckDB orders NaN above every number, so "area > 0" alone let a NaN area through: loaded *and*
    # rejected, one row counted twice.
    rows = [
        "0510-001-00001;nan;Flachdach;Mischwasser;Bochum;",
        "0510-001-00002;inf;Flachdach;Mischwasser;Bochum;",
        "0510-001-00003;12,5;Flachdach;Mischwasser;Bochum;",
    ]
    path = tmp_path / "surfaces" / "flaechen_bochum.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    result = _read(path, tmp_path)
    assert result.tables[surfaces.PARCELS].column("area_m2").to_pylist() == [12.5]
    assert {(r.row_number, r.rule) for r in result.rejections} == {(2, "area_m2_positive"), (3, "area_m2_positive")}
    assert result.rows_read == 3 and result.rows_loaded == 1 and result.rows_rejected == 2


def test_unknown_or_missing_header_fails_the_file_with_the_difference(tmp_path):
    path = tmp_path / "surfaces" / "x.csv"
    path.parent.mkdir(parents=True)
    path.write_text("Flurstück;Fläche m2;Flächenart;Bemerkung\n1;2;Steildach;x\n", encoding="utf-8")
    result = _read(path, tmp_path)
    assert result.outcome == "failed"
    assert "Bemerkung" in result.error_message and "sewer_connection" in result.error_message


def test_windows_1252_and_parquet_deliveries(tmp_path):
    folder = tmp_path / "surfaces"
    folder.mkdir()
    (folder / "herne.csv").write_bytes((HEADER + "\n0100-1-1;12,5;Flachdach;Mischwasser;Herne;\n").encode("cp1252"))
    pq.write_table(
        pa.table(
            {
                "parcel_id": ["1", "2"],
                "area_m2": [10.0, -1.0],
                "surface_type": ["asphalt"] * 2,
                "sewer_connection": ["combined"] * 2,
                "municipality": ["Herne"] * 2,
                "designated_area": [None, None],
            }
        ),
        folder / "herne.parquet",
    )
    cp = _read(folder / "herne.csv", tmp_path)
    assert cp.rows_loaded == 1 and cp.tables[surfaces.PARCELS].column("area_m2").to_pylist() == [12.5]
    parquet = _read(folder / "herne.parquet", tmp_path)
    assert parquet.rows_loaded == 1
    assert [(r.row_number, r.rule) for r in parquet.rejections] == [(2, "area_m2_positive")]


def test_a_large_file_is_loaded_columnar_without_python_objects_per_row(tmp_path):
    """200,000 rows: Python-heap allocations (tracemalloc) stay far below one object per row.

    tracemalloc sees only Python objects; Arrow and DuckDB buffers live outside it. One small str per row
    would already cost ~10 MB here; the limit of 4 MB leaves room for the code's fixed overhead only.
    """
    n = 200_000
    rng = np.random.default_rng(1)
    table = pa.table(
        {
            "Flurstück": pa.array(np.char.add("0510-", np.arange(n).astype(str))),
            "Fläche m2": pa.array(np.round(rng.uniform(5, 500, n), 2)).cast(pa.string()),
            "Flächenart": pa.array(np.array(["Steildach", "Asphalt", "Pflaster"])[rng.integers(0, 3, n)]),
            "Kanalanschluss": pa.array(np.array(["Mischwasser", "Trennsystem"])[rng.integers(0, 2, n)]),
            "Kommune": pa.array(np.full(n, "Essen")),
            "Gestaltungsraum": pa.array(np.full(n, "")),
        }
    )
    folder = tmp_path / "surfaces"
    folder.mkdir()
    pacsv.write_csv(table, folder / "essen.csv", write_options=pacsv.WriteOptions(delimiter=";"))
    [landed] = discover(tmp_path, "surfaces", ())
    list(surfaces.read_files([landed], None))  # warm-up: imports and caches are not per-row costs
    tracemalloc.start()
    try:
        [result] = list(surfaces.read_files([landed], None))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    result.check()
    assert result.rows_loaded == n and result.rows_rejected == 0
    assert isinstance(result.tables[surfaces.PARCELS], pa.Table)
    assert peak < 4 * 1024 * 1024, f"Python heap peak {peak / 1e6:.1f} MB for {n} rows"


def test_demo_totals_are_realistic_at_any_scale_and_rows_scale(tmp_path):
    landing = tmp_path / "landing"
    paths = demo_surfaces.write(landing, SimpleNamespace(scale=0.002), seed=7)
    assert len(paths) == len(municipality_by_key())
    assert {p.suffix for p in paths} == {".csv", ".parquet"}
    with warehouse.connect(tmp_path / "zi.duckdb") as con:
        summary = ingest.ingest(con, surfaces, landing, log=lambda m: None)
        assert summary.files_failed == []
        assert summary.rows_read == summary.rows_loaded + summary.rows_rejected
        assert summary.rows_read == sum(demo_surfaces.rows_per_municipality(0.002).values())
        assert 0 < summary.rows_rejected < 50
        per_muni = con.execute(
            f"""select municipality_key, sum(area_m2), count(*),
                       sum(area_m2) filter (where sewer_connection = 'combined') / sum(area_m2)
                from raw.{surfaces.PARCELS} group by 1"""
        ).fetchall()
        munis = municipality_by_key()
        assert len(per_muni) == len(munis)
        for key, area, records, combined in per_muni:
            per_inhabitant = area / munis[key].population_2020
            assert 45 <= per_inhabitant <= 72, (key, per_inhabitant)  # a rejected row may take a few %
            if records >= 100:  # with 20 records one record moves the share by several points
                assert 0.55 <= combined <= 0.85, (key, combined)
        region = con.execute(
            f"select sum(area_m2) filter (where sewer_connection = 'combined') / sum(area_m2) "
            f"from raw.{surfaces.PARCELS}"
        ).fetchall()[0][0]
        assert 0.6 <= region <= 0.8
        assert surfaces.non_positive_areas(con) == 0
        assert surfaces.out_of_domain_codes(con) == []
        read, rejected = surfaces.rejection_share(con)
        assert read == summary.rows_read and rejected == summary.rows_rejected
        # The checks see what they guard: a bad row slipped into the raw table is found.
        con.execute(
            f"insert into raw.{surfaces.PARCELS} (municipality_key, parcel_id, area_m2, surface_type, "
            "sewer_connection) values ('herne', 'x', -5, 'asphalt', 'Mischwasser')"
        )
        assert surfaces.non_positive_areas(con) == 1
        assert surfaces.out_of_domain_codes(con) == [("sewer_connection", "Mischwasser", 1)]
    assert demo_surfaces.rows_per_municipality(1.0)["dortmund"] == pytest.approx(
        1_500_000 * munis["dortmund"].population_2020 / sum(m.population_2020 for m in munis.values()), abs=1
    )


# --- the fast parcel check gives the reference check's result ------------------------------------------
def _check_parcels_reference(
    table: pa.Table, source_file: str, con: duckdb.DuckDBPyConnection
) -> tuple[pa.Table, pa.Table]:
    """``check_parcels`` as it was first written: every row typed and copied as strings through a DuckDB
    temp table, every rule of ``parcels._REJECT_SQL`` run over all rows. The production check takes
    shortcuts (only flagged rows through the rule SQL, codes taken in Arrow); this is what it must equal."""
    con = con.cursor()
    try:
        con.register("src", table)
        distinct = con.execute(
            "select list(distinct surface_type), list(distinct sewer_connection), list(distinct municipality) from src"
        ).fetchall()[0]
        index = parcels._surface_index()
        code_map(con, "surface_map", distinct[0] or [], lambda v: index.get(normalise_name(v)))
        code_map(con, "sewer_map", distinct[1] or [], parcels._sewer_lookup)
        code_map(con, "municipality_map", distinct[2] or [], match_municipality)
        con.execute("create temp table typed as " + parcels._CHECK_SQL)
        rejected = con.sql(parcels._REJECT_SQL + " order by 1, 2").to_arrow_table()
        good = con.sql(
            """
            select municipality_key, parcel_id, area_m2, surface_type, sewer_connection,
                   designated_area_name, designated_area_name is not null as is_in_designated_area,
                   ?::varchar as _source_file, _row_number
            from typed
            where parcel_id is not null and area_m2 > 0 and not isnan(area_m2) and not isinf(area_m2)
              and surface_type is not null and sewer_connection is not null and municipality_key is not null
            order by _row_number
            """,
            params=[source_file],
        ).to_arrow_table()
        con.execute("drop table typed")
        return good, rejected
    finally:
        con.close()


def _same_as_reference(canon: pa.Table):
    con = new_connection()
    fast = parcels.check_parcels(canon, "surfaces/x.csv", con)
    reference = _check_parcels_reference(canon, "surfaces/x.csv", con)
    assert fast[0].schema == reference[0].schema
    assert fast[0].equals(reference[0]), "good rows differ from the reference check"
    assert fast[1].equals(reference[1]), "rejections differ from the reference check"
    return fast


def _canonical(table: pa.Table) -> pa.Table:
    return canonical_columns(table, map_headers(table.column_names, parcels.HEADERS, parcels.REQUIRED), parcels.HEADERS)


def test_fast_parcel_check_equals_the_reference_on_demo_files(tmp_path):
    paths = demo_surfaces.write(tmp_path / "landing", SimpleNamespace(scale=0.02), seed=7)
    rejected = 0
    for path in paths:
        good, bad = _same_as_reference(_canonical(surfaces._read_table(path)[0]))
        assert good.num_rows > 0
        rejected += bad.num_rows
    assert rejected > 0


def test_fast_parcel_check_equals_the_reference_on_bad_and_padded_values():
    rows = [  # parcel, area, surface type, sewer, municipality, designated area
        ("P1", "120,5", "Steildach", "Mischwasser", "Bochum", ""),
        (" P2 ", " 80 ", "Pflaster", "Trennsystem", "Bochum", " Gestaltungsraum\u00a0Nord "),
        ("", "-3", "Unbekannt", "Kanal?", "Atlantis", None),
        ("P4", "abc", "Asphalt", "mischwasser", "bochum", "Süd"),
        ("P5", "inf", "Flachdach", "kein", " Bochum", ""),
        ("P6", "0", None, None, None, "X"),
        ("P1", "1e2", "Gründach", "RW", "Herne", ""),
    ]
    names = ["parcel_id", "area_m2", "surface_type", "sewer_connection", "municipality", "designated_area"]
    table = pa.table(
        {
            "_row_number": pa.array(range(2, len(rows) + 2), pa.int64()),
            **{c: pa.array([r[i] for r in rows], pa.string()) for i, c in enumerate(names)},
        }
    )
    good, _ = _same_as_reference(table)
    assert good.column("parcel_id").to_pylist() == ["P1", "P2", "P1"]
    _same_as_reference(table.take([2, 0, 1, 3, 4, 5, 6]))  # rows out of order: sorted first


def test_a_surfaces_file_with_a_stray_byte_a_short_and_a_long_row_loads_every_other_row(tmp_path):
    rows = [
        f"0510-001-{i:05d};12,5;Flachdach;Mischwasser;Mülheim an der Ruhr;Gestaltungsraum Süd".encode()
        for i in range(1, 8)
    ]
    rows[1] = rows[1].replace("Süd".encode(), b"S\x81d")  # a byte that is no character in UTF-8 nor cp1252
    rows[3] = b"0510-001-00004;12,5;Flachdach"  # short
    rows[5] = rows[5] + b";unerwartet"  # long
    path = tmp_path / "surfaces" / "flaechen_muelheim.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\r\n".join([HEADER.encode("utf-8"), *rows]) + b"\r\n")
    result = _read(path, tmp_path)  # FileResult.check(): read = loaded + rejected
    assert result.outcome == "partially_loaded" and result.rows_read == 7
    good = result.tables[surfaces.PARCELS]
    assert good.column("_row_number").to_pylist() == [2, 4, 6, 8]
    assert set(good.column("designated_area_name").to_pylist()) == {"Gestaltungsraum Süd"}
    found = {r.row_number: (r.rule, r.value_found) for r in result.rejections}
    assert found == {
        3: ("row_encoding", "0510-001-00002;12,5;Flachdach;Mischwasser;Mülheim an der Ruhr;Gestaltungsraum S\ufffdd"),
        5: ("row_field_count", "0510-001-00004;12,5;Flachdach"),
        7: (
            "row_field_count",
            "0510-001-00006;12,5;Flachdach;Mischwasser;Mülheim an der Ruhr;Gestaltungsraum Süd;unerwartet",
        ),
    }
    messages = {r.row_number: r.message_de for r in result.rejections}
    assert "0x81" in messages[3] and "3 statt 6 Felder" in messages[5] and "7 statt 6 Felder" in messages[7]


def test_blank_lines_count_as_lines_but_are_no_rows(tmp_path):
    path = tmp_path / "surfaces" / "flaechen_herne.csv"
    path.parent.mkdir(parents=True)
    path.write_text(HEADER + "\n1;10;Flachdach;MW;Herne;\n\n   \n2;-1;Flachdach;MW;Herne;\n", encoding="utf-8")
    result = _read(path, tmp_path)
    assert result.rows_read == 2 and [(r.row_number, r.rule) for r in result.rejections] == [(5, "area_m2_positive")]
