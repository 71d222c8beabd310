"""Forecast workbooks as people send them: one generated fixture per kind of mess, loaded through ingest()."""

from __future__ import annotations

import datetime as dt
import io
import shutil
from pathlib import Path

import duckdb
import pytest

from zi_warehouse.forecasts import reader
from zi_warehouse.forecasts import template as t
from zi_warehouse.ingest import ingest
from zi_warehouse.sources import forecasts as src


def good_row(pid: str, version: str = "2021", **overrides) -> dict:
    row = {
        "project_id": pid,
        "title": f"Dachbegrünung {pid}",
        "municipality": "Bochum",
        "is_in_designated_area": True,
        "designated_area_name": "Gestaltungsraum Bochum Mitte",
        "measure_type": "Extensive Dachbegrünung",
        "status": "Projektidee",
        "total_cost_eur": 100000.0,
        "requested_funding_eur": 90000.0,
        "funding_rate": 0.9,
        "planned_application_period": "Q1/2023",
        "planned_start_date": dt.date(2023, 5, 1),
        "planned_completion_date": dt.date(2023, 11, 30),
        "expected_disconnected_area_m2": 1200.0,
        "expected_trees": 3,
        "contact_name": "Anna Schmidt",
        "contact_email": "anna.schmidt@bochum.example.de",
        "remarks": None,
        "payments": {(2023, 1): 20000.0},
    }
    if version != "2020":
        row.update({"affected_surface_type": "Flachdach", "surface_change_m2": 1200.0})
    row.update(overrides)
    return row


def write_xlsx(
    path: Path,
    rows: list[dict],
    version: str = "2021",
    municipality: str = "Bochum",
    period=(2022, 4),
    layout: t.SheetLayout | None = None,
    before=None,
    after=None,
) -> Path:
    wb = t.new_workbook(path)
    if before:
        before(wb)
    t.write_project_sheet(
        wb, version, municipality, period, dt.date(2023, 1, 15), rows, t.next_quarters(*period), layout=layout
    )
    if after:
        after(wb)
    wb.close()
    return path


class Landing:
    """A landing folder and warehouse in tmp_path; ``load()`` runs the real ingest."""

    def __init__(self, tmp_path: Path):
        self.root = tmp_path / "landing"
        self.dir = self.root / "forecasts"
        self.dir.mkdir(parents=True)
        self.con = duckdb.connect(str(tmp_path / "zi.duckdb"))

    def load(self):
        return ingest(self.con, src, self.root, log=lambda m: None)

    def ledger(self, name: str) -> dict:
        cur = self.con.execute("select * from raw.ingestion_files where file_name = ?", [name])
        cols = [d[0] for d in cur.description]
        row = cur.fetchone()
        assert row is not None, name
        return dict(zip(cols, row))

    def rejections(self, name: str) -> list[tuple]:
        return self.con.execute(
            "select row_number, column_name, value_found, rule, message_de from raw.rejected_rows "
            "where source_file = ? order by row_number nulls first, column_name",
            [f"forecasts/{name}"],
        ).fetchall()

    def projects(self, name: str) -> dict[str, dict]:
        cur = self.con.execute("select * from raw.forecasts__projects where _source_file = ?", [f"forecasts/{name}"])
        cols = [d[0] for d in cur.description]
        return {r[cols.index("project_id")]: dict(zip(cols, r)) for r in cur.fetchall()}


@pytest.fixture
def landing(tmp_path):
    lz = Landing(tmp_path)
    yield lz
    lz.con.close()


#: Scenario builders: each writes its files into the shared landing folder. All of them are loaded in
#: ONE ingest (one run of the row rules over the batch), as in production; tests then read their file.
SCENARIOS = {}


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    lz = Landing(tmp_path_factory.mktemp("forecast_batch"))
    for build in SCENARIOS.values():
        build(lz.dir)
    lz.summary = lz.load()
    yield lz
    lz.con.close()


def t_serial(day: dt.date) -> int:
    from zi_warehouse.forecasts.parsing import excel_serial

    return excel_serial(day)


# --- scenarios loaded together ----------------------------------------------------------------------
@scenario
def clean(d):
    write_xlsx(d / "Prognose_Bochum_2022-Q4.xlsx", [good_row("BO-1"), good_row("BO-2")])


@scenario
def layout_mess(d):
    layout = t.SheetLayout(
        leading_blank_cols=2,
        extra_rows_above_block=4,
        blank_rows_after={0, 1},
        totals_row=True,
        notes=["Hinweis: alle Beträge sind Schätzungen.", "Erstellt von der Stadtkämmerei Bochum im Januar"],
        header_trailing_space=True,
    )
    write_xlsx(
        d / "Prognose_Bochum_2022-Q3.xlsx", [good_row(f"BO-{i}") for i in range(3)], layout=layout, period=(2022, 3)
    )


@scenario
def extra_sheets(d):
    def before(wb):
        wb.add_worksheet("Deckblatt").write(0, 0, "Quartalsmeldung der Stadt Bochum")

    def after(wb):
        t.write_project_sheet(
            wb, "2021", "Bochum", (2022, 2), None, [good_row("BO-1", total_cost_eur=1.0)], [], sheet_name="Projekte alt"
        )
        wb.get_worksheet_by_name("Projekte alt").hide()

    write_xlsx(d / "Prognose_Bochum_2022-Q2.xlsx", [good_row("BO-1")], before=before, after=after, period=(2022, 2))


@scenario
def german_text(d):
    rows = [
        good_row(
            "BO-1",
            total_cost_eur="1.234.567,89",
            requested_funding_eur=None,
            funding_rate="80 %",
            expected_disconnected_area_m2="ca. 1.200",
            planned_start_date="15.03.2023",
            planned_completion_date="3. Quartal 2024",
            planned_application_period="4. Quartal 2022",
            municipality="Bochum  ",
            status="Projektidee   ",
            expected_trees="12",
        ),
        good_row(
            "BO-2",
            total_cost_eur="1,2 Mio",
            requested_funding_eur="1,2 Mio",
            funding_rate=None,
            planned_start_date=t_serial(dt.date(2023, 6, 1)),
            measure_type=" extensive dachbegrünung",
        ),
    ]
    write_xlsx(d / "Prognose_Bochum_2022-Q1.xlsx", rows, municipality="BOCHUM", period=(2022, 1))


@scenario
def aliases(d):
    rows = [good_row("MH-1", municipality="Mülheim a.d. Ruhr "), good_row("MH-2", municipality="Muelheim")]
    write_xlsx(d / "Prognose_Muelheim_2022-Q4.xlsx", rows, municipality="Mülheim/Ruhr")


@scenario
def file_name_other_municipality(d):
    write_xlsx(
        d / "Prognose_Herne_2021-Q4.xlsx", [good_row("BO-1", title="x")], municipality="Bochum", period=(2021, 4)
    )


@scenario
def row_of_other_municipality(d):
    write_xlsx(
        d / "Prognose_Bochum_2021-Q3.xlsx", [good_row("BO-1"), good_row("HE-1", municipality="Herne")], period=(2021, 3)
    )


@scenario
def duplicate_ids(d):
    write_xlsx(
        d / "Prognose_Bochum_2021-Q2.xlsx",
        [good_row("BO-1"), good_row("BO-2"), good_row("BO-1", title="Doppelt")],
        period=(2021, 2),
    )


@scenario
def corrected_resubmission(d):
    write_xlsx(
        d / "Prognose_Essen_2022-Q4.xlsx",
        [good_row("E-1", municipality="Essen"), good_row("E-2", municipality="Essen", status="in Arbeit")],
        municipality="Essen",
    )
    write_xlsx(
        d / "Prognose_Essen_2022-Q4_korrektur1.xlsx",
        [good_row("E-1", municipality="Essen"), good_row("E-2", municipality="Essen")],
        municipality="Essen",
    )


@scenario
def broken_files(d):
    good = write_xlsx(d / "tmp.xlsx", [good_row("X-1")])
    data = good.read_bytes()
    good.unlink()
    (d / "Prognose_Hagen_2022-Q4.xlsx").write_bytes(data[: len(data) // 2])
    (d / "Prognose_Hamm_2022-Q4.xlsx").write_bytes(b"")
    (d / "Prognose_Essen_2021-Q4.pdf").write_bytes(b"%PDF-1.4 ...")
    (d / "Prognose_Witten_2022-Q4.xlsx").write_bytes(b"this is not a zip at all")


@scenario
def password_protected(d):
    pytest.importorskip("msoffcrypto", reason="msoffcrypto-tool writes a real encrypted workbook")
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = write_xlsx(d.parent / "plain.xlsx", [good_row("BO-1")])
    encrypted = io.BytesIO()
    with open(plain, "rb") as fh:
        OOXMLFile(fh).encrypt("geheim", encrypted)
    (d / "Prognose_Herten_2022-Q4.xlsx").write_bytes(encrypted.getvalue())


#: One project row of a 2021-template CSV export (German text numbers and dates).
CSV_ROW = {
    "municipality": "Bochum",
    "project_id": "BO-1",
    "title": "Mulde Schulhof",
    "measure_type": "Entsiegelung",
    "status": "Antrag gestellt",
    "is_in_designated_area": "ja",
    "total_cost_eur": "250.000,00",
    "requested_funding_eur": "225.000,00",
    "funding_rate": "90 %",
    "planned_start_date": "01.04.2023",
    "planned_completion_date": "Q4/2023",
    "expected_disconnected_area_m2": "2.000",
    "contact_email": "a@bochum.example.de",
    "expected_trees": "4",
}


def write_forecast_csv(path: Path, quarter: str, row: dict, payment_header: str, payment: str) -> Path:
    """A forecast workbook saved as CSV (semicolons, cp1252) with one project row and one payment column."""
    header = [t.header_maps()["2021"][c] for c in t.COLUMN_ORDER["2021"]] + [payment_header]
    lines = [
        "Kommune:;Bochum",
        f"Berichtsquartal:;{quarter}",
        "",
        ";".join(header),
        ";".join(row.get(c, "") for c in t.COLUMN_ORDER["2021"]) + f";{payment}",
    ]
    path.write_bytes("\r\n".join(lines).encode("cp1252"))
    return path


@scenario
def csv_file(d):
    write_forecast_csv(d / "Prognose_Bochum_2020-Q4.csv", "Q4/2020", CSV_ROW, "Mittelabruf Q1/2023 in EUR", "12.500,00")


@scenario
def xls_file(d):
    xlwt = pytest.importorskip("xlwt", reason="xlwt writes a real BIFF8 .xls")
    book = xlwt.Workbook()
    ws = book.add_sheet("Projekte")
    ws.write(0, 0, "Kommune:")
    ws.write(0, 1, "Bochum")
    ws.write(1, 0, "Berichtsquartal:")
    ws.write(1, 1, "Q3/2020")
    for j, c in enumerate(t.COLUMN_ORDER["2020"]):
        ws.write(3, j, t.header_maps()["2020"][c])
        value = {
            "project_id": "BO-7",
            "title": "Rigole",
            "municipality": "Bochum",
            "measure_type": "Rigolenversickerung",
            "status": "Bewilligt",
            "total_cost_eur": 80000.5,
            "is_in_designated_area": "nein",
        }.get(c)
        if value is not None:
            ws.write(4, j, value)
    book.save(str(d / "Prognose_Bochum_2020-Q3.xls"))


@scenario
def version_2020(d):
    write_xlsx(d / "Prognose_Bochum_2020-Q2.xlsx", [good_row("BO-1", version="2020")], version="2020", period=(2020, 2))


def _with_header_edited(path: Path, municipality: str, edit) -> None:
    """A good one-row workbook of ``municipality`` whose project sheet ``edit`` then changes, as a person would."""
    import openpyxl

    write_xlsx(path, [good_row(f"{municipality[:3].upper()}-1", municipality=municipality)], municipality=municipality)
    wb = openpyxl.load_workbook(path)
    edit(wb["Projekte"])
    wb.save(path)


@scenario
def header_changed(d):
    def rename_and_drop(ws):
        for cell in ws[7]:
            if cell.value == "Gesamtkosten in EUR":
                cell.value = "Kosten gesamt"
            if cell.value == "Bemerkungen":
                cell.value = None

    _with_header_edited(d / "Prognose_Bottrop_2022-Q4.xlsx", "Bottrop", rename_and_drop)


@scenario
def column_added(d):
    def add_own_column(ws):
        ws.cell(7, ws.max_column + 1).value = "Interne Notiz"  # a coordinator's own column beside the template's
        ws.cell(8, ws.max_column).value = "mit Bauamt abgestimmt"

    _with_header_edited(d / "Prognose_Herne_2022-Q4.xlsx", "Herne", add_own_column)


def _rename_header(path: Path, renames: dict[str, str | None]) -> None:
    import openpyxl

    wb = openpyxl.load_workbook(path)
    for cell in wb["Projekte"][7]:
        if cell.value in renames:
            cell.value = renames[cell.value]
    wb.save(path)


@scenario
def whole_file_rejections_name_their_sender(d):
    # A person renamed a header; the file name says nothing, the fields above the table do.
    path = write_xlsx(
        d / "Meldung final.xlsx",
        [good_row("CR-1", municipality="Castrop-Rauxel")],
        municipality="Castrop-Rauxel",
        period=(2024, 1),
    )
    _rename_header(path, {"Projektstatus": "Stand"})
    # No project table at all, an anonymous file name, but the sheet is named after the sender.
    wb = t.new_workbook(d / "Export.xlsx")
    wb.add_worksheet("Herne Q2-2023").write(0, 0, "Projektliste folgt")
    wb.close()
    # Nothing to tell: damaged, and a name without municipality or quarter.
    (d / "scan_0042.xlsx").write_bytes(b"PK\x03\x04 nothing more")


RULE_CASES = [
    ({"requested_funding_eur": 120000.0, "funding_rate": None}, "requested_le_total_cost", "requested_funding_eur"),
    ({"funding_rate": "120 %"}, "funding_rate_within_limits", "funding_rate"),
    ({"planned_start_date": dt.date(2024, 1, 1)}, "completion_after_start", "planned_completion_date"),
    ({"expected_disconnected_area_m2": -5.0}, "area_non_negative", "expected_disconnected_area_m2"),
    ({"surface_change_m2": "-1.000"}, "area_non_negative", "surface_change_m2"),
    ({"expected_trees": "2,5"}, "trees_whole_number", "expected_trees"),
    ({"expected_trees": -1}, "trees_non_negative", "expected_trees"),
    ({"municipality": "Emscherstadt"}, "known_municipality", "municipality"),
    ({"measure_type": "Spielplatz"}, "known_measure_type", "measure_type"),
    ({"status": "in Arbeit"}, "known_status", "status"),
    ({"affected_surface_type": "Wasserfläche"}, "known_surface_type", "affected_surface_type"),
    ({"total_cost_eur": 0.0}, "total_cost_range", "total_cost_eur"),
    ({"total_cost_eur": "offen"}, "type", "total_cost_eur"),
    ({"planned_start_date": "Frühjahr"}, "type", "planned_start_date"),
    (
        {"planned_start_date": dt.date(2051, 1, 1), "planned_completion_date": None},
        "date_plausible",
        "planned_start_date",
    ),
    ({"project_id": None}, "required", "project_id"),
    ({"is_in_designated_area": "vielleicht"}, "type", "is_in_designated_area"),
    ({"contact_email": "anna at bochum"}, "contact_email_format", "contact_email"),
    ({"payments": "negative"}, "payment_non_negative", "forecast_payment_eur"),
]


def rule_file(i: int) -> str:
    return f"Prognose_Dortmund_{2021 + i // 4}-Q{i % 4 + 1}.xlsx"


@scenario
def rule_cases(d):
    for i, (overrides, _, _) in enumerate(RULE_CASES):
        period = (2021 + i // 4, i % 4 + 1)
        if overrides.get("payments") == "negative":
            overrides = {"payments": {t.next_quarters(*period)[0]: -500.0}}
        write_xlsx(
            d / rule_file(i),
            [good_row("DO-1", municipality="Dortmund"), good_row("DO-2", **{"municipality": "Dortmund", **overrides})],
            municipality="Dortmund",
            period=period,
        )


# --- tests --------------------------------------------------------------------------------------------
def test_every_file_balances(batch):
    rows = batch.con.execute(
        "select file_name, outcome, rows_read, rows_loaded, rows_rejected from raw.ingestion_files"
    ).fetchall()
    assert len(rows) == len(list(batch.dir.iterdir()))
    for name, outcome, read, loaded, rejected in rows:
        if outcome != "failed":
            assert read == loaded + rejected, name


def test_clean_template_file_loads_every_row_with_payments(batch):
    led = batch.ledger("Prognose_Bochum_2022-Q4.xlsx")
    assert (led["outcome"], led["rows_read"], led["rows_loaded"], led["rows_rejected"]) == ("loaded", 2, 2, 0)
    assert (led["municipality_key"], led["period"]) == ("bochum", "2022-Q4")
    row = batch.projects("Prognose_Bochum_2022-Q4.xlsx")["BO-1"]
    assert row["measure_type_key"] == "green_roof_extensive" and row["status_key"] == "idea"
    assert row["affected_surface_type"] == "flat_roof" and row["template_version"] == "2021"
    assert row["_sheet"] == "Projekte" and row["_row_number"] == 8
    pay = batch.con.execute(
        "select payment_period, forecast_payment_eur from raw.forecasts__payment_forecasts "
        "where project_id = 'BO-1' and _source_file = 'forecasts/Prognose_Bochum_2022-Q4.xlsx'"
    ).fetchall()
    assert pay == [("2023-Q1", 20000.0)]


def test_header_lower_down_merged_title_blank_rows_and_columns_totals_and_notes(batch):
    led = batch.ledger("Prognose_Bochum_2022-Q3.xlsx")
    assert (led["rows_read"], led["rows_loaded"], led["rows_rejected"]) == (3, 3, 0)
    got = batch.projects("Prognose_Bochum_2022-Q3.xlsx")
    assert sorted(got) == ["BO-0", "BO-1", "BO-2"]
    # rows as a person counts them: 4 extra + 6 block rows + header, a blank row after each of the first two
    assert [got[k]["_row_number"] for k in sorted(got)] == [12, 14, 16]


def test_hidden_and_extra_sheets_are_ignored(batch):
    row = batch.projects("Prognose_Bochum_2022-Q2.xlsx")["BO-1"]
    assert row["total_cost_eur"] == 100000.0 and row["_sheet"] == "Projekte"


def test_german_text_numbers_dates_quarters_and_trailing_spaces(batch):
    got = batch.projects("Prognose_Bochum_2022-Q1.xlsx")
    a, b = got["BO-1"], got["BO-2"]
    assert a["total_cost_eur"] == pytest.approx(1234567.89)
    assert a["funding_rate"] == pytest.approx(0.8)
    assert a["requested_funding_eur"] == pytest.approx(987654.31)  # derived from the rate
    assert a["expected_disconnected_area_m2"] == 1200.0
    assert a["planned_start_date"] == dt.date(2023, 3, 15)
    assert a["planned_completion_date"] == dt.date(2024, 9, 30)
    assert a["planned_application_period"] == "2022-Q4"
    assert a["status_key"] == "idea" and a["expected_trees"] == 12
    assert b["total_cost_eur"] == 1_200_000.0 and b["funding_rate"] == pytest.approx(1.0)
    assert b["planned_start_date"] == dt.date(2023, 6, 1)
    assert b["measure_type_key"] == "green_roof_extensive"


def test_municipality_aliases_in_rows_and_header(batch):
    led = batch.ledger("Prognose_Muelheim_2022-Q4.xlsx")
    assert led["municipality_key"] == "muelheim_an_der_ruhr" and led["rows_loaded"] == 2
    got = batch.projects("Prognose_Muelheim_2022-Q4.xlsx")
    assert got["MH-1"]["municipality_name_found"] == "Mülheim a.d. Ruhr"


def test_municipality_in_file_differs_from_file_name(batch):
    led = batch.ledger("Prognose_Herne_2021-Q4.xlsx")
    assert led["municipality_key"] == "bochum" and led["rows_loaded"] == 1 and led["outcome"] == "loaded"
    notice = batch.rejections("Prognose_Herne_2021-Q4.xlsx")
    assert [(r[0], r[3]) for r in notice] == [(None, "file_name_municipality_mismatch")]
    assert "Herne" in notice[0][4] and "Bochum" in notice[0][4]
    # the warehouse names the column like every other (an English key); the sender reads "Dateiname"
    assert notice[0][1] == reader.FILE_NAME_COLUMN and reader.column_label(notice[0][1]) == "Dateiname"


def test_row_of_another_municipality_is_rejected(batch):
    rej = batch.rejections("Prognose_Bochum_2021-Q3.xlsx")
    assert [(r[0], r[3]) for r in rej] == [(9, "municipality_matches_submission")]


def test_duplicate_project_ids_keep_the_first_row(batch):
    led = batch.ledger("Prognose_Bochum_2021-Q2.xlsx")
    assert (led["rows_read"], led["rows_loaded"], led["rows_rejected"]) == (3, 2, 1)
    assert [(r[0], r[3]) for r in batch.rejections("Prognose_Bochum_2021-Q2.xlsx")] == [(10, "duplicate_project_id")]
    assert batch.projects("Prognose_Bochum_2021-Q2.xlsx")["BO-1"]["title"] == "Dachbegrünung BO-1"


def test_corrected_resubmission_is_kept_as_second_submission(batch):
    subs = batch.con.execute(
        "select _source_file, revision from raw.forecasts__submissions where municipality_key = 'essen' order by 1"
    ).fetchall()
    assert subs == [
        ("forecasts/Prognose_Essen_2022-Q4.xlsx", 0),
        ("forecasts/Prognose_Essen_2022-Q4_korrektur1.xlsx", 1),
    ]
    assert batch.ledger("Prognose_Essen_2022-Q4_korrektur1.xlsx")["rows_loaded"] == 2
    assert batch.ledger("Prognose_Essen_2022-Q4.xlsx")["rows_rejected"] == 1


def test_corrupt_empty_and_unsupported_files_fail_loudly(batch):
    rules = dict(
        batch.con.execute(
            "select file_name, r.rule from raw.ingestion_files f join raw.rejected_rows r using (source_file) "
            "where f.outcome = 'failed'"
        ).fetchall()
    )
    assert rules["Prognose_Hagen_2022-Q4.xlsx"] == "file_corrupt"
    assert rules["Prognose_Hamm_2022-Q4.xlsx"] == "file_corrupt"
    assert rules["Prognose_Witten_2022-Q4.xlsx"] == "file_corrupt"
    assert rules["Prognose_Essen_2021-Q4.pdf"] == "file_type_unsupported"
    for name in rules:
        assert batch.ledger(name)["error_message"]


def test_password_protected_file(batch):
    led = batch.ledger("Prognose_Herten_2022-Q4.xlsx")
    assert led["outcome"] == "failed" and "passwortgeschützt" in led["error_message"]
    assert batch.rejections("Prognose_Herten_2022-Q4.xlsx")[0][3] == "file_password_protected"


def test_csv_instead_of_xlsx(batch):
    row = batch.projects("Prognose_Bochum_2020-Q4.csv")["BO-1"]
    assert row["total_cost_eur"] == 250000.0 and row["status_key"] == "application_filed"
    assert row["_sheet"] is None and row["_row_number"] == 5
    assert row["planned_completion_date"] == dt.date(2023, 12, 31)


def test_xls_instead_of_xlsx(batch):
    row = batch.projects("Prognose_Bochum_2020-Q3.xls")["BO-7"]
    assert row["template_version"] == "2020" and row["total_cost_eur"] == 80000.5
    assert row["is_in_designated_area"] is False


def test_2020_template_version_is_read_by_its_header_map(batch):
    row = batch.projects("Prognose_Bochum_2020-Q2.xlsx")["BO-1"]
    assert row["template_version"] == "2020" and row["affected_surface_type"] is None
    assert row["total_cost_eur"] == 100000.0 and row["designated_area_name"] == "Gestaltungsraum Bochum Mitte"


def test_unknown_or_missing_header_fails_the_file_with_a_short_german_message(batch):
    led = batch.ledger("Prognose_Bottrop_2022-Q4.xlsx")
    assert led["outcome"] == "failed" and led["rows_loaded"] == 0
    assert (led["municipality_key"], led["period"], led["error_rule"]) == ("bottrop", "2022-Q4", "header_mismatch")
    msg = led["error_message"]
    assert msg.startswith("Die Kopfzeile passt nicht zur Vorlage (Version 2021).")
    assert "„Kosten gesamt“ statt „Gesamtkosten in EUR“" in msg  # the unknown header and the expected one
    assert "Erwartet, aber nicht gefunden: „Bemerkungen“" in msg
    assert len(msg) < 400
    for data_team_words in ("header_maps", "Vorschlag", "{", "total_cost_eur"):
        assert data_team_words not in msg
    # the proposal for the header map goes to the data team, in the ledger (and the quality report)
    assert "total_cost_eur = „Kosten gesamt“" in led["data_team_note"]
    assert "header_maps.csv der Prognose-Vorlage, Spalte 2021" in led["data_team_note"]
    assert batch.rejections("Prognose_Bottrop_2022-Q4.xlsx")[0][3] == "header_mismatch"
    assert "Eigene Spalten" not in msg  # nothing was added: no advice about added columns


def test_an_added_column_fails_the_file_and_the_message_says_where_notes_go(batch):
    led = batch.ledger("Prognose_Herne_2022-Q4.xlsx")
    assert (led["outcome"], led["error_rule"]) == ("failed", "header_mismatch")
    assert "Unbekannte Spalte: „Interne Notiz“." in led["error_message"]
    assert "Eigene Spalten bitte löschen; Anmerkungen gehören in die Spalte „Bemerkungen“." in led["error_message"]


def test_whole_file_rejections_are_filed_under_their_sender(batch):
    """The fields above the table, the file name or the sheet names say who sent a file rejected as a whole."""
    expected = {
        "Meldung final.xlsx": ("castrop_rauxel", "2024-Q1", "header_mismatch"),  # cells above the table
        "Prognose_Hagen_2022-Q4.xlsx": ("hagen", "2022-Q4", "file_corrupt"),  # the file name
        "Prognose_Herten_2022-Q4.xlsx": ("herten", "2022-Q4", "file_password_protected"),
        "Prognose_Essen_2021-Q4.pdf": ("essen", "2021-Q4", "file_type_unsupported"),
        "Export.xlsx": ("herne", "2023-Q2", "header_not_found"),  # the sheet name
        "scan_0042.xlsx": (None, None, "file_corrupt"),  # nothing to tell
    }
    for name, identity in expected.items():
        led = batch.ledger(name)
        assert (led["municipality_key"], led["period"], led["error_rule"]) == identity, name
    msg = batch.ledger("Meldung final.xlsx")["error_message"]
    assert "„Stand“ statt „Projektstatus“" in msg
    for name in ("Prognose_Hagen_2022-Q4.xlsx", "scan_0042.xlsx"):  # no exception class names for people
        assert "Error" not in batch.ledger(name)["error_message"]
        assert "Lesefehler" in batch.ledger(name)["data_team_note"]


def test_a_copy_is_filed_with_the_delivery_it_repeats(landing):
    path = write_xlsx(landing.dir / "Prognose_Bochum_2022-Q4.xlsx", [good_row("BO-1")])
    landing.load()
    shutil.copyfile(path, landing.dir / "Kopie von Datei.xlsx")  # sent again later, under a name saying nothing
    landing.load()
    led = landing.ledger("Kopie von Datei.xlsx")
    assert (led["outcome"], led["municipality_key"], led["period"]) == ("duplicate", "bochum", "2022-Q4")


def test_spoken_spellings_of_coded_values_load(landing):
    """Status, measure type, surface and yes/no as people write them (seeds/coded_value_spellings.csv)."""
    write_xlsx(
        landing.dir / "Prognose_Bochum_2022-Q4.xlsx",
        [
            good_row(
                "BO-1",
                status="in Bau",
                measure_type="Gründach extensiv",
                affected_surface_type="Kies",
                is_in_designated_area="J",
            ),
            good_row(
                "BO-2",
                status="genehmigt",
                measure_type="Mulden-Rigole",
                affected_surface_type="Asphalt",
                is_in_designated_area="Nein",
            ),
            good_row("BO-3", status="in Arbeit"),  # could mean two statuses: rejected with the allowed values
        ],
    )
    landing.load()
    rows = landing.projects("Prognose_Bochum_2022-Q4.xlsx")
    assert {
        k: (r["status_key"], r["measure_type_key"], r["affected_surface_type"], r["is_in_designated_area"])
        for k, r in rows.items()
    } == {
        "BO-1": ("in_construction", "green_roof_extensive", "gravel", True),
        "BO-2": ("approved", "swale_trench", "asphalt", False),
    }
    [rejection] = landing.rejections("Prognose_Bochum_2022-Q4.xlsx")
    assert rejection[3] == "known_status"
    assert "„in Arbeit“" in rejection[4] and "Erlaubt: Projektidee, Antrag in Vorbereitung, " in rejection[4]


@pytest.mark.parametrize(
    ("i", "rule", "column"),
    [(i, r, c) for i, (_, r, c) in enumerate(RULE_CASES)],
    ids=[f"{r}-{c}" for _, r, c in RULE_CASES],
)
def test_each_validation_rule_rejects_its_row(batch, i, rule, column):
    name = rule_file(i)
    led = batch.ledger(name)
    assert (led["rows_read"], led["rows_loaded"], led["rows_rejected"]) == (2, 1, 1)
    rej = batch.rejections(name)
    assert (9, column, rule) in [(r[0], r[1], r[3]) for r in rej]
    assert all(r[4].startswith("Projekt DO-2: ") or r[1] == "project_id" for r in rej)  # German message, row's id
    if column == "contact_email":
        assert rej[0][2] == "[personenbezogen, ausgeblendet]"
    assert list(batch.projects(name)) == ["DO-1"]


def test_same_file_twice_and_unchanged_rerun(landing):
    path = write_xlsx(landing.dir / "Prognose_Bochum_2022-Q4.xlsx", [good_row("BO-1")])
    first = landing.load()
    shutil.copyfile(path, landing.dir / "Prognose_Bochum_2022-Q4 (1).xlsx")
    second = landing.load()
    assert first.files_read == 1 and second.files_read == 1  # only the copy is read
    led = landing.ledger("Prognose_Bochum_2022-Q4 (1).xlsx")
    assert led["outcome"] == "duplicate" and led["rows_loaded"] == 0  # not a failure: nothing to correct
    assert second.files_failed == []
    assert [r[3] for r in landing.rejections("Prognose_Bochum_2022-Q4 (1).xlsx")] == ["duplicate_delivery"]
    assert landing.con.execute("select count(*) from raw.forecasts__projects").fetchone()[0] == 1
    third = landing.load()
    assert third.files_read == 0  # idempotent: nothing new, nothing read


def test_a_ledger_from_before_the_outcome_duplicate_is_brought_up_to_date(landing):
    """Older builds filed a copy as 'failed'; the copy is never read again, so the ledger itself is updated."""
    path = write_xlsx(landing.dir / "Prognose_Bochum_2022-Q4.xlsx", [good_row("BO-1")])
    landing.load()
    shutil.copyfile(path, landing.dir / "Prognose_Bochum_2022-Q4 (1).xlsx")
    landing.load()
    landing.con.execute("update raw.ingestion_files set outcome = 'failed' where file_name like '%(1).xlsx'")
    assert landing.load().files_read == 0
    assert landing.ledger("Prognose_Bochum_2022-Q4 (1).xlsx")["outcome"] == "duplicate"


def test_an_unreadable_payment_or_tree_count_is_named_as_the_workbook_names_it(tmp_path):
    """The coordinator finds the cell by the header of their file ('Mittelabruf Q2/2027 in EUR', not the
    warehouse's '2027-Q2' nor the template's placeholder), and a count is not suggested as '1.234,56'."""
    row = {**CSV_ROW, "project_id": "BO-7", "planned_completion_date": "Q4/2027", "expected_trees": "zwölf"}
    path = write_forecast_csv(
        tmp_path / "Prognose_Bochum_2026-Q4.csv", "Q4/2026", row, "Mittelabruf Q2/2027 in EUR", "siehe Bemerkung"
    )
    parsed = reader.read_file(path, path.name)
    found = {e.column: e for errors in parsed.errors.values() for e in errors}
    assert found[t.PAYMENT_COLUMN].message_de == (
        "Mittelabruf Q2/2027 in EUR: „siehe Bemerkung“ ist keine Zahl (erwartet z. B. 1.234,56)."
    )
    assert found["expected_trees"].message_de.endswith("„zwölf“ ist keine Zahl (erwartet z. B. 12).")
    # The feedback workbook's column "Spalte": one of the quarterly columns, never the template's placeholder.
    assert reader.column_label(t.PAYMENT_COLUMN) == "Mittelabruf Qn/JJJJ in EUR"
