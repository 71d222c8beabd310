"""Trees: campaign lists and tree registers (CSV EPSG:25832, GeoJSON WGS84), plausibility, row accounting."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import duckdb
import pyarrow as pa

from zi_warehouse import ingest, warehouse
from zi_warehouse.columnar import HeaderError, new_connection
from zi_warehouse.delimited import read_delimited_as_strings
from zi_warehouse.demo import trees as demo_trees
from zi_warehouse.landing import discover
from zi_warehouse.sources import trees
from zi_warehouse.trees import FileProblem, geojson, register
from zi_warehouse.trees.coordinates import EPSG_UTM32, EPSG_WGS84, to_both_crs

YEAR = 2026  # "today" for the planting-year check, fixed so the tests do not age

REGISTER_HEADER = ("Baumnummer;Art botanisch;Art deutsch;Pflanzjahr;Stammumfang cm;Kronendurchmesser m;"
                   "Baumhöhe m;Stadtbezirk;Straße;Status;Rechtswert;Hochwert")


def _utm_northing_on_central_meridian(lat_deg: float) -> float:
    """GRS80 meridian arc × 0.9996 (series to e⁶): an independent reference for EPSG:25832 at 9° E."""
    a, f = 6378137.0, 1 / 298.257222101
    e2 = f * (2 - f)
    e4, e6 = e2 * e2, e2 * e2 * e2
    p = math.radians(lat_deg)
    m = a * ((1 - e2 / 4 - 3 * e4 / 64 - 5 * e6 / 256) * p
             - (3 * e2 / 8 + 3 * e4 / 32 + 45 * e6 / 1024) * math.sin(2 * p)
             + (15 * e4 / 256 + 45 * e6 / 1024) * math.sin(4 * p)
             - (35 * e6 / 3072) * math.sin(6 * p))
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
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
         "properties": {"Baumnummer": f"DO-{i}", "Art_botanisch": "Tilia cordata", "Pflanzjahr": 1990,
                        "Baumhoehe_m": 15.2, "Kronendurchmesser_m": 8.5}}
        for i, (x, y) in enumerate(zip(lon, lat))
    ]
    (folder / "baumkataster_dortmund_2024.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
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
        f"T9;Tilia cordata;Winter-Linde;1990;120;8,5;0,4;Mitte;A-Str.;gesund;;",  # height low + no coordinates
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
        (3, "height_plausible"), (4, "crown_diameter_plausible"), (5, "planting_year_not_future"),
        (6, "coordinates_inside_municipality"), (7, "tree_number_unique"), (8, "height_not_numeric"),
        (10, "height_plausible"), (10, "coordinates_missing"),
    }
    assert result.rows_rejected == 7 and result.outcome == "partially_loaded"
    height = next(r for r in result.rejections if r.rule == "height_plausible" and r.row_number == 3)
    assert height.column == "height_m" and height.value_found == "62" and "Baumhöhe" in height.message_de
    outside = next(r for r in result.rejections if r.rule == "coordinates_inside_municipality")
    assert "außerhalb der Kommune" in outside.message_de


def test_municipality_of_a_register_comes_from_its_name_or_folder():
    assert register.register_municipality("trees/baumkataster_muelheim_an_der_ruhr_2024.csv") == "muelheim_an_der_ruhr"
    assert register.register_municipality("trees/registers/castrop-rauxel/export.geojson") == "castrop_rauxel"
    assert register.register_municipality("trees/registers/baumkataster.csv") is None


def test_register_without_recognisable_municipality_or_with_unknown_header_fails_whole_file(tmp_path):
    folder = tmp_path / "trees"
    folder.mkdir()
    (folder / "baumkataster.csv").write_text(REGISTER_HEADER + "\nT1;;;;;;;;;;1;2\n", encoding="utf-8")
    (folder / "baumkataster_bochum.csv").write_text(REGISTER_HEADER + ";Objektart\nT1;;;;;;;;;;1;2;x\n",
                                                    encoding="utf-8")
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
        ("duisburg", "apple", 100, 3), ("duisburg", "plum", 30, 0), ("muelheim_an_der_ruhr", "cherry", 50, 0)]
    assert loaded[2]["distribution_date"] == dt.date(2021, 10, 30)
    assert {(r.row_number, r.rule) for r in result.rejections} == {
        (5, "municipality_known"), (6, "species_group_known"), (7, "trees_unclaimed_valid"),
        (8, "trees_positive_integer"), (8, "distribution_date_valid")}
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
            "coordinates_inside_municipality": n_registers, "crown_diameter_plausible": n_registers,
            "height_plausible": n_registers, "planting_year_not_future": n_registers,
            "tree_number_unique": n_registers,
        }
        assert trees.campaign_total(con, dt.date(2021, 10, 30)) == (10_000, 43)
        shares = trees.register_rejection_shares(con)
        assert len(shares) == n_registers and all(s[2] == 5 for s in shares)


# --- the fast register check gives the reference check's result ---------------------------------------
def _check_register_reference(table: pa.Table, crs: str, municipality_key: str, source_file: str,
                              con: duckdb.DuckDBPyConnection, current_year: int) -> tuple[pa.Table, pa.Table]:
    """``check_register`` as it was first written: every row typed through a DuckDB temp table and every
    rule of ``register.register_reject_parts`` run over all rows. The production check takes shortcuts
    (only flagged rows through the rule SQL, the delivered Arrow columns as the good rows); this is what
    it must equal."""
    cur = con.cursor()
    try:
        cur.register("src", table)
        a, b = ("x", "y") if crs == EPSG_UTM32 else ("lon", "lat")
        geometry_type = "geometry_type" if "geometry_type" in table.column_names else "null::varchar"
        typed = cur.sql(register._REGISTER_TYPED_SQL.format(a=a, b=b, geometry_type=geometry_type, extra="")
                        ).to_arrow_table()
        coord_a = typed.column("coord_a").to_numpy(zero_copy_only=False).astype(float)
        coord_b = typed.column("coord_b").to_numpy(zero_copy_only=False).astype(float)
        for name, values in to_both_crs(coord_a, coord_b, crs).items():
            typed = typed.append_column(name, pa.array(values, pa.float64(), mask=np.isnan(values)))
        cur.register("typed", typed)
        cur.register("refs", register._reference_points())
        cur.execute(
            """
            create or replace temp table checked as
            select t.*,
                   sqrt(power(t.easting_m - r.ref_easting_m, 2) + power(t.northing_m - r.ref_northing_m, 2))
                       as distance_to_reference_point_m,
                   r.inside_radius_m,
                   case when t.tree_number is null then 1
                        else row_number() over (partition by t.tree_number order by t._row_number) end
                       as duplicate_no
            from typed t
            cross join (select * from refs where municipality_key = ?) r
            """,
            [municipality_key],
        )
        rules = "\nunion all\n".join(register.register_reject_parts(current_year))
        rejected = cur.sql(rules + " order by 1, 2, 4").to_arrow_table()
        cur.register("rejected", rejected)
        good = cur.sql(
            """
            select ?::varchar as municipality_key, tree_number, species_botanical, species_german,
                   planting_year, trunk_circumference_cm, crown_diameter_m, height_m, district_name, street,
                   status, ?::varchar as source_crs, easting_m, northing_m, longitude, latitude,
                   distance_to_reference_point_m, ?::varchar as _source_file, _row_number
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
            table, crs = geojson.read_register(landed.path)
        else:
            table, crs = register.canonical_register(read_delimited_as_strings(landed.path)[0])
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
    names = ["tree_number", "species_botanical", "species_german", "planting_year", "trunk_circumference_cm",
             "crown_diameter_m", "height_m", "district_name", "street", "status", "x", "y"]
    table = pa.table({"_row_number": pa.array(range(2, len(rows) + 2), pa.int64()),
                      **{c: pa.array([r[i] for r in rows], pa.string()) for i, c in enumerate(names)},
                      "lon": pa.nulls(len(rows), pa.string()), "lat": pa.nulls(len(rows), pa.string())})
    con = new_connection()
    good, rejected = _same_as_reference(table, EPSG_UTM32, "dortmund", con)
    assert good.column("tree_number").to_pylist() == ["T1", "T7"]
    assert good.column("species_german").to_pylist() == ["Linde", "Linde"]
    # the same trees from a GeoJSON whose values need no trimming, and a file with rows out of order
    geo = table.drop_columns(["x", "y", "lon", "lat"]).append_column("lon", pa.array([str(lon[0])] * len(rows))) \
        .append_column("lat", pa.array([str(lat[0])] * len(rows))).append_column("x", pa.nulls(len(rows), pa.string())) \
        .append_column("y", pa.nulls(len(rows), pa.string())).append_column("geometry_type", pa.array(["Point"] * len(rows)))
    _same_as_reference(geo, EPSG_WGS84, "dortmund", con)
    _same_as_reference(table.take([3, 0, 1, 2, 4, 5, 6]), EPSG_UTM32, "dortmund", con)  # sorted first


# --- GeoJSON: the columnar path (pyarrow, numbers read as their literal text) against the exact path -----

def _geojson_features(values: list, coordinates=None) -> dict:
    features = []
    for i, value in enumerate(values):
        features.append({"type": "Feature",
                         "geometry": {"type": "Point", "coordinates": coordinates or [7.4654, 51.5136]},
                         "properties": {"Baumnummer": f"DO-{i}", "Art_botanisch": "Tilia cordata",
                                        "Pflanzjahr": 1998, "Baumhoehe_m": value, "Strasse": "Weg 1"}})
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


@pytest.mark.parametrize("text, taken", [
    (PLAIN, True),  # as the demo writes it: the columnar path must take it
    (json.dumps(_geojson_features([15.0, 12.5, 7.1]), indent=2, ensure_ascii=False), True),  # spaces, newlines
    (PLAIN.replace('"Weg 1"', '"Straße \\u00df"'), True),  # escapes decode alike
    (PLAIN.replace('"Weg 1"', '"Weg 1,2"'), False),  # a quote put inside a string breaks the document
    (PLAIN.replace('"Weg 1"', '"a\\":1,\\"b"'), False),
    (PLAIN.replace('"Weg 1"', 'true'), True),  # booleans print as true / false
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
    (PLAIN.replace('"FeatureCollection",', '"FeatureCollection","crs":{"type":"name","properties":'
                   '{"name":"urn:ogc:def:crs:EPSG::25832"}},'), True),
    (PLAIN.replace('"FeatureCollection",', '"FeatureCollection","crs":{"type":"name","properties":'
                   '{"name":"EPSG:3857"}},'), True),  # unsupported: both paths raise the same FileProblem
    (PLAIN.replace('"Pflanzjahr":1998', '"Pflanzjahr":1998,"Pflanzjahr":1999', 1), False),  # duplicate key
    ("\ufeff" + PLAIN, False),
    (PLAIN + "\n" + PLAIN, False),
    ("[" + PLAIN + "]", False),
    (PLAIN.replace('"Weg 1"', '{"a":1}'), False),
])
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
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [7.4654, 51.5136]},
             "properties": {"Baumnummer": f"{prefix}-{i}", "Art_botanisch": "Tilia cordata",
                            "Baumhoehe_m": 99 if i == bad else 10}} for i in range(3)]}
    path = tmp_path / "trees" / "baumkataster_dortmund.geojson"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([collection("A"), collection("B", bad=1)]), encoding="utf-8")
    result = _read(path, tmp_path)  # _read runs FileResult.check(): read = loaded + rejected
    assert [(r.row_number, r.rule) for r in result.rejections] == [(5, "height_plausible")]
    assert result.tables[trees.REGISTER].column("_row_number").to_pylist() == [1, 2, 3, 4, 6]
