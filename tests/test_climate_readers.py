"""Climate readers: the real DWD files read exactly (in place), archives, station list, rejections, demo.

Expected values are computed here with a plain reading of the files (split lines, strip, -999 -> None),
never with the reader under test.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest

from zi_warehouse import dwd
from zi_warehouse.demo import climate as demo_climate
from zi_warehouse.demo.programme import build_programme
from zi_warehouse.landing import LandedFile, discover, file_sha256
from zi_warehouse.sources import climate

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-data" / "dwd"
FILE_403 = REAL / "produkt_klima_tag_19500101_20211231_00403.txt"
FILE_429 = REAL / "produkt_klima_tag_19861001_19870131_00429.txt"
STATION_LIST = REAL / "KL_Tageswerte_Beschreibung_Stationen.txt"

pytestmark = pytest.mark.skipif(not FILE_403.exists(), reason="real DWD files not available")


def landed(path: Path, source_file: str | None = None) -> LandedFile:
    """A landed file that points at the file where it is (real files are read in place)."""
    return LandedFile(path, source_file or f"climate/{path.name}", file_sha256(path), path.stat().st_size)


def plain_product_rows(path: Path) -> list[dict]:
    """The product file read the plainest way: every line split on ';', padding stripped."""
    text = path.read_bytes().decode("ascii")
    lines = text.split("\r\n")
    assert lines[-1] == "", "the file ends with CRLF"
    header = [h.strip() for h in lines[0].split(";")]
    return [dict(zip(header, (f.strip() for f in line.split(";")))) for line in lines[1:-1]]


def expected_value(text: str, integer: bool):
    if text == "-999":
        return None
    return int(text) if integer else Decimal(text)


def assert_every_value(table, rows: list[dict]) -> None:
    assert table.num_rows == len(rows)
    got = table.to_pydict()
    assert got["station_id"] == [int(r["STATIONS_ID"]) for r in rows]
    assert got["measured_on"] == [dt.datetime.strptime(r["MESS_DATUM"], "%Y%m%d").date() for r in rows]
    assert got["_row_number"] == list(range(2, len(rows) + 2))
    for col in dwd.INTEGER_COLUMNS + dwd.DECIMAL_COLUMNS:
        expected = [expected_value(r[col], col in dwd.INTEGER_COLUMNS) for r in rows]
        if got[col.lower()] != expected:
            first = next(i for i, (a, b) in enumerate(zip(got[col.lower()], expected)) if a != b)
            raise AssertionError(
                f"{col} differs first in line {first + 2}: {got[col.lower()][first]!r} != {expected[first]!r}"
            )


def test_real_403_every_row_every_value():
    result = climate.read_file(landed(FILE_403))
    result.check()
    rows = plain_product_rows(FILE_403)
    assert len(rows) == 26_298
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (26_298, 26_298, 0)
    table = result.tables["climate__daily"]
    assert_every_value(table, rows)
    assert set(table.column("delivery_kind").to_pylist()) == {"product_file"}
    assert set(table.column("_source_file").to_pylist()) == {"climate/" + FILE_403.name}
    assert table.column("_sheet").null_count == table.num_rows  # a bare file has no archive member
    assert result.period == "19500101-20211231"


def test_real_429_every_row_every_value():
    result = climate.read_file(landed(FILE_429))
    rows = plain_product_rows(FILE_429)
    assert len(rows) == 123
    assert (result.rows_loaded, result.rows_rejected) == (123, 0)
    assert_every_value(result.tables["climate__daily"], rows)
    # PM, SDK and TGK are -999 on every day of this station: all NULL, not -999
    t = result.tables["climate__daily"]
    assert t.column("pm").null_count == t.column("sdk").null_count == t.column("tgk").null_count == 123


def test_real_station_list_every_station_umlauts_decoded():
    result = climate.read_file(landed(STATION_LIST))
    result.check()
    text = STATION_LIST.read_bytes().decode("iso-8859-1")
    lines = [line for line in text.split("\r\n")[2:] if line.strip()]
    assert len(lines) == 1350 == result.rows_loaded
    assert result.rows_rejected == 0
    got = {r["station_id"]: r for r in result.tables["climate__stations"].to_pylist()}
    assert len(got) == 1350
    for line in lines:  # plain reading: whitespace tokens for the numbers, the fixed name column
        tokens = line.split()
        sid = int(tokens[0])
        r = got[sid]
        assert r["valid_from"] == dt.datetime.strptime(tokens[1], "%Y%m%d").date()
        assert r["valid_to"] == dt.datetime.strptime(tokens[2], "%Y%m%d").date()
        assert r["station_height_m"] == int(tokens[3])
        assert r["latitude"] == float(tokens[4]) and r["longitude"] == float(tokens[5])
        assert r["station_name"] == line[61:102].strip()
        assert r["federal_state"] == line[102:].strip()
    assert got[13700]["station_name"] == "Gevelsberg-Oberbröking"
    assert got[44]["station_name"] == "Großenkneten"
    assert got[403]["station_name"] == "Berlin-Dahlem (FU)"
    assert got[1]["federal_state"] == "Baden-Württemberg"
    assert got[4841]["station_height_m"] == 0  # written "-0" by the DWD


def make_hist_zip(folder: Path, product: Path) -> Path:
    """A historical archive in the DWD's layout around a product file (metadata members included)."""
    m = dwd.PRODUCT_RE.match(product.name)
    first, last, sid = m.group(1), m.group(2), m.group(3)
    path = folder / f"tageswerte_KL_{sid}_{first}_{last}_hist.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            f"Metadaten_Geographie_{sid}.txt",
            "Stations_id;Stationshoehe;Geogr.Breite;Geogr.Laenge;von_datum;bis_datum;Stationsname\r\n",
        )
        zf.writestr(f"Metadaten_Parameter_klima_tag_{sid}.txt", "Stations_ID;Von_Datum;Bis_Datum;eor;\r\n")
        zf.write(product, product.name)
    return path


def test_hist_zip_built_from_real_file(tmp_path):
    path = make_hist_zip(tmp_path, FILE_403)
    result = climate.read_file(landed(path, f"climate/{path.name}"))
    result.check()
    assert (result.rows_loaded, result.rows_rejected) == (26_298, 0)
    table = result.tables["climate__daily"]
    assert_every_value(table, plain_product_rows(FILE_403))
    assert set(table.column("delivery_kind").to_pylist()) == {"historical"}
    assert set(table.column("_sheet").to_pylist()) == {FILE_403.name}
    assert set(table.column("delivery_period_end").to_pylist()) == {dt.date(2021, 12, 31)}


def test_recent_zip_and_broken_archives(tmp_path):
    recent = tmp_path / "tageswerte_KL_00429_akt.zip"
    with zipfile.ZipFile(recent, "w") as zf:
        zf.write(FILE_429, FILE_429.name)
    result = climate.read_file(landed(recent))
    assert result.rows_loaded == 123
    assert set(result.tables["climate__daily"].column("delivery_kind").to_pylist()) == {"recent"}
    wrong_station = tmp_path / "tageswerte_KL_00430_akt.zip"
    wrong_station.write_bytes(recent.read_bytes())
    assert climate.read_file(landed(wrong_station)).outcome == "failed"
    no_product = tmp_path / "tageswerte_KL_00429_akt.zip"
    with zipfile.ZipFile(no_product, "w") as zf:
        zf.writestr("Metadaten_Geographie_00429.txt", "x")
    failed = climate.read_file(landed(no_product))
    assert failed.outcome == "failed" and failed.rejections[0].rule == "dwd_archive_product"
    garbage = tmp_path / "tageswerte_KL_00429_19861001_19870131_hist.zip"
    garbage.write_bytes(b"not a zip")
    assert climate.read_file(landed(garbage)).outcome == "failed"
    unknown = tmp_path / "wetter.pdf"
    unknown.write_bytes(b"%PDF")
    assert climate.read_file(landed(unknown)).rejections[0].rule == "unknown_file"


def test_malformed_rows_rejected_with_row_and_column(tmp_path):
    lines = FILE_429.read_bytes().decode("ascii").split("\r\n")
    body = lines[1:11]  # ten good days, rows 2..11
    body[1] = body[1].replace(";eor", "")  # row 3: field missing (18 fields)
    body[2] = body[2].replace("19861003", "19861332")  # row 4: no such date
    body[3] = body[3].replace("   0.0;", "  1,5;", 1)  # row 5: decimal comma in RSK
    body[4] = body[4][: body[4].rindex(";") + 1] + "eo"  # row 6: does not end with eor
    body[6] = body[5]  # row 8: same day as row 7 again
    body[7] = body[7].replace("   10;", "  x10;", 1)  # row 9: QN_4 not an integer
    path = tmp_path / FILE_429.name
    path.write_bytes(("\r\n".join([lines[0], *body]) + "\r\n").encode("ascii"))
    result = climate.read_file(landed(path))
    result.check()
    assert result.rows_read == 10
    found = {(r.row_number, r.column, r.rule) for r in result.rejections}
    assert found == {
        (3, None, "field_count"),
        (4, "MESS_DATUM", "date_yyyymmdd"),
        (5, "RSK", "decimal"),
        (6, "eor", "end_of_record"),
        (8, "MESS_DATUM", "duplicate_date"),
        (9, "QN_4", "integer"),
    }
    assert all(r.message_de for r in result.rejections)
    assert {r.value_found for r in result.rejections if r.column == "RSK"} == {"1,5"}
    assert sorted(result.tables["climate__daily"].column("_row_number").to_pylist()) == [2, 7, 10, 11]
    assert result.outcome == "partially_loaded"


def test_unknown_header_fails_whole_file(tmp_path):
    text = FILE_429.read_bytes().decode("ascii").replace("RSKF", "RSKX", 1)
    path = tmp_path / FILE_429.name
    path.write_bytes(text.encode("ascii"))
    result = climate.read_file(landed(path))
    assert result.outcome == "failed"
    assert "RSKF" in result.error_message and "RSKX" in result.error_message


def test_station_id_must_match_file_name(tmp_path):
    path = tmp_path / "produkt_klima_tag_19861001_19870131_00430.txt"
    path.write_bytes(FILE_429.read_bytes())
    result = climate.read_file(landed(path))
    assert result.rows_loaded == 0 and result.rows_rejected == 123
    assert {r.rule for r in result.rejections} == {"station_id_matches_file"}


def test_demo_writer_round_trip(tmp_path):
    programme = build_programme(0.05, 7)
    written = demo_climate.write(tmp_path / "a", programme, 7)
    again = demo_climate.write(tmp_path / "b", programme, 7)
    assert [file_sha256(p) for p in written] == [file_sha256(p) for p in again]  # deterministic
    files = discover(tmp_path / "a", "climate", ())
    assert len(files) == len(written) == 8 + 6 + 1 + 1  # 8 hist, 6 recent, station list, statistics
    results = {r.source_file: r for r in climate.read_files(files, None)}
    for r in results.values():
        r.check()
        assert r.outcome == "loaded", (r.source_file, r.rejections[:3], r.error_message)
    stations = results["climate/dwd/KL_Tageswerte_Beschreibung_Stationen.txt"].tables["climate__stations"]
    by_id = {s["station_id"]: s for s in stations.to_pylist()}
    assert by_id[13700]["station_name"] == "Gevelsberg-Oberbröking"
    assert by_id[555]["valid_to"] == dt.date(2018, 10, 31)
    assert len(by_id) == len(demo_climate.RUHR_STATIONS)
    # the product inside an archive re-renders byte for byte from the parsed values
    hist = next(p for p in written if p.name.startswith("tageswerte_KL_01303") and p.name.endswith("_hist.zip"))
    with zipfile.ZipFile(hist) as zf:
        member = next(n for n in zf.namelist() if n.startswith("produkt_klima_tag_"))
        original = zf.read(member)
        assert any(n.startswith("Metadaten_Geographie_") for n in zf.namelist())
    assert original.endswith(b";eor\r\n") and b"-999" in original
    table = dwd.parse_product(original, member, "historical").table
    import numpy as np

    values = {
        c: np.array([np.nan if v is None else float(v) for v in table.column(c.lower()).to_pylist()])
        for c in dwd.INTEGER_COLUMNS + dwd.DECIMAL_COLUMNS
    }
    days = np.array(table.column("measured_on").to_pylist(), dtype="datetime64[D]")
    assert dwd.render_product(1303, days, values) == original
    # the recent archive overlaps the historical one (second half of 2024)
    recent = results["climate/dwd/recent/2026-11-01/tageswerte_KL_01303_akt.zip"].tables["climate__daily"]
    first_recent = min(recent.column("measured_on").to_pylist())
    assert first_recent < dt.date(2024, 12, 31) < max(recent.column("measured_on").to_pylist())
    stats = results["climate/rvr/rvr_klimaanalyse_flaechenstatistik_2020.csv"].tables["climate__area_statistics"]
    assert set(stats.column("topic").to_pylist()) == {"climatope", "heavy_rain_rare", "heavy_rain_extreme"}
    assert len(set(stats.column("municipality_key").to_pylist())) == 53


def test_area_statistics_rejections(tmp_path):
    header = "Gemeinde;Gebietsart;Gebiet;Thema;Klasse;Flaeche_ha;davon_waermebelastet_ha"
    rows = [
        "Bochum;Gemeinde;Bochum;Klimatop;Innenstadtklima;1.234,50;1.100,25",  # 2 good
        "Bochum;Gestaltungsraum;Gestaltungsraum Bochum Mitte;Starkregen selten;0,10-0,30 m;12,5;",  # 3 good
        "Atlantis;Gemeinde;Atlantis;Klimatop;Stadtklima;10;1",  # 4 unknown municipality
        "Essen;Gemeinde;Essen;Klimatop;Wüstenklima;10;1",  # 5 unknown class
        "Essen;Gemeinde;Essen;Klimatop;Stadtklima;zehn;1",  # 6 not a number
        "Essen;Gemeinde;Essen;Klimatop;Stadtklima;10;11",  # 7 heat > area
        "Essen;Gemeinde;Essen;Starkregen extrem;> 1,00 m;3;1",  # 8 heat for heavy rain
        "Bochum;Gemeinde;Bochum;Klimatop;Innenstadtklima;1,0;0,5",  # 9 duplicate of row 2
        "Essen;Gemeinde;Essen;Klimatop",  # 10 too few fields
    ]
    path = tmp_path / "klimaanalyse.csv"
    path.write_bytes(("\r\n".join([header, *rows]) + "\r\n").encode("cp1252"))  # saved by Excel
    result = climate.read_file(landed(path))
    result.check()
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (9, 2, 7)
    assert {(r.row_number, r.rule) for r in result.rejections} == {
        (4, "municipality_known"),
        (5, "class_known"),
        (6, "number"),
        (7, "heat_le_area"),
        (8, "heat_only_for_climatope"),
        (9, "duplicate_class"),
        (10, "field_count"),
    }
    good = result.tables["climate__area_statistics"].to_pylist()
    assert good[0]["area_ha"] == 1234.5 and good[0]["heat_stressed_area_ha"] == 1100.25
    assert good[0]["class_code"] == "inner_city" and good[1]["topic"] == "heavy_rain_rare"
    assert good[1]["area_type"] == "designated_area"
