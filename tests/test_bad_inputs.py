"""Bad inputs across every source family, and fuzzing of the workbook and CSV readers (docs/bad-inputs.md).

Each case lands one or more files in a fresh landing area and runs the real ``ingest`` (the same code
path as the build) into an in-memory DuckDB. For every file it then checks the row accounting from the
warehouse itself, not from the reader's own counters: rows in the family's raw table for that file equal
``rows_loaded``, distinct rejected rows in ``raw.rejected_rows`` equal ``rows_rejected``, and read =
loaded + rejected; a whole-file failure has a German error message and a rejection with its rule.

The fuzz tests (hypothesis, bounded examples, no deadline) feed generated cells and damaged bytes to the
forecast workbook reader and the funding, trees, surfaces and DWD product CSV readers: nothing may crash;
every file is loaded or rejected with a reason, and the accounting above holds.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from test_forecasts_reader import good_row, write_xlsx
from zi_warehouse.accounting import OUTCOMES
from zi_warehouse.demo import funding_extracts
from zi_warehouse.demo.programme import build_programme
from zi_warehouse.ingest import ingest
from zi_warehouse.sources import climate, forecasts, funding, funding_entities, surfaces, trees

MODULES = {"forecasts": forecasts, "funding": funding, "climate": climate, "trees": trees, "surfaces": surfaces}
#: The raw table holding one row per loaded source row, per family (secondary tables do not count).
PRIMARY = {
    "forecasts": ["forecasts__projects"],
    "funding": [f"funding__{e.name}" for e in funding.ENTITIES],
    "climate": ["climate__daily", "climate__stations", "climate__area_statistics"],
    "trees": ["trees__register_trees", "trees__campaign_distributions"],
    "surfaces": ["surfaces__parcels"],
}
DWD_PRODUCT = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "real-data"
    / "dwd"
    / "produkt_klima_tag_19861001_19870131_00429.txt"
)
SURFACES_HEADER = "Flurstück;Fläche m2;Flächenart;Kanalanschluss;Kommune;Gestaltungsraum"
CAMPAIGN_HEADER = "Ausgabestelle;Kommune;Obstart;Anzahl;Ausgabedatum;davon nicht abgeholt"
REGISTER_HEADER = (
    "Baumnummer;Art botanisch;Art deutsch;Pflanzjahr;Stammumfang cm;Kronendurchmesser m;"
    "Baumhöhe m;Stadtbezirk;Straße;Status;Rechtswert;Hochwert"
)
FULL_CUT = dt.datetime(2020, 12, 31, 23, 59, 59)


# --- loading and accounting -------------------------------------------------------------------------------


def load(landing: Path, family: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ingest(con, MODULES[family], landing, log=lambda m: None)  # ingest() refuses lost rows (FileResult.check)
    return con


def accounting(con: duckdb.DuckDBPyConnection, family: str) -> dict[str, dict]:
    """Per file: the ledger row plus what the warehouse really holds for it; asserts the balance."""
    cur = con.execute("select * from raw.ingestion_files where source_family = ?", [family])
    cols = [d[0] for d in cur.description]
    files = {row[cols.index("file_name")]: dict(zip(cols, row)) for row in cur.fetchall()}
    tables = {r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'raw'").fetchall()}
    for name, led in files.items():
        source_file = led["source_file"]
        in_raw = sum(
            con.execute(f'select count(*) from raw."{t}" where _source_file = ?', [source_file]).fetchone()[0]
            for t in PRIMARY[family]
            if t in tables
        )
        rejections = con.execute(
            "select row_number, column_name, value_found, rule, message_de from raw.rejected_rows "
            "where source_file = ? order by row_number nulls first",
            [source_file],
        ).fetchall()
        rejected_rows = len({r[0] for r in rejections if r[0] is not None})
        led["rejections"] = rejections
        led["rules"] = {r[3] for r in rejections}
        assert led["outcome"] in OUTCOMES, led
        assert in_raw == led["rows_loaded"], (name, in_raw, led)
        assert rejected_rows == led["rows_rejected"], (name, rejected_rows, led)
        assert all(r[3] and r[4] for r in rejections), f"{name}: a rejection without rule or German message"
        if led["outcome"] == "failed":
            assert led["error_message"] and rejections and led["rows_loaded"] == 0, led
        elif led["outcome"] != "blocked":
            assert led["rows_read"] == led["rows_loaded"] + led["rows_rejected"], led
    return files


# --- the catalogue cases that no family test covered yet -------------------------------------------------


@dataclass
class Case:
    id: str
    family: str
    files: dict[str, bytes | Callable[[Path], object]]
    file: str  # the file whose outcome is asserted
    outcome: str
    rule: str | None = None  # a rule that must be among the file's rejections
    read: int | None = None  # rows read, where it is worth pinning
    extra: dict = field(default_factory=dict)


def _xlsx(rows, **kw):
    return lambda p: write_xlsx(p, rows, **kw)


def _zip(members: dict[str, bytes]):
    def write(p: Path) -> None:
        with zipfile.ZipFile(p, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)

    return write


def _dwd() -> bytes:
    return DWD_PRODUCT.read_bytes()


def _dwd_lines() -> list[bytes]:
    return _dwd().split(b"\r\n")


CASES = [
    Case(
        "forecasts-formula-error-cell",
        "forecasts",
        {"Prognose_Bochum_2022-Q4.xlsx": _xlsx([good_row("BO-1"), good_row("BO-2", total_cost_eur="#DIV/0!")])},
        "Prognose_Bochum_2022-Q4.xlsx",
        "partially_loaded",
        "type",
        read=2,
    ),
    Case(
        "forecasts-header-but-no-rows",
        "forecasts",
        {"Prognose_Bochum_2022-Q4.xlsx": _xlsx([])},
        "Prognose_Bochum_2022-Q4.xlsx",
        "loaded",
        read=0,
    ),
    Case(
        "forecasts-multiline-and-very-long-text",
        "forecasts",
        {"Prognose_Bochum_2022-Q4.xlsx": _xlsx([good_row("BO-1", title="Zeile 1\nZeile 2\t" + "x" * 5000)])},
        "Prognose_Bochum_2022-Q4.xlsx",
        "loaded",
        read=1,
    ),
    Case(
        "forecasts-office-lock-file-is-no-delivery",
        "forecasts",
        {"~$Prognose_Bochum_2022-Q4.xlsx": b"\x00lock", "Prognose_Bochum_2022-Q4.xlsx": _xlsx([good_row("BO-1")])},
        "Prognose_Bochum_2022-Q4.xlsx",
        "loaded",
        read=1,
        extra={"files": 1},
    ),
    Case(
        "forecasts-zero-byte-file",
        "forecasts",
        {"Prognose_Bochum_2022-Q4.xlsx": b""},
        "Prognose_Bochum_2022-Q4.xlsx",
        "failed",
        "file_corrupt",
    ),
    Case(
        "forecasts-date-cell-far-out-of-range",
        "forecasts",  # calamine panicked (found by the fuzzer below)
        {
            "Prognose_Bochum_2022-Q4.xlsx": _xlsx([good_row("BO-1", planned_start_date=-(10**12))]),
            "Prognose_Herne_2022-Q4.xlsx": _xlsx([good_row("HE-1", municipality="Herne")], municipality="Herne"),
        },
        "Prognose_Bochum_2022-Q4.xlsx",
        "failed",
        "file_corrupt",
        extra={"loaded": "Prognose_Herne_2022-Q4.xlsx"},
    ),
    Case(
        "funding-zero-byte-extract",
        "funding",
        {"zi_foerderung_000_voll_20201231_antraege.csv": b""},
        "zi_foerderung_000_voll_20201231_antraege.csv",
        "failed",
        "control_record_missing",
    ),
    Case(
        "climate-zero-byte-product-file",
        "climate",
        {DWD_PRODUCT.name: b""},
        DWD_PRODUCT.name,
        "failed",
        "dwd_product_header",
    ),
    Case(
        "climate-header-only-product-file",
        "climate",
        {DWD_PRODUCT.name: _dwd_lines()[0] + b"\r\n"},
        DWD_PRODUCT.name,
        "loaded",
        read=0,
    ),
    Case(
        "climate-archive-without-product-file",
        "climate",
        {"tageswerte_KL_00429_akt.zip": _zip({"Metadaten_Geographie_00429.txt": b"x"})},
        "tageswerte_KL_00429_akt.zip",
        "failed",
        "dwd_archive_product",
    ),
    Case(
        "climate-unix-line-ends",
        "climate",
        {DWD_PRODUCT.name: _dwd().replace(b"\r\n", b"\n")},
        DWD_PRODUCT.name,
        "loaded",
        read=len(_dwd_lines()) - 2,
    ),
    Case(
        "climate-duplicate-days",
        "climate",
        {DWD_PRODUCT.name: _dwd() + b"\r\n".join(_dwd_lines()[1:3]) + b"\r\n"},
        DWD_PRODUCT.name,
        "partially_loaded",
        "duplicate_date",
        read=len(_dwd_lines()) - 2 + 2,
    ),
    Case(
        "climate-unknown-file-in-landing-folder",
        "climate",
        {"wetter.txt": b"hallo"},
        "wetter.txt",
        "failed",
        "unknown_file",
    ),
    Case(
        "trees-geojson-truncated",
        "trees",
        {"registers/baumkataster_bochum.geojson": b'{"type": "FeatureCollection", "features": [ {'},
        "baumkataster_bochum.geojson",
        "failed",
        "file_unreadable",
    ),
    Case(
        "trees-geojson-without-point-geometry",
        "trees",
        {
            "registers/baumkataster_bochum.geojson": json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "geometry": None,
                            "properties": {"Baumnummer": "1", "Art deutsch": "Linde"},
                        },
                        {
                            "type": "Feature",
                            "geometry": {"type": "LineString", "coordinates": [[7.2, 51.48], [7.3, 51.49]]},
                            "properties": {"Baumnummer": "2", "Art deutsch": "Linde"},
                        },
                    ],
                }
            ).encode()
        },
        "baumkataster_bochum.geojson",
        "rejected",
        "coordinates_missing",
        read=2,
    ),
    Case(
        "trees-campaign-header-only",
        "trees",
        {"campaign/klimabaeume.csv": (CAMPAIGN_HEADER + "\n").encode()},
        "klimabaeume.csv",
        "loaded",
        read=0,
    ),
    Case(
        "trees-campaign-header-repeated-as-row",
        "trees",
        {
            "campaign/klimabaeume.csv": f"{CAMPAIGN_HEADER}\n{CAMPAIGN_HEADER}\n"
            "Betriebshof Duisburg;Duisburg;Apfel;100;30.10.2021;3\n".encode()
        },
        "klimabaeume.csv",
        "partially_loaded",
        "trees_positive_integer",
        read=2,
    ),
    Case(
        "surfaces-zero-byte-file",
        "surfaces",
        {"flaechen_bochum.csv": b""},
        "flaechen_bochum.csv",
        "failed",
        "file_unreadable",
    ),
    Case(
        "surfaces-header-only",
        "surfaces",
        {"flaechen_bochum.csv": (SURFACES_HEADER + "\n").encode()},
        "flaechen_bochum.csv",
        "loaded",
        read=0,
    ),
    Case(
        "surfaces-ragged-rows",
        "surfaces",
        {
            "flaechen_bochum.csv": (
                SURFACES_HEADER + "\n0510-1;12;Steildach;Mischwasser;Bochum;;extra;x\n"
                "0510-3;5;Steildach;Mischwasser;Bochum;\n"
            ).encode()
        },
        "flaechen_bochum.csv",
        "partially_loaded",
        "row_field_count",
        read=2,
    ),
    Case(
        "surfaces-utf16-encoding",
        "surfaces",
        {"flaechen_bochum.csv": (SURFACES_HEADER + "\n0510-1;12;Steildach;Mischwasser;Bochum;\n").encode("utf-16")},
        "flaechen_bochum.csv",
        "failed",
        "file_unreadable",
    ),
    Case(
        "surfaces-unclosed-quote",
        "surfaces",
        {
            "flaechen_bochum.csv": (
                SURFACES_HEADER + '\n"0510-1;12;Steildach;Mischwasser;Bochum;\n0510-3;5;Steildach;Mischwasser;Bochum;\n'
            ).encode()
        },
        "flaechen_bochum.csv",
        "partially_loaded",
        "row_quote_unclosed",
        read=2,
    ),
    Case(
        "surfaces-comma-separated-with-quoted-decimal",
        "surfaces",
        {
            "flaechen_bochum.csv": (
                SURFACES_HEADER.replace(";", ",") + '\n0510-1,"12,5",Steildach,Mischwasser,Bochum,\n'
            ).encode()
        },
        "flaechen_bochum.csv",
        "loaded",
        read=1,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path):
    landing = tmp_path / "landing"
    for rel, data in case.files.items():
        path = landing / case.family / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data(path) if callable(data) else path.write_bytes(data)
    files = accounting(load(landing, case.family), case.family)
    if "loaded" in case.extra:  # the other file of the family still loads
        assert files[case.extra["loaded"]]["outcome"] == "loaded", files[case.extra["loaded"]]
    if "files" in case.extra:
        assert len(files) == case.extra["files"], sorted(files)
    led = files[case.file]
    assert led["outcome"] == case.outcome, led
    if case.rule:
        assert case.rule in led["rules"], led["rejections"]
    if case.read is not None:
        assert led["rows_read"] == case.read, led
    if case.outcome == "failed":
        assert any(ch in led["error_message"] for ch in "äöüßÄÖÜ") or " " in led["error_message"]


# --- fuzzing ----------------------------------------------------------------------------------------------

FUZZ = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Cell text as people type it: any printable text, German numbers and dates, placeholders, formulas.
CELL_TEXT = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=25),
    st.sampled_from(
        [
            "",
            " ",
            "-",
            "k.A.",
            "n/a",
            "#DIV/0!",
            "#REF!",
            "1.234,56",
            "1,234.56",
            "-0",
            "1e308",
            "31.02.2021",
            "2021-13-01",
            "Q5/2023",
            "ja",
            "NEIN",
            "∞",
            "0x1F",
            "'",
            '"',
            "Ä;Ö",
            "\\N",
        ]
    ),
)
CELL_VALUE = st.one_of(
    st.none(),
    CELL_TEXT,
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.dates(dt.date(1899, 12, 31), dt.date(2200, 1, 1)),
)


def fuzz_load(family: str, files: dict[str, bytes | Callable[[Path], object]]) -> dict[str, dict]:
    with tempfile.TemporaryDirectory(prefix="zi-fuzz-") as tmp:
        landing = Path(tmp) / "landing"
        for rel, data in files.items():
            path = landing / family / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            data(path) if callable(data) else path.write_bytes(data)
        con = load(landing, family)
        try:
            files = accounting(con, family)
        finally:
            con.close()
    assert files, "the file was not recorded in the ledger"
    return files


def damage(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Apply (position, bytes to delete, bytes to insert) edits, positions taken modulo the length."""
    out = bytearray(data)
    for pos, delete, insert in edits:
        at = pos % (len(out) + 1)
        out[at : at + delete] = insert
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 8), st.binary(max_size=6)), min_size=1, max_size=4)
FORECAST_COLUMNS = sorted(k for k in good_row("X") if k != "payments")


@FUZZ
@given(
    rows=st.lists(st.dictionaries(st.sampled_from(FORECAST_COLUMNS), CELL_VALUE, max_size=5), min_size=1, max_size=4)
)
def test_fuzz_workbook_cells(rows):
    overrides = [good_row(f"BO-{i}", **r) for i, r in enumerate(rows)]

    def write(p: Path) -> None:
        try:
            write_xlsx(p, overrides)
        except ValueError:  # openpyxl refuses some values (e.g. out-of-range dates): write them as text
            write_xlsx(
                p,
                [
                    {k: (str(v) if v is not None else None) if k != "payments" else v for k, v in r.items()}
                    for r in overrides
                ],
            )

    led = fuzz_load("forecasts", {"Prognose_Bochum_2022-Q4.xlsx": write})["Prognose_Bochum_2022-Q4.xlsx"]
    assert led["rows_read"] == len(rows) or led["outcome"] == "failed"


@pytest.fixture(scope="module")
def workbook_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("wb") / "Prognose_Bochum_2022-Q4.xlsx"
    return write_xlsx(path, [good_row("BO-1"), good_row("BO-2")]).read_bytes()


@FUZZ
@given(edits=EDITS)
def test_fuzz_workbook_bytes(workbook_bytes, edits):
    fuzz_load("forecasts", {"Prognose_Bochum_2022-Q4.xlsx": damage(workbook_bytes, edits)})


@pytest.fixture(scope="module")
def funding_rows() -> list[dict]:
    return funding_extracts.database_rows(build_programme(0.02, 7), FULL_CUT, 7)["applications"][:4]


def _csv_with_cells(header: str, rows: list[list[str]], cells: list[tuple[int, int, str]]) -> list[list[str]]:
    rows = [list(r) for r in rows]
    for r, c, text in cells:
        row = rows[r % len(rows)]
        row[c % len(row)] = text
    return rows


CELLS = st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100), CELL_TEXT), min_size=1, max_size=5)


@FUZZ
@given(cells=CELLS, edits=st.one_of(st.just([]), EDITS))
def test_fuzz_funding_extract(funding_rows, cells, edits):
    entity = funding_entities.ENTITY_BY_NAME["applications"]
    text = funding_extracts.render_file(entity, funding_rows, 0, "full", dt.date(2020, 12, 31), None).decode("cp1252")
    lines = text.split("\r\n")
    body = [line.split(";") for line in lines[1 : 1 + len(funding_rows)]]
    requested = lines[0].split(";").index("Beantragte Zuwendung (EUR)")
    cells = [(r, c if c % len(body[0]) != requested else c + 1, v) for r, c, v in cells]  # keep the control sum
    body = _csv_with_cells(lines[0], body, cells)
    text = "\r\n".join([lines[0], *(";".join(r) for r in body), *lines[1 + len(funding_rows) :]])
    data = damage(text.encode("cp1252", errors="replace"), edits) if edits else text.encode("cp1252", errors="replace")
    name = funding.file_name(0, "full", dt.date(2020, 12, 31), entity)
    fuzz_load("funding", {name: data})


@FUZZ
@given(cells=CELLS, edits=st.one_of(st.just([]), EDITS))
# Found by CI: a stray byte in the register's header row was read differently by the header and the row reader.
@example(cells=[(0, 0, "")], edits=[(142, 0, b"\x80")])
def test_fuzz_trees_campaign_and_register(cells, edits):
    campaign = [
        ["Betriebshof Duisburg", "Duisburg", "Apfel", "100", "30.10.2021", "3"],
        ["Gartencenter Mülheim", "Mülheim a.d. Ruhr", "Kirsche", "50", "2021-10-30", "0"],
    ]
    register = [
        [
            "T1",
            "Tilia cordata",
            "Winter-Linde",
            "1990",
            "120",
            "8,5",
            "15",
            "Mitte",
            "A-Str.",
            "gesund",
            "391000",
            "5710000",
        ],
        ["T2", "Acer", "Ahorn", "", "", "", "", "Mitte", "B-Str.", "gesund", "7,46", "51,51"],
    ]
    files = {}
    for rel, header, rows in (
        ("campaign/klimabaeume.csv", CAMPAIGN_HEADER, campaign),
        ("registers/baumkataster_dortmund.csv", REGISTER_HEADER, register),
    ):
        body = _csv_with_cells(header, rows, cells)
        data = "\n".join([header, *(";".join(r) for r in body)]).encode("utf-8") + b"\n"
        files[rel] = damage(data, edits) if edits else data
    fuzz_load("trees", files)


@FUZZ
@given(cells=CELLS, edits=st.one_of(st.just([]), EDITS))
def test_fuzz_surfaces(cells, edits):
    rows = [
        ["0510-001-00001", "125,5", "Steildach", "Mischwasser", "Bochum", "Gestaltungsraum Bochum Mitte"],
        ["0510-001-00002", "40", "Pflaster", "Trennsystem", "BOCHUM", ""],
    ]
    body = _csv_with_cells(SURFACES_HEADER, rows, cells)
    data = "\n".join([SURFACES_HEADER, *(";".join(r) for r in body)]).encode("utf-8") + b"\n"
    fuzz_load("surfaces", {"flaechen_bochum.csv": damage(data, edits) if edits else data})


@FUZZ
@given(cells=CELLS, edits=st.one_of(st.just([]), EDITS))
def test_fuzz_dwd_product_file(cells, edits):
    lines = _dwd_lines()[:12]  # header and eleven days
    body = _csv_with_cells(lines[0].decode(), [line.decode().split(";") for line in lines[1:]], cells)
    data = "\r\n".join([lines[0].decode(), *(";".join(r) for r in body)]).encode("latin-1", errors="replace") + b"\r\n"
    fuzz_load("climate", {DWD_PRODUCT.name: damage(data, edits) if edits else data})


# --- the catalogue ----------------------------------------------------------------------------------------


def test_catalogue_links_resolve():
    """docs/bad-inputs.md: at least 30 numbered cases, every linked test exists (functions and parameters)."""
    import re

    root = Path(__file__).resolve().parent.parent
    text = (root / "docs" / "bad-inputs.md").read_text(encoding="utf-8")
    cases = re.findall(r"(?m)^\| (\d+) \|", text)
    assert len(cases) >= 30 and len(set(cases)) == len(cases)
    links = set(re.findall(r"\[(tests/test_[a-z_]+\.py::[A-Za-z0-9_]+(?:\[[^\]]+\])?)\]", text))
    assert len(links) >= 30
    for link in links:
        file, name = link.split("::")
        source = (root / file).read_text(encoding="utf-8")
        function = name.split("[")[0]
        assert re.search(rf"(?m)^def {function}\(", source), f"{link}: no such test"
    # parametrised links: the ids must exist in the collected tests of this file
    mine = sorted(link.split("::")[1] for link in links if link.startswith("tests/test_bad_inputs.py") and "[" in link)
    ids = {f"test_bad_input[{c.id}]" for c in CASES}
    assert set(mine) <= ids, set(mine) - ids
    assert ids <= set(mine), f"cases not in the catalogue: {sorted(ids - set(mine))}"
