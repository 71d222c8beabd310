"""Trees: campaign lists and tree registers (CSV EPSG:25832, GeoJSON WGS84), plausibility, row accounting."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from zi_warehouse import boundaries, columnar, ingest, warehouse
from zi_warehouse.columnar import HeaderError, new_connection
from zi_warehouse.delimited import read_delimited
from zi_warehouse.demo import trees as demo_trees
from zi_warehouse.landing import discover
from zi_warehouse.reference import municipality_by_key
from zi_warehouse.sources import trees
from zi_warehouse.trees import FileProblem, geojson, register, schemas
from zi_warehouse.trees.coordinates import EPSG_UTM32, EPSG_WGS84, to_both_crs

YEAR = 2026  # "today" for the planting-year check, fixed so the tests do not age

REGISTER_HEADER = (
    "Baumnummer;Art botanisch;Art deutsch;Pflanzjahr;Stammumfang cm;Kronendurchmesser m;"
    "Baumhöhe m;Stadtbezirk;Straße;Status;Rechtswert;Hochwert"
)


def _utm_northing_on_central_meridian(lat_deg: float) -> float:
    """GRS80 meridian arc × 0.9996 (series to e⁶): an independent reference for EPSG:25832 at 9° E."""
    a, f = 6378137.0, 1 / 298.257222101
    e2 = f * (2 - f)
    e4, e6 = e2 * e2, e2 * e2 * e2
    p = math.radians(lat_deg)
    m = a * (
        (1 - e2 / 4 - 3 * e4 / 64 - 5 * e6 / 256) * p
        - (3 * e2 / 8 + 3 * e4 / 32 + 45 * e6 / 1024) * math.sin(2 * p)
        + (15 * e4 / 256 + 45 * e6 / 1024) * math.sin(4 * p)
        - (35 * e6 / 3072) * math.sin(6 * p)
    )
    return 0.9996 * m


def _landed(path: Path, landing: Path):
    return [f for f in discover(landing, "trees", ()) if f.path == path][0]


def _read(path: Path, landing: Path):
    [result] = list(trees.read_files([_landed(path, landing)], None, current_year=YEAR))
    result.check()
    return result


def test_conversion_against_an_independent_reference_and_round_trip():
    lat = np.array([51.0, 51.5])
    out = to_both_crs(np.array([9.0, 9.0]), lat, EPSG_WGS84)
    assert out["easting_m"] == pytest.approx([500000.0, 500000.0], abs=0.01)  # central meridian of zone 32
    assert out["northing_m"][0] == pytest.approx(_utm_northing_on_central_meridian(51.0), abs=0.05)
    back = to_both_crs(out["easting_m"], out["northing_m"], EPSG_UTM32)
    assert back["longitude"] == pytest.approx([9.0, 9.0], abs=1e-9)
    assert back["latitude"] == pytest.approx(lat, abs=1e-9)


def _dortmund_points():
    """Three trees near Dortmund's reference point, in EPSG:25832 and in WGS84."""
    east = np.array([393500.25, 395000.5, 391200.75])
    north = np.array([5708050.5, 5710000.25, 5706500.0])
    wgs = to_both_crs(east, north, EPSG_UTM32)
    return east, north, wgs["longitude"], wgs["latitude"]


def test_same_trees_as_csv_in_25832_and_geojson_in_wgs84_give_the_same_coordinates(tmp_path):
    east, north, lon, lat = _dortmund_points()
    folder = tmp_path / "trees" / "registers"
    folder.mkdir(parents=True)
    csv_lines = [REGISTER_HEADER] + [
        f"DO-{i};Tilia cordata;Winter-Linde;1990;120;8,5;15,2;Mitte;Hauptstraße;gesund;"
        f"{str(e).replace('.', ',')};{str(n).replace('.', ',')}"
        for i, (e, n) in enumerate(zip(east, north))
    ]
    (folder / "baumkataster_dortmund.csv").write_text("\n".join(csv_lines) + "\n", encoding="utf-8")
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [x, y]},
            "properties": {
                "Baumnummer": f"DO-{i}",
                "Art_botanisch": "Tilia cordata",
                "Pflanzjahr": 1990,
                "Baumhoehe_m": 15.2,
                "Kronendurchmesser_m": 8.5,
            },
        }
        for i, (x, y) in enumerate(zip(lon, lat))
    ]
    (folder / "baumkataster_dortmund_2024.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8"
    )
    from_csv = _read(folder / "baumkataster_dortmund.csv", tmp_path).tables[trees.REGISTER]
    from_geojson = _read(folder / "baumkataster_dortmund_2024.geojson", tmp_path).tables[trees.REGISTER]
    assert from_csv.num_rows == from_geojson.num_rows == 3
    assert from_csv.column("source_crs").to_pylist() == ["EPSG:25832"] * 3
    assert from_geojson.column("source_crs").to_pylist() == ["EPSG:4326"] * 3
    for col in ("easting_m", "northing_m"):
        assert from_geojson.column(col).to_pylist() == pytest.approx(from_csv.column(col).to_pylist(), abs=0.001)
    assert from_csv.column("easting_m").to_pylist() == pytest.approx(east.tolist())  # decimal comma read
    assert from_csv.column("height_m").to_pylist() == [15.2] * 3
    assert set(from_csv.column("municipality_key").to_pylist()) == {"dortmund"}
    assert from_geojson.column("_row_number").to_pylist() == [1, 2, 3]  # feature index
    assert from_csv.column("_row_number").to_pylist() == [2, 3, 4]  # line in the file


def test_implausible_trees_are_rejected_with_row_rule_and_german_reason(tmp_path):
    east, north, _, _ = _dortmund_points()
    e, n = str(east[0]).replace(".", ","), str(north[0]).replace(".", ",")
    rows = [
        f"T1;Tilia cordata;Winter-Linde;1990;120;8,5;15;Mitte;A-Str.;gesund;{e};{n}",  # fine
        f"T2;Tilia cordata;Winter-Linde;1990;120;8,5;62;Mitte;A-Str.;gesund;{e};{n}",  # height
        f"T3;Tilia cordata;Winter-Linde;1990;120;41;15;Mitte;A-Str.;gesund;{e};{n}",  # crown
        f"T4;Tilia cordata;Winter-Linde;2102;120;8,5;15;Mitte;A-Str.;gesund;{e};{n}",  # future
        f"T5;Tilia cordata;Winter-Linde;1990;120;8,5;15;Mitte;A-Str.;gesund;{n};{e}",  # swapped axes
        f"T1;Tilia cordata;Winter-Linde;1990;120;8,5;15;Mitte;A-Str.;gesund;{e};{n}",  # duplicate number
        f"T7;Tilia cordata;Winter-Linde;1990;120;8,5;zwölf;Mitte;A-Str.;gesund;{e};{n}",  # not a number
        f"T8;Tilia cordata;Winter-Linde;;;;;Mitte;A-Str.;gesund;{e};{n}",  # optional values empty: fine
        "T9;Tilia cordata;Winter-Linde;1990;120;8,5;0,4;Mitte;A-Str.;gesund;;",  # height low + no coordinates
        f"T10;Tilia cordata;Winter-Linde;{YEAR};120;0,5;45;Mitte;A-Str.;gesund;{e};{n}",  # limits: fine
    ]
    path = tmp_path / "trees" / "baumkataster_dortmund.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([REGISTER_HEADER, *rows]) + "\n", encoding="utf-8")
    result = _read(path, tmp_path)
    assert result.rows_read == 10
    loaded = result.tables[trees.REGISTER]
    assert loaded.column("tree_number").to_pylist() == ["T1", "T8", "T10"]
    by_row = {(r.row_number, r.rule) for r in result.rejections}
    assert by_row == {
        (3, "height_plausible"),
        (4, "crown_diameter_plausible"),
        (5, "planting_year_not_future"),
        (6, "coordinates_inside_municipality"),
        (7, "tree_number_unique"),
        (8, "height_not_numeric"),
        (10, "height_plausible"),
        (10, "coordinates_missing"),
    }
    assert result.rows_rejected == 7 and result.outcome == "partially_loaded"
    height = next(r for r in result.rejections if r.rule == "height_plausible" and r.row_number == 3)
    assert height.column == "height_m" and height.value_found == "62" and "Baumhöhe" in height.message_de
    outside = next(r for r in result.rejections if r.rule == "coordinates_inside_municipality")
    assert "scheinen vertauscht" in outside.message_de and "läge der Baum in Dortmund" in outside.message_de


def test_municipality_of_a_register_comes_from_its_name_or_folder():
    assert register.register_municipality("trees/baumkataster_muelheim_an_der_ruhr_2024.csv") == "muelheim_an_der_ruhr"
    assert register.register_municipality("trees/registers/castrop-rauxel/export.geojson") == "castrop_rauxel"
    assert register.register_municipality("trees/registers/baumkataster.csv") is None


def test_register_without_recognisable_municipality_or_with_unknown_header_fails_whole_file(tmp_path):
    folder = tmp_path / "trees"
    folder.mkdir()
    (folder / "baumkataster.csv").write_text(REGISTER_HEADER + "\nT1;;;;;;;;;;1;2\n", encoding="utf-8")
    (folder / "baumkataster_bochum.csv").write_text(
        REGISTER_HEADER + ";Objektart\nT1;;;;;;;;;;1;2;x\n", encoding="utf-8"
    )
    no_name = _read(folder / "baumkataster.csv", tmp_path)
    assert no_name.outcome == "failed" and no_name.rejections[0].rule == "register_municipality_unknown"
    unknown = _read(folder / "baumkataster_bochum.csv", tmp_path)
    assert unknown.outcome == "failed" and "Objektart" in unknown.error_message


CAMPAIGN_HEADER = "Ausgabestelle;Kommune;Obstart;Anzahl;Ausgabedatum;davon nicht abgeholt"


def test_campaign_list_maps_species_and_municipalities_and_rejects_bad_rows(tmp_path):
    rows = [
        "Betriebshof Duisburg;Duisburg;Apfel;100;30.10.2021;3",
        "Betriebshof Duisburg;Duisburg;Zwetschge;30;30.10.2021;",
        "Gartencenter Mülheim;Mülheim a.d. Ruhr;Kirsche;50;2021-10-30;0",
        "Ausgabe X;Atlantis;Birne;10;30.10.2021;0",  # unknown municipality
        "Ausgabe Y;Bochum;Banane;10;30.10.2021;0",  # unknown species
        "Ausgabe Z;Bochum;Birne;5;30.10.2021;6",  # more unclaimed than handed out
        "Ausgabe Z;Bochum;Birne;-2;31.02.2021;0",  # negative count and impossible date
    ]
    path = tmp_path / "trees" / "campaign" / "klimabaeume.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([CAMPAIGN_HEADER, *rows]) + "\n", encoding="utf-8")
    result = _read(path, tmp_path)
    loaded = result.tables[trees.CAMPAIGN].to_pylist()
    assert [(r["municipality_key"], r["species_group"], r["trees"], r["trees_unclaimed"]) for r in loaded] == [
        ("duisburg", "apple", 100, 3),
        ("duisburg", "plum", 30, 0),
        ("muelheim_an_der_ruhr", "cherry", 50, 0),
    ]
    assert loaded[2]["distribution_date"] == dt.date(2021, 10, 30)
    assert {(r.row_number, r.rule) for r in result.rejections} == {
        (5, "municipality_known"),
        (6, "species_group_known"),
        (7, "trees_unclaimed_valid"),
        (8, "trees_positive_integer"),
        (8, "distribution_date_valid"),
    }
    assert result.rows_read == 7 and result.rows_loaded == 3 and result.rows_rejected == 4


def test_demo_campaign_is_exactly_10000_trees_through_43_points(tmp_path):
    paths = demo_trees.write(tmp_path, SimpleNamespace(scale=0.002), seed=7)
    campaign = [p for p in paths if "klimabaeume_ausgabe" in p.name]
    assert len(campaign) == 1
    result = _read(campaign[0], tmp_path)
    table = result.tables[trees.CAMPAIGN]
    assert result.rows_rejected == 0
    assert sum(table.column("trees").to_pylist()) == 10_000
    assert len(set(table.column("distribution_point").to_pylist())) == 43
    assert set(table.column("species_group").to_pylist()) == {"apple", "pear", "cherry", "plum"}
    per_muni = Counter()
    for r in table.to_pylist():
        per_muni[r["municipality_key"]] += r["trees"]
    assert per_muni["duisburg"] == 230 and per_muni["muelheim_an_der_ruhr"] == 200
    assert per_muni["bergkamen"] > 200 and abs(per_muni["dinslaken"] - 130) <= 10
    assert all(r["trees_unclaimed"] <= r["trees"] for r in table.to_pylist())


def test_april_pilot_is_a_separate_campaign(tmp_path):
    folder = tmp_path / "trees" / "campaign"
    folder.mkdir(parents=True)
    path = demo_trees.write_april_pilot(folder, seed=7)
    table = _read(path, tmp_path).tables[trees.CAMPAIGN]
    assert sum(table.column("trees").to_pylist()) == 100
    assert len(set(table.column("municipality_key").to_pylist())) == 16
    assert set(table.column("species_group").to_pylist()) == {"other"}


def test_demo_registers_scale_and_ingest_with_row_accounting(tmp_path):
    landing = tmp_path / "landing"
    demo_trees.write(landing, SimpleNamespace(scale=0.004), seed=7)
    expected = sum(demo_trees.register_sizes(0.004).values())
    assert 3_500 <= expected <= 4_500  # ~1,000,000 × scale
    files = discover(landing, "trees", ())
    assert {f.path.suffix for f in files} == {".csv", ".geojson"}
    with warehouse.connect(tmp_path / "zi.duckdb") as con:
        summary = ingest.ingest(con, trees, landing, log=lambda m: None)
        assert summary.rows_read == summary.rows_loaded + summary.rows_rejected
        assert summary.files_failed == []
        loaded = con.execute(f"select count(*) from raw.{trees.REGISTER}").fetchall()[0][0]
        rejected = con.execute(
            "select rule, count(*) from raw.rejected_rows where source_family = 'trees' group by 1 order by 1"
        ).fetchall()
        assert loaded + sum(n for _, n in rejected) == expected
        n_registers = len(demo_trees.REGISTER_MUNICIPALITIES)
        assert dict(rejected) == {  # each register carries the same five implausible rows
            "coordinates_inside_municipality": n_registers,
            "crown_diameter_plausible": n_registers,
            "height_plausible": n_registers,
            "planting_year_not_future": n_registers,
            "tree_number_unique": n_registers,
        }
        assert trees.campaign_total(con, dt.date(2021, 10, 30)) == (10_000, 43)
        shares = trees.register_rejection_shares(con)
        assert len(shares) == n_registers and all(s[2] == 5 for s in shares)


def _as_comparable(result) -> tuple:
    return (
        result.source_file,
        result.outcome,
        result.municipality_key,
        result.rows_read,
        {name: table.to_pylist() for name, table in result.tables.items()},
        [r.__dict__ for r in result.rejections],
    )


def test_a_batch_read_on_threads_gives_each_file_what_it_gives_alone_in_the_order_delivered(tmp_path):
    """``read_files`` reads several files at once (``columnar.read_concurrently``, largest first); each file
    must come out as it does read alone on its own connection, and the results in the order of the files."""
    landing = tmp_path / "landing"
    demo_trees.write(landing, SimpleNamespace(scale=0.01), seed=7)
    unknown = landing / "trees" / "registers" / "baumkataster.csv"  # no municipality: fails as a whole
    unknown.write_text(REGISTER_HEADER + "\n", encoding="utf-8")
    files = discover(landing, "trees", ())
    assert len(files) > 3 and len({f.size_bytes for f in files}) > 3
    assert [f.size_bytes for f in files] != sorted((f.size_bytes for f in files), reverse=True)
    together = list(trees.read_files(files, None, current_year=YEAR))
    alone = [trees.read_file(f, new_connection(), YEAR) for f in files]
    assert [r.source_file for r in together] == [f.source_file for f in files]
    assert [_as_comparable(r) for r in together] == [_as_comparable(r) for r in alone]
    assert {r.outcome for r in together} >= {"failed"} and sum(r.rows_loaded for r in together) > 1_000


def test_a_reader_error_on_a_thread_is_raised_to_the_batch():
    files = [SimpleNamespace(source_file=f"f{i}", size_bytes=i) for i in range(6)]

    def read_file(landed, con):
        if landed.source_file == "f3":
            raise RuntimeError("reader bug")
        return con.execute("select ?", [landed.source_file]).fetchall()[0][0]

    with pytest.raises(RuntimeError, match="reader bug"):
        columnar.read_concurrently(files, read_file)
    assert columnar.read_concurrently(files[:3], read_file) == ["f0", "f1", "f2"]


# --- the fast register check gives the reference check's result ---------------------------------------
def _check_register_reference(
    table: pa.Table,
    crs: str,
    municipality_key: str,
    source_file: str,
    con: duckdb.DuckDBPyConnection,
    current_year: int,
) -> tuple[pa.Table, pa.Table]:
    """``check_register`` written straightforwardly: every row typed through a DuckDB temp table and every
    rule of ``register.register_reject_parts`` run over all rows. The production check takes shortcuts
    (only flagged rows through the rule SQL, the delivered Arrow columns as the good rows); this is what
    it must equal."""
    table = schemas.split_species(table)
    cur = con.cursor()
    try:
        cur.register("src", table)
        a, b = ("lon", "lat") if crs == EPSG_WGS84 else ("x", "y")
        geometry_type = "geometry_type" if "geometry_type" in table.column_names else "null::varchar"
        typed = cur.sql(register.typed_sql(a, b, geometry_type)).to_arrow_table()
        coord_a = typed.column("coord_a").to_numpy(zero_copy_only=False).astype(float)
        coord_b = typed.column("coord_b").to_numpy(zero_copy_only=False).astype(float)
        converted = to_both_crs(coord_a, coord_b, crs)
        for name, values in converted.items():
            typed = typed.append_column(name, pa.array(values, pa.float64(), mask=np.isnan(values)))
        outside, located_in = boundaries.locate(municipality_key, converted["easting_m"], converted["northing_m"])
        typed = typed.append_column("distance_outside_boundary_m", pa.array(outside, mask=np.isnan(outside)))
        typed = typed.append_column("located_in", pa.array(located_in, pa.string()))
        other_way = to_both_crs(coord_b, coord_a, crs)  # every row read with its axes swapped
        inside_then = boundaries.distance_outside(municipality_key, other_way["easting_m"], other_way["northing_m"])
        tolerance = boundaries.BOUNDARY_TOLERANCE_M
        typed = typed.append_column("axes_swapped", pa.array((outside > tolerance) & (inside_then <= tolerance)))
        cur.register("typed", typed)
        cur.execute(
            """
            create or replace temp table checked as
            select t.*,
                   case when t.tree_number is null then 1
                        else row_number() over (partition by t.tree_number order by t._row_number) end
                       as duplicate_no
            from typed t
            """
        )
        name = municipality_by_key()[municipality_key].name
        rules = "\nunion all\n".join(register.register_reject_parts(current_year, name))
        rejected = cur.sql(rules + " order by 1, 2, 4").to_arrow_table()
        cur.register("rejected", rejected)
        good = cur.sql(
            """
            select ?::varchar as municipality_key, tree_number, tree_number as tree_key, species_botanical,
                   species_german,
                   planting_year, trunk_circumference_cm, crown_diameter_m, height_m, district_name, street,
                   status, ?::varchar as source_crs, easting_m, northing_m, longitude, latitude,
                   distance_outside_boundary_m, ?::varchar as _source_file, _row_number
            from checked
            where _row_number not in (select row_number from rejected)
            order by _row_number
            """,
            params=[municipality_key, crs, source_file],
        ).to_arrow_table()
        cur.execute("drop table checked")
        return good, rejected
    finally:
        cur.close()


def _same_as_reference(table, crs, key, con):
    fast = register.check_register(table, crs, key, "registers/x", con, YEAR)
    reference = _check_register_reference(table, crs, key, "registers/x", con, YEAR)
    assert fast[0].schema == reference[0].schema
    assert fast[0].equals(reference[0]), "good rows differ from the reference check"
    assert fast[1].equals(reference[1]), "rejections differ from the reference check"
    return fast


def test_fast_register_check_equals_the_reference_on_demo_registers(tmp_path):
    landing = tmp_path / "landing"
    demo_trees.write(landing, SimpleNamespace(scale=0.02), seed=7)
    con = new_connection()
    registers = [f for f in discover(landing, "trees", ()) if "baumkataster" in f.path.name]
    assert {f.path.suffix for f in registers} == {".csv", ".geojson"}
    for landed in registers:
        key = register.register_municipality(landed.source_file)
        if landed.path.suffix == ".geojson":
            table, crs, _ = geojson.read_register(landed.path)
        else:
            schema, mapping = schemas.schema_of_file(landed.path)
            text = read_delimited(landed.path, schema.separator, schema.encoding)
            table, crs = schemas.canonical_register(text.table, schema, mapping)
        good, rejected = _same_as_reference(table, crs, key, con)
        assert good.num_rows > 0 and rejected.num_rows > 0


def test_fast_register_check_equals_the_reference_on_bad_and_padded_values():
    east, north, lon, lat = _dortmund_points()
    e, n = str(east[0]), str(north[0])
    rows = [  # tree number, botanical, german, year, trunk, crown, height, district, street, status, x, y
        ("T1", "Tilia cordata", "Linde", "1990", "120", "8,5", "15", "Mitte", "A-Str. 1", "gesund", e, n),
        (" T2 ", "\u00a0Acer\u00a0", "", "1990", "120", "8,5", "62", " Süd", "B-Str. ", "", e, n),
        ("T1", "Tilia", "Linde", "2102", "x", "41", "zwölf", "Mitte", "", "gesund", n, e),
        ("", "", "", "", "", "", "", "", "", "", "", ""),
        ("T5", "Tilia", "Linde", "1e3", "1e9", "nan", "inf", "Ost", "C", "tot", "nan", n),
        ("T2", "Tilia", None, "1990.0", "120", "8.5", "15", None, "C", "gesund", e, n),
        ("T7", "Tilia", "Linde", " 1990 ", " 120 ", " 8,5 ", " 15 ", "Mitte", "C", "gesund", f" {e} ", f" {n} "),
    ]
    names = [
        "tree_number",
        "species_botanical",
        "species_german",
        "planting_year",
        "trunk_circumference_cm",
        "crown_diameter_m",
        "height_m",
        "district_name",
        "street",
        "status",
        "x",
        "y",
    ]
    table = pa.table(
        {
            "_row_number": pa.array(range(2, len(rows) + 2), pa.int64()),
            **{c: pa.array([r[i] for r in rows], pa.string()) for i, c in enumerate(names)},
            "lon": pa.nulls(len(rows), pa.string()),
            "lat": pa.nulls(len(rows), pa.string()),
        }
    )
    con = new_connection()
    good, rejected = _same_as_reference(table, EPSG_UTM32, "dortmund", con)
    assert good.column("tree_number").to_pylist() == ["T1", "T7"]
    assert good.column("species_german").to_pylist() == ["Linde", "Linde"]
    # the same trees from a GeoJSON whose values need no trimming, and a file with rows out of order
    geo = (
        table.drop_columns(["x", "y", "lon", "lat"])
        .append_column("lon", pa.array([str(lon[0])] * len(rows)))
        .append_column("lat", pa.array([str(lat[0])] * len(rows)))
        .append_column("x", pa.nulls(len(rows), pa.string()))
        .append_column("y", pa.nulls(len(rows), pa.string()))
        .append_column("geometry_type", pa.array(["Point"] * len(rows)))
    )
    _same_as_reference(geo, EPSG_WGS84, "dortmund", con)
    _same_as_reference(table.take([3, 0, 1, 2, 4, 5, 6]), EPSG_UTM32, "dortmund", con)  # sorted first


# --- GeoJSON: the columnar path (pyarrow, numbers read as their literal text) against the exact path -----


def _geojson_features(values: list, coordinates=None) -> dict:
    features = []
    for i, value in enumerate(values):
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": coordinates or [7.4654, 51.5136]},
                "properties": {
                    "Baumnummer": f"DO-{i}",
                    "Art_botanisch": "Tilia cordata",
                    "Pflanzjahr": 1998,
                    "Baumhoehe_m": value,
                    "Strasse": "Weg 1",
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _exact_or_error(data: bytes):
    try:
        return geojson._register_columns_from_geojson(data)
    except (FileProblem, HeaderError) as exc:
        return type(exc), str(exc)


def _columnar_agrees(data: bytes) -> bool:
    """True when the columnar path took the file; either way the public reader equals the exact path."""
    fast = geojson._register_columns_columnar(data)
    exact = _exact_or_error(data)
    if fast is not None:
        assert not isinstance(exact[0], type), f"exact path refused what the columnar path read: {exact}"
        assert fast[1] == exact[1] and fast[0].equals(exact[0]), (fast[0].to_pylist()[:3], exact[0].to_pylist()[:3])
    return fast is not None


PLAIN = json.dumps(_geojson_features([15.0, 12.5, 7.1]), ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize(
    "text, taken",
    [
        (PLAIN, True),  # as the demo writes it: the columnar path must take it
        (json.dumps(_geojson_features([15.0, 12.5, 7.1]), indent=2, ensure_ascii=False), True),  # spaces, newlines
        (PLAIN.replace('"Weg 1"', '"Straße \\u00df"'), True),  # escapes decode alike
        (PLAIN.replace('"Weg 1"', '"Weg 1,2"'), False),  # a quote put inside a string breaks the document
        (PLAIN.replace('"Weg 1"', '"a\\":1,\\"b"'), False),
        (PLAIN.replace('"Weg 1"', "true"), True),  # booleans print as true / false
        (PLAIN.replace('"Weg 1"', '"118.50"'), False),  # a number-like string: declined, the exact path decides
        (PLAIN.replace("12.5", "12.50"), False),  # non-canonical literals print as Python prints the value
        (PLAIN.replace("12.5", "1.25e1"), False),
        (PLAIN.replace("12.5", "-0"), False),
        (PLAIN.replace("12.5", "0.00001"), False),
        (PLAIN.replace("12.5", "0.0001"), True),
        (PLAIN.replace("12.5", "1234567890123.4567"), False),
        (PLAIN.replace("1998", "12345678901234567890"), False),
        (PLAIN.replace("1998", "01998"), False),  # invalid JSON: the exact path refuses the file
        (PLAIN.replace("12.5", "NaN"), False),
        (PLAIN.replace("7.4654", "7"), True),  # an integer coordinate prints as written, 7
        (PLAIN.replace("7.4654,", "7.4654,3,"), True),  # third coordinate ignored
        (PLAIN.replace('"Point"', '"LineString"', 1), True),
        (PLAIN.replace('"geometry":{"type":"Point","coordinates":[7.4654,51.5136]}', '"geometry":null', 1), True),
        (PLAIN.replace('"properties":{"Baumnummer":"DO-1",', '"properties":{"Baumnummer":"DO-1","Status":null,'), True),
        (
            PLAIN.replace(
                '"FeatureCollection",',
                '"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::25832"}},',
            ),
            True,
        ),
        (
            PLAIN.replace(
                '"FeatureCollection",', '"FeatureCollection","crs":{"type":"name","properties":{"name":"EPSG:3857"}},'
            ),
            True,
        ),  # unsupported: both paths raise the same FileProblem
        (PLAIN.replace('"Pflanzjahr":1998', '"Pflanzjahr":1998,"Pflanzjahr":1999', 1), False),  # duplicate key
        ("\ufeff" + PLAIN, False),
        (PLAIN + "\n" + PLAIN, False),
        ("[" + PLAIN + "]", False),
        (PLAIN.replace('"Weg 1"', '{"a":1}'), False),
    ],
)
def test_columnar_geojson_path_equals_the_exact_path(text, taken):
    data = text.encode("utf-8")
    try:
        assert _columnar_agrees(data) is taken
    except FileProblem as exc:  # raised by the columnar path only where the exact path raises it too
        assert _exact_or_error(data) == (FileProblem, str(exc))
        assert taken


def test_columnar_geojson_path_equals_the_exact_path_on_demo_registers(tmp_path):
    landing = tmp_path / "landing"
    demo_trees.write(landing, SimpleNamespace(scale=0.02), seed=7)
    files = sorted(landing.rglob("*.geojson"))
    assert files and all(_columnar_agrees(f.read_bytes()) for f in files)


def test_several_feature_collections_in_one_file_are_numbered_on_and_every_tree_is_accounted_for(tmp_path):
    """A top-level array of collections: features are numbered through the file, so a bad tree in the
    second collection is rejected as itself (numbering each collection from 1 dropped its namesake in the
    first collection too, and the file's accounting failed)."""

    def collection(prefix: str, bad: int | None = None) -> dict:
        return {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [7.4654, 51.5136]},
                    "properties": {
                        "Baumnummer": f"{prefix}-{i}",
                        "Art_botanisch": "Tilia cordata",
                        "Baumhoehe_m": 99 if i == bad else 10,
                    },
                }
                for i in range(3)
            ],
        }

    path = tmp_path / "trees" / "baumkataster_dortmund.geojson"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([collection("A"), collection("B", bad=1)]), encoding="utf-8")
    result = _read(path, tmp_path)  # _read runs FileResult.check(): read = loaded + rejected
    assert [(r.row_number, r.rule) for r in result.rejections] == [(5, "height_plausible")]
    assert result.tables[trees.REGISTER].column("_row_number").to_pylist() == [1, 2, 3, 4, 6]


# --- real geography: boundaries of the 53 municipalities ---------------------------------------------------
REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "real-data"
NRW_BOUNDARIES = REAL_DATA / "boundaries" / "gemeinden_nrw.geojson"
FLENSBURG = REAL_DATA / "trees" / "flensburg_lebende-baeume_first5000.csv"
#: Two trees near the Bochum/Herne border (EPSG:25832): one ~480 m inside Herne, one ~350 m inside Bochum.
IN_HERNE = (374300.0, 5708800.0)
IN_BOCHUM = (375100.0, 5708600.0)


def _nrw_polygon(name: str):
    """A municipality's polygon straight from the publisher's file (not our derived one), in EPSG:25832."""
    import shapely

    from zi_warehouse.trees.coordinates import to_utm

    doc = json.loads(NRW_BOUNDARIES.read_text(encoding="utf-8"))
    [feature] = [f for f in doc["features"] if f["properties"]["GEN"] == name]
    return shapely.transform(
        shapely.from_geojson(json.dumps(feature["geometry"])), lambda c: np.column_stack(to_utm(c[:, 0], c[:, 1]))
    )


def _register(tmp_path: Path, key: str, points: list[tuple[float, float]]) -> Path:
    path = tmp_path / "trees" / f"baumkataster_{key}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        f"T{i};Tilia cordata;Winter-Linde;1990;120;8,5;15;Mitte;A-Str.;gesund;{x:.2f};{y:.2f}".replace(".", ",")
        for i, (x, y) in enumerate(points, start=1)
    ]
    path.write_text("\n".join([REGISTER_HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def test_a_tree_a_few_hundred_metres_across_the_border_is_rejected_and_one_inside_loads(tmp_path):
    import shapely

    bochum, herne = _nrw_polygon("Bochum"), _nrw_polygon("Herne")
    # the points are what they are said to be on the publisher's own polygons
    assert shapely.contains_xy(herne, *IN_HERNE) and not shapely.contains_xy(bochum, *IN_HERNE)
    assert shapely.distance(bochum, shapely.Point(IN_HERNE)) > 2 * boundaries.BOUNDARY_TOLERANCE_M
    assert shapely.contains_xy(bochum, *IN_BOCHUM)
    assert shapely.distance(bochum.exterior, shapely.Point(IN_BOCHUM)) > boundaries.BOUNDARY_TOLERANCE_M
    result = _read(_register(tmp_path, "bochum", [IN_BOCHUM, IN_HERNE]), tmp_path)
    loaded = result.tables[trees.REGISTER]
    assert loaded.column("tree_number").to_pylist() == ["T1"]
    assert loaded.column("distance_outside_boundary_m").to_pylist() == [0.0]
    [outside] = result.rejections
    assert (outside.row_number, outside.rule) == (3, "coordinates_inside_municipality")
    assert "außerhalb der Grenze von Bochum (in Herne)" in outside.message_de
    # the same two trees as Herne's register: the other way round
    herne_result = _read(_register(tmp_path, "herne", [IN_BOCHUM, IN_HERNE]), tmp_path)
    assert herne_result.tables[trees.REGISTER].column("tree_number").to_pylist() == ["T2"]
    assert "(in Bochum)" in herne_result.rejections[0].message_de


def test_a_tree_with_its_coordinates_the_wrong_way_round_is_told_so(tmp_path):
    """Easting and northing swapped put a tree thousands of km away; the message says to swap them back, because
    read the other way round it lies in its municipality. A tree merely in the neighbour's area is not told so."""
    result = _read(_register(tmp_path, "bochum", [IN_BOCHUM[::-1], IN_HERNE]), tmp_path)
    swapped, neighbour = sorted(result.rejections, key=lambda r: r.row_number)
    assert (swapped.row_number, swapped.rule) == (2, "coordinates_inside_municipality")
    assert "scheinen vertauscht" in swapped.message_de and "läge der Baum in Bochum" in swapped.message_de
    assert "km" not in swapped.message_de
    assert "vertauscht" not in neighbour.message_de and "(in Herne)" in neighbour.message_de


def test_a_tree_within_the_boundary_tolerance_loads_and_shows_its_distance(tmp_path):
    """The simplified polygons of neighbours disagree by up to ~200 m: a tree that close outside counts."""
    t = np.linspace(0, 1, 401)
    x = IN_BOCHUM[0] + t * (IN_HERNE[0] - IN_BOCHUM[0])
    y = IN_BOCHUM[1] + t * (IN_HERNE[1] - IN_BOCHUM[1])
    outside = boundaries.distance_outside("bochum", x, y)
    near = int(np.argmin(np.abs(outside - boundaries.BOUNDARY_TOLERANCE_M / 2)))
    beyond = int(np.argmin(np.abs(outside - boundaries.BOUNDARY_TOLERANCE_M * 1.5)))
    result = _read(_register(tmp_path, "bochum", [(x[near], y[near]), (x[beyond], y[beyond])]), tmp_path)
    loaded = result.tables[trees.REGISTER]
    assert loaded.column("tree_number").to_pylist() == ["T1"]
    assert loaded.column("distance_outside_boundary_m")[0].as_py() == pytest.approx(outside[near], abs=1)
    assert [r.rule for r in result.rejections] == ["coordinates_inside_municipality"]


def test_the_boundary_reference_file_is_what_the_script_derives_from_the_publishers_file():
    import importlib.util

    from zi_warehouse.config import SEEDS_DIR

    spec = importlib.util.spec_from_file_location(
        "derive", Path(__file__).resolve().parents[1] / "scripts" / "derive_municipality_boundaries.py"
    )
    derive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(derive)
    boundaries_text, seed_text = derive.derive(NRW_BOUNDARIES)
    assert boundaries.BOUNDARIES_FILE.read_text(encoding="utf-8") == boundaries_text
    assert (SEEDS_DIR / "municipalities.csv").read_text(encoding="utf-8") == seed_text
    doc = json.loads(boundaries_text)
    assert doc["source"] == "© GeoBasis-DE / BKG 2013 (Daten verändert)" and "Namensnennung" in doc["license"]
    assert len(doc["features"]) == 53
    ags = {f["properties"]["municipality_key"]: f["properties"]["ags"] for f in doc["features"]}
    assert ags["bochum"] == "05911000" and ags["muelheim_an_der_ruhr"] == "05117000"
    assert municipality_by_key()["bochum"].area_km2 == 145.66  # the official area, not the rough one


# --- register schemas as data: the real Flensburg register -------------------------------------------------


def test_the_flensburg_register_reads_through_its_mapping_entry_and_lands_in_flensburg():
    schema, mapping = schemas.schema_of_file(FLENSBURG)
    assert schema.name == "flensburg_opendata" and schema.crs == "EPSG:31467"
    text = read_delimited(FLENSBURG, schema.separator, schema.encoding)
    assert text.malformed == [] and text.table.num_rows == 5000  # every row parsed
    canon, crs = schemas.canonical_register(text.table, schema, mapping)
    canon = schemas.split_species(canon)
    x = pa.compute.cast(canon.column("x"), pa.float64()).to_numpy()
    y = pa.compute.cast(canon.column("y"), pa.float64()).to_numpy()
    converted = to_both_crs(x, y, crs)
    # Flensburg's city area spans about 54.75-54.83 N and 9.36-9.51 E
    assert ((converted["latitude"] >= 54.74) & (converted["latitude"] <= 54.84)).all()
    assert ((converted["longitude"] >= 9.35) & (converted["longitude"] <= 9.52)).all()
    assert converted["latitude"].max() - converted["latitude"].min() > 0.05  # spread over the city, not one spot
    # the column the file calls Hochwert is the northing: swapped, the trees would land in the sea off Africa
    assert float(text.table.column("hochwert,N,19,11")[0].as_py()) == pytest.approx(y[0])
    first = canon.slice(0, 1).to_pylist()[0]
    assert (first["tree_number"], first["species_botanical"], first["species_german"]) == (
        " 20",
        "Alnus glutinosa",
        "Schwarz-Erle",
    )
    assert first["street"] == "EX Alsterbogen/Ausgleichsfläche"


def test_the_flensburg_register_declared_as_bochums_is_rejected_tree_by_tree_for_its_location(tmp_path):
    landing = tmp_path / "landing"
    folder = landing / "trees" / "registers" / "bochum"
    folder.mkdir(parents=True)
    (folder / FLENSBURG.name).symlink_to(FLENSBURG)  # read in place, not copied
    with warehouse.connect(tmp_path / "zi.duckdb") as con:
        summary = ingest.ingest(con, trees, landing, log=lambda m: None)
        ledger = con.execute(
            "select rows_read, rows_loaded, rows_rejected, outcome, municipality_key from raw.ingestion_files"
        ).fetchall()
        located = con.execute(
            "select count(distinct row_number), min(message_de) from raw.rejected_rows "
            "where rule = 'coordinates_inside_municipality'"
        ).fetchall()[0]
    assert ledger == [(5000, 0, 5000, "rejected", "bochum")]
    assert summary.rows_read == summary.rows_loaded + summary.rows_rejected == 5000
    assert located[0] == 5000  # every tree, for its location
    assert "außerhalb der Grenze von Bochum (außerhalb der Metropole Ruhr)" in located[1]


def test_a_register_in_an_unknown_schema_fails_with_the_headers_found(tmp_path):
    path = tmp_path / "trees" / "baumkataster_essen.csv"
    path.parent.mkdir(parents=True)
    path.write_text("Objekt-ID;Gattung;Lage X;Lage Y\n1;Tilia;1;2\n", encoding="utf-8")
    result = _read(path, tmp_path)
    assert result.outcome == "failed" and result.rejections[0].rule == "header_mismatch"
    message = result.error_message
    assert message.startswith(
        "Schema des Baumkatasters nicht erkannt. Gefundene Spalten: 'Objekt-ID', 'Gattung', 'Lage X', 'Lage Y'."
    )
    assert "register_schemas.csv" in message


def test_a_new_senders_schema_is_rows_in_the_data_files_only(tmp_path, monkeypatch):
    """A municipality sending WKT in Gauss-Krüger, Windows-1252, tab-separated, decimal commas, every field
    quoted: two data rows and its header rows make it readable; no code changes."""
    from pyproj import Transformer

    schemas_csv, headers_csv = tmp_path / "register_schemas.csv", tmp_path / "register_headers.csv"
    schemas_csv.write_text(
        schemas.REGISTER_SCHEMAS_CSV.read_text(encoding="utf-8")
        + "test_gk_wkt,Teststadt (GIS-Export),tab,cp1252,comma,wkt,EPSG:31467,,\n",
        encoding="utf-8",
    )
    headers_csv.write_text(
        schemas.REGISTER_HEADERS_CSV.read_text(encoding="utf-8")
        + "test_gk_wkt,tree_number,Objekt-Nr.\ntest_gk_wkt,species_german,Baumart (deutsch)\n"
        + "test_gk_wkt,height_m,Höhe\ntest_gk_wkt,geometry_wkt,Geometrie\n"
        + "test_gk_wkt,ignore,Bemerkung\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(schemas, "REGISTER_SCHEMAS_CSV", schemas_csv)
    monkeypatch.setattr(schemas, "REGISTER_HEADERS_CSV", headers_csv)
    schemas.register_schemas.cache_clear()
    try:
        gk_x, gk_y = Transformer.from_crs("EPSG:25832", "EPSG:31467", always_xy=True).transform(*IN_BOCHUM)
        lines = [
            '"Objekt-Nr."\t"Baumart (deutsch)"\t"Höhe"\t"Geometrie"\t"Bemerkung"',
            f'"B-1"\t"Stieleiche"\t"12,5"\t"POINT ({gk_x:.3f} {gk_y:.3f})"\t"Straßenbaum"',
            '"B-2"\t"Rosskastanie"\t"9"\t"POINT EMPTY"\t""',
        ]
        path = tmp_path / "trees" / "baumkataster_bochum.csv"
        path.parent.mkdir(parents=True)
        path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
        result = _read(path, tmp_path)
    finally:
        schemas.register_schemas.cache_clear()
    [tree] = result.tables[trees.REGISTER].to_pylist()
    assert (tree["tree_number"], tree["species_german"], tree["height_m"], tree["source_crs"]) == (
        "B-1",
        "Stieleiche",
        12.5,
        "EPSG:31467",
    )
    assert (tree["easting_m"], tree["northing_m"]) == pytest.approx(IN_BOCHUM, abs=0.01)
    [bad] = result.rejections
    assert (bad.row_number, bad.rule, bad.value_found) == (3, "coordinates_missing", "POINT EMPTY")


# --- per-row tolerance ----------------------------------------------------------------------------------


def test_a_register_with_a_stray_byte_a_short_and_a_long_row_loads_every_other_row(tmp_path):
    good = "T{};Tilia cordata;Winter-Linde;1990;120;8,5;15;Süd;Hauptstraße {};gesund;{};{}"
    x, y = (f"{v:.2f}".replace(".", ",") for v in IN_BOCHUM)
    rows = [good.format(i, i, x, y).encode("utf-8") for i in range(1, 7)]
    rows[1] = rows[1].replace("Süd".encode(), b"S\xfcd")  # a Latin-1 byte in a UTF-8 file
    rows[3] = b"T4;Tilia cordata;Winter-Linde;1990"  # short
    rows[4] = rows[4] + b";Bemerkung;noch was"  # long
    path = tmp_path / "trees" / "baumkataster_bochum.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\n".join([REGISTER_HEADER.encode("utf-8"), *rows]) + b"\n")
    result = _read(path, tmp_path)  # FileResult.check(): read = loaded + rejected
    assert result.outcome == "partially_loaded" and result.rows_read == 6
    assert result.tables[trees.REGISTER].column("tree_number").to_pylist() == ["T1", "T3", "T6"]
    assert result.tables[trees.REGISTER].column("district_name").to_pylist() == ["Süd"] * 3
    found = {r.row_number: r for r in result.rejections}
    assert sorted(found) == [3, 5, 6]
    assert found[3].rule == "row_encoding" and "0xFC" in found[3].message_de and found[3].value_found.startswith("T2;")
    assert found[5].rule == "row_field_count" and "4 statt 12 Felder" in found[5].message_de
    assert found[6].rule == "row_field_count" and "14 statt 12 Felder" in found[6].message_de
    assert all(r.column is None for r in found.values())


def test_a_raw_row_in_a_rejection_is_shortened(tmp_path):
    path = tmp_path / "trees" / "baumkataster_bochum.csv"
    path.parent.mkdir(parents=True)
    path.write_text(REGISTER_HEADER + "\nT1;" + "x" * 500 + "\n", encoding="utf-8")
    [rejection] = _read(path, tmp_path).rejections
    assert len(rejection.value_found) == 120 and rejection.value_found.endswith("…")


def test_campaign_distribution_points_are_checked_against_their_municipality(tmp_path):
    from zi_warehouse.trees.coordinates import to_wgs84

    (he_lon, he_lat), (bo_lon, bo_lat) = (to_wgs84(*IN_HERNE), to_wgs84(*IN_BOCHUM))

    def position(lon, lat):
        return f"{lat:.6f};{lon:.6f}".replace(".", ",")

    rows = [
        f"Betriebshof Bochum;Bochum;Apfel;100;30.10.2021;3;{position(bo_lon, bo_lat)}",
        f"Gartencenter Bochum;Bochum;Birne;50;30.10.2021;0;{position(he_lon, he_lat)}",  # stands in Herne
        "Rathaus Herne;Herne;Kirsche;20;30.10.2021;0;;",  # no position: not checked
        "Schule Herne;Herne;Pflaume;10;30.10.2021;0;51,5;",  # half a position
    ]
    path = tmp_path / "trees" / "campaign" / "klimabaeume.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([CAMPAIGN_HEADER + ";Breite;Länge", *rows]) + "\n", encoding="utf-8")
    result = _read(path, tmp_path)
    loaded = result.tables[trees.CAMPAIGN].to_pylist()
    assert [r["distribution_point"] for r in loaded] == ["Betriebshof Bochum", "Rathaus Herne"]
    assert loaded[0]["latitude"] == pytest.approx(bo_lat, abs=1e-6) and loaded[1]["latitude"] is None
    assert {(r.row_number, r.rule) for r in result.rejections} == {
        (3, "distribution_point_inside_municipality"),
        (5, "distribution_point_coordinates_valid"),
    }
    inside = next(r for r in result.rejections if r.row_number == 3)
    assert "außerhalb der Grenze von Bochum (in Herne)" in inside.message_de
