"""A coordinator fills in the blank template by hand; the Dagster wiring loads it, accounts and gives feedback."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import openpyxl
import pytest
import python_calamine as pc

from zi_warehouse import config, reference, warehouse
from zi_warehouse.forecasts import template as t
from zi_warehouse.forecasts.feedback import write_feedback
from zi_warehouse.ingest import ingest
from zi_warehouse.sources import forecasts as src

# What a coordinator types, by German header of the current template (None = left empty).
GOOD = [
    {
        "Projekt-ID (kommunal)": "GE-2023-001",
        "Titel der Maßnahme": "Entsiegelung Schulhof Nord",
        "Kommune": "Gelsenkirchen",
        "Maßnahmentyp": "Entsiegelung",
        "Projektstatus": "Projektidee",
        "Im Gestaltungsraum (ja/nein)": "ja",
        "Gesamtkosten in EUR": 180000,
        "Förderquote in %": 1,
        "Geplante Antragstellung (Quartal)": "Q4/2023",
        "Geplanter Baubeginn": dt.datetime(2024, 4, 1),
        "Geplante Fertigstellung": dt.datetime(2024, 10, 31),
        "Abgekoppelte Fläche in m²": 1500,
        "Betroffene Oberfläche": "Asphalt / Beton",
        "Veränderte Fläche in m²": 1500,
        "Neue Bäume (Anzahl)": 6,
        "Ansprechperson": "Jens Becker",
        "E-Mail Ansprechperson": "jens.becker@gelsenkirchen.example.de",
    },
    # typed as text, the German way, with an alias and trailing spaces
    {
        "Projekt-ID (kommunal)": "GE-2023-002 ",
        "Titel der Maßnahme": "Dachbegrünung Rathaus",
        "Kommune": "Gelsenkirchen ",
        "Maßnahmentyp": "Extensive Dachbegrünung ",
        "Projektstatus": "Antrag in Vorbereitung",
        "Gesamtkosten in EUR": "ca. 95.000 €",
        "Beantragte Fördersumme in EUR": "85.500,00",
        "Förderquote in %": "90 %",
        "Geplante Antragstellung (Quartal)": "3. Quartal 2023",
        "Geplanter Baubeginn": "01.02.2024",
        "Geplante Fertigstellung": "Q3/2024",
        "Abgekoppelte Fläche in m²": "1.100",
        "Betroffene Oberfläche": "Flachdach",
        "Veränderte Fläche in m²": "1.100",
        "Neue Bäume (Anzahl)": "0",
        "Mittelabruf Q3/2023 in EUR": None,
        "Mittelabruf Q1/2024 in EUR": "40.000",
    },
    {
        "Projekt-ID (kommunal)": "GE-2023-003",
        "Titel der Maßnahme": "Machbarkeitsstudie Emscherquartier",
        "Kommune": "Gelsenkirchen",
        "Maßnahmentyp": "Machbarkeitsstudie",
        "Projektstatus": "Bewilligt",
        "Gesamtkosten in EUR": "1,2 Mio",
        "Förderquote in %": 80,
        "Geplanter Baubeginn": "Q1/2024",
        "Geplante Fertigstellung": "4. Quartal 2024",
        "Mittelabruf Q2/2024 in EUR": 250000.0,
    },
]
BAD = [  # (what is wrong, rule, row)
    (
        "requested > cost",
        "requested_le_total_cost",
        {
            "Projekt-ID (kommunal)": "GE-2023-004",
            "Titel der Maßnahme": "Baumrigolen Marktplatz",
            "Kommune": "Gelsenkirchen",
            "Maßnahmentyp": "Baumrigole",
            "Projektstatus": "Projektidee",
            "Gesamtkosten in EUR": 50000,
            "Beantragte Fördersumme in EUR": 60000,
        },
    ),
    (
        "a rate above 100 % typed, the amount left empty (not filled in from the rate, so not rejected too)",
        "funding_rate_within_limits",
        {
            "Projekt-ID (kommunal)": "GE-2023-008",
            "Titel der Maßnahme": "Versickerungsmulde Bahnhofsvorplatz",
            "Kommune": "Gelsenkirchen",
            "Maßnahmentyp": "Mulden-/Flächenversickerung",
            "Projektstatus": "Projektidee",
            "Gesamtkosten in EUR": 40000,
            "Förderquote in %": "120 %",
        },
    ),
    (
        "status typed freely",
        "known_status",
        {
            "Projekt-ID (kommunal)": "GE-2023-005",
            "Titel der Maßnahme": "Mulde Sportpark",
            "Kommune": "Gelsenkirchen",
            "Maßnahmentyp": "Mulden-/Flächenversickerung",
            "Projektstatus": "läuft",
            "Gesamtkosten in EUR": 70000,
        },
    ),
    (
        "no project id",
        "required",
        {
            "Titel der Maßnahme": "Idee Spielplatz",
            "Kommune": "Gelsenkirchen",
            "Maßnahmentyp": "Entsiegelung",
            "Projektstatus": "Projektidee",
            "Gesamtkosten in EUR": 20000,
        },
    ),
    (
        "half a tree",
        "trees_whole_number",
        {
            "Projekt-ID (kommunal)": "GE-2023-006",
            "Titel der Maßnahme": "Klimagrün Quartiersplatz",
            "Kommune": "Gelsenkirchen",
            "Maßnahmentyp": "Bepflanzung und Bäume mit Regenwassernutzung",
            "Projektstatus": "Projektidee",
            "Gesamtkosten in EUR": 40000,
            "Neue Bäume (Anzahl)": "7,5",
        },
    ),
    (
        "same id twice",
        "duplicate_project_id",
        {
            "Projekt-ID (kommunal)": "GE-2023-001",
            "Titel der Maßnahme": "Entsiegelung Schulhof Nord (Kopie)",
            "Kommune": "Gelsenkirchen",
            "Maßnahmentyp": "Entsiegelung",
            "Projektstatus": "Projektidee",
            "Gesamtkosten in EUR": 180000,
        },
    ),
    (
        "completion before start",
        "completion_after_start",
        {
            "Projekt-ID (kommunal)": "GE-2023-007",
            "Titel der Maßnahme": "Rigole Feuerwache",
            "Kommune": "Gelsenkirchen",
            "Maßnahmentyp": "Rigolenversickerung",
            "Projektstatus": "Bewilligt",
            "Gesamtkosten in EUR": 90000,
            "Geplanter Baubeginn": "01.09.2024",
            "Geplante Fertigstellung": "01.03.2024",
        },
    ),
    (
        "a municipality nobody knows: unknown, and not also 'another municipality than the submission's'",
        "known_municipality",
        {
            "Projekt-ID (kommunal)": "GE-2023-009",
            "Titel der Maßnahme": "Mulde Sportplatz",
            "Kommune": "Entenhausen",
            "Maßnahmentyp": "Mulden-/Flächenversickerung",
            "Projektstatus": "Projektidee",
            "Gesamtkosten in EUR": 30000,
        },
    ),
    (
        "a negative total cost: implausible, and not also 'funding above the total cost' (a follow-on error)",
        "total_cost_range",
        {
            "Projekt-ID (kommunal)": "GE-2023-010",
            "Titel der Maßnahme": "Entsiegelung Parkplatz",
            "Kommune": "Gelsenkirchen",
            "Maßnahmentyp": "Entsiegelung",
            "Projektstatus": "Projektidee",
            "Gesamtkosten in EUR": -5,
            "Beantragte Fördersumme in EUR": 4000,
        },
    ),
]
FILE = "Prognose_Gelsenkirchen_2023-Q2.xlsx"


def fill_template(path: Path) -> dict[str, int]:
    """Write the blank template, then type into it with openpyxl as a person would in Excel."""
    t.write_template(path, period=(2023, 2))
    wb = openpyxl.load_workbook(path)
    ws = wb[t.PROJECT_SHEET]
    header_row = next(r for r in range(1, 20) if ws.cell(r, 1).value == "Kommune")
    headers = {ws.cell(header_row, c).value: c for c in range(1, ws.max_column + 1) if ws.cell(header_row, c).value}
    ws.cell(3, 2).value = "Gelsenkirchen"  # Kommune: (drop-down)
    ws.cell(5, 2).value = dt.datetime(2023, 7, 10)  # Stand:
    rows = {}
    r = header_row + 1
    for i, values in enumerate([*GOOD, *(b[2] for b in BAD)]):
        if i == 2:
            r += 1  # a blank line in between
        for header, value in values.items():
            ws.cell(r, headers[header]).value = value
        rows[i] = r
        r += 1
    ws.cell(r + 1, 1).value = "Hinweis: Beträge sind Schätzungen der Kämmerei, Stand Juli."
    wb.save(path)
    return rows


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("zi_data")
    old = os.environ.get("ZI_DATA_DIR")
    os.environ["ZI_DATA_DIR"] = str(root)
    paths = config.paths().ensure()
    rows = fill_template(paths.landing_for("forecasts") / FILE)
    with warehouse.connect(paths.warehouse) as con:
        summary = ingest(con, src, paths.landing, log=lambda m: None)
    yield paths, rows, summary
    if old is None:
        os.environ.pop("ZI_DATA_DIR", None)
    else:
        os.environ["ZI_DATA_DIR"] = old


def test_blank_template_has_instructions_dropdowns_and_both_versions(tmp_path):
    for version in t.VERSIONS:
        path = t.write_template(tmp_path / f"v{version}.xlsx", version=version, period=(2022, 1))
        wb = openpyxl.load_workbook(path)
        assert wb.sheetnames == [t.INSTRUCTIONS_SHEET, t.LISTS_SHEET, t.PROJECT_SHEET]
        assert wb[t.LISTS_SHEET].sheet_state == "hidden"
        sources = {dv.formula1 for dv in wb[t.PROJECT_SHEET].data_validations.dataValidation}
        assert (
            any("$A$" in s for s in sources) and any("$B$" in s for s in sources) and any("$C$" in s for s in sources)
        )
        labels = [c.value for c in wb[t.LISTS_SHEET]["C"][1:] if c.value]
        assert labels[:2] == ["Projektidee", "Antrag in Vorbereitung"]
        instructions = " ".join(str(c.value) for row in wb[t.INSTRUCTIONS_SHEET].iter_rows() for c in row if c.value)
        for canonical, header in t.header_maps()[version].items():
            if canonical != t.PAYMENT_COLUMN:
                assert header in instructions
        assert t.payment_header(version, 2022, 2) in instructions and "Q2/2022 bis Q1/2024" in instructions
        texts = [str(c.value) for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value]
        assert not [x for x in texts if "{" in x or "}" in x], "a placeholder in the template"
    with pytest.raises(ValueError):
        t.write_template(tmp_path / "x.xlsx", version="1999")
    # `zi template --period 2026-Q3` hands the quarter over as text
    wb = openpyxl.load_workbook(t.write_template(tmp_path / "q.xlsx", period="2026-Q3"))
    headers = [c.value for c in wb[t.PROJECT_SHEET][7] if c.value]
    assert headers[-8] == "Mittelabruf Q4/2026 in EUR" and headers[-1] == "Mittelabruf Q3/2028 in EUR"


def test_good_rows_load_bad_rows_are_rejected_and_counts_add_up(data_dir):
    paths, rows, summary = data_dir
    with warehouse.connect(paths.warehouse) as con:
        led = con.execute(
            "select rows_read, rows_loaded, rows_rejected, outcome, municipality_key, period "
            "from raw.ingestion_files where file_name = ?",
            [FILE],
        ).fetchone()
        loaded = dict(con.execute("select project_id, _row_number from raw.forecasts__projects").fetchall())
        rejected = con.execute("select row_number, rule from raw.rejected_rows").fetchall()
        second = con.execute(
            "select total_cost_eur, funding_rate, planned_application_period, planned_completion_date "
            "from raw.forecasts__projects where project_id = 'GE-2023-002'"
        ).fetchone()
        third = con.execute(
            "select total_cost_eur, requested_funding_eur from raw.forecasts__projects where project_id = 'GE-2023-003'"
        ).fetchone()
    assert led == (len(GOOD) + len(BAD), len(GOOD), len(BAD), "partially_loaded", "gelsenkirchen", "2023-Q2")
    assert loaded == {"GE-2023-001": rows[0], "GE-2023-002": rows[1], "GE-2023-003": rows[2]}
    rules_of_row: dict[int, set[str]] = {}
    for row, rule in rejected:
        rules_of_row.setdefault(row, set()).add(rule)
    for k, (_, rule, _) in enumerate(BAD):  # each for its own mistake only (a cell left empty is not one)
        assert rules_of_row[rows[len(GOOD) + k]] == {rule}
    assert {r for r, _ in rejected} == {rows[len(GOOD) + k] for k in range(len(BAD))}
    assert second == (95000.0, 0.9, "2023-Q3", dt.date(2024, 9, 30))
    assert third == (1_200_000.0, 960_000.0)
    assert summary.rows_read == summary.rows_loaded + summary.rows_rejected


def test_feedback_workbook_lists_exactly_the_rejected_rows(data_dir, tmp_path):
    paths, rows, _ = data_dir
    with warehouse.connect(paths.warehouse) as con:
        written = write_feedback(con, paths.feedback)
        again = write_feedback(con, paths.feedback)
    assert written == again and len(written) == 1  # idempotent, one per submission with rejections
    path = written[0]
    assert path.parent.name == "gelsenkirchen" and path.name.startswith("2023-Q2_")
    wb = pc.CalamineWorkbook.from_path(str(path))
    listed = wb.get_sheet_by_name("Abgewiesene Zeilen").to_python()
    header, body = listed[0], listed[1:]
    assert header == ["Zeile", "Projekt-ID", "Blatt", "Spalte", "Gefundener Wert", "Grund", "Hinweis"]  # no rule keys
    assert {int(r[0]) for r in body} == {rows[len(GOOD) + k] for k in range(len(BAD))}
    # each row's project as its sender wrote it (to filter by), empty where the row has none
    project_of_row = {
        rows[len(GOOD) + k]: values.get("Projekt-ID (kommunal)", "").strip() for k, (_, _, values) in enumerate(BAD)
    }
    assert [r[1] for r in body] == [project_of_row[int(r[0])] for r in body]
    assert "" in project_of_row.values() and len(set(project_of_row.values())) > 2
    assert not any(r[6].startswith("Projekt ") for r in body)  # the message does not name the project again
    assert {r[5] for r in body} >= {reference.rule_text(rule).label_de for _, rule, _ in BAD}
    assert all(r[6] for r in body)  # a German reason on every line
    summary = {r[0]: r[1] for r in wb.get_sheet_by_name("Zusammenfassung").to_python() if r[0]}
    assert summary["Kommune"] == "Gelsenkirchen" and summary["Berichtsquartal"] == "Q2/2023"
    assert int(summary["Zeilen gelesen"]) == int(summary["Zeilen übernommen"]) + int(summary["Zeilen abgewiesen"])
    assert int(summary["Zeilen abgewiesen"]) == len(BAD)
    text = " ".join(str(c) for r in listed for c in r)
    assert "@" not in text  # no contact e-mail in what is mailed back
    closing = " ".join(str(c) for r in wb.get_sheet_by_name("Zusammenfassung").to_python() for c in r)
    assert "„_korrektur1“" in closing  # the first correction of this file
    assert "als nicht gemeldet" in closing  # until then the rejected projects are missing from the quarter


def test_rejections_stored_before_the_project_column_get_their_project_back(data_dir):
    """A warehouse written before ``raw.rejected_rows`` had ``project_id``: the unchanged workbook is not read
    again, so its rejections' projects are read back from their messages, or its feedback would list none."""
    paths, _, _ = data_dir
    query = "select row_number, rule, project_id from raw.rejected_rows where row_number is not null order by all"
    with warehouse.connect(paths.warehouse) as con:
        before = con.execute(query).fetchall()
        con.execute("alter table raw.rejected_rows drop column project_id")  # as older code wrote it
        summary = ingest(con, src, paths.landing, log=lambda m: None)
        after = con.execute(query).fetchall()
    assert summary.files_read == 0
    assert after == before and {pid for _, _, pid in before} >= {"GE-2023-001", "GE-2023-004", None}


@pytest.mark.parametrize(
    ("source_file", "suffix"),
    [
        ("forecasts/Prognose_Bochum_2023-Q2.xlsx", "_korrektur1"),
        ("forecasts/Prognose_Bochum_2023-Q2_korrektur1.xlsx", "_korrektur2"),
        ("forecasts/Prognose_Bochum_2023-Q2_Korrektur2.xlsx", "_korrektur3"),
    ],
)
def test_feedback_asks_for_the_next_correction_not_the_same_name(source_file, suffix):
    from zi_warehouse.forecasts.feedback import next_correction_suffix

    assert next_correction_suffix(source_file) == suffix


def test_dagster_feedback_asset_and_blocking_row_accounting_check(data_dir):
    from dagster import AssetCheckSeverity

    from dagster_zi import forecasts as dz

    paths, _, _ = data_dir
    result = dz.forecast_feedback_workbooks()
    assert result.metadata["workbooks"] == 1
    check = dz.forecast_row_accounting()
    assert check.passed and check.severity == AssetCheckSeverity.ERROR
    assert dz.forecast_row_accounting.check_specs and all(s.blocking for s in dz.forecast_row_accounting.check_specs)
    # A ledger that does not add up must fail the check.
    with warehouse.connect(paths.warehouse) as con:
        con.execute("update raw.ingestion_files set rows_rejected = rows_rejected - 1 where file_name = ?", [FILE])
    try:
        assert not dz.forecast_row_accounting().passed
    finally:
        with warehouse.connect(paths.warehouse) as con:
            con.execute("update raw.ingestion_files set rows_rejected = rows_rejected + 1 where file_name = ?", [FILE])


def _sheets(path: Path) -> dict[str, list]:
    wb = pc.CalamineWorkbook.from_path(str(path))
    return {name: wb.get_sheet_by_name(name).to_python() for name in wb.sheet_names}


def test_feedback_during_a_build_is_what_its_build_writes_and_the_build_before_it_keeps_it(tmp_path, monkeypatch):
    """A workbook dropped while a build runs gets its feedback from the file alone (forecast_feedback_during_build);
    the running build, whose warehouse does not know the file, neither removes that workbook nor overwrites it
    with an older version's feedback, and the delivery's own build finds it as it would have written it."""
    from zi_warehouse.forecasts.feedback import write_feedback_from_landing

    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path / "data"))
    paths = config.paths().ensure()
    source_file = f"forecasts/{FILE}"
    with warehouse.connect(paths.warehouse) as con:
        ingest(con, src, paths.landing, log=lambda m: None)  # the build in progress: its ingest ran before the drop
        fill_template(paths.landing / source_file)
        [during] = write_feedback_from_landing(paths.landing, [source_file], paths.feedback)
        during_bytes = during.read_bytes()

        assert write_feedback(con, paths.feedback, paths.landing) == []  # the running build's feedback step
        assert during.read_bytes() == during_bytes  # kept: the delivery waits in the landing area

        summary = ingest(con, src, paths.landing, log=lambda m: None)  # the delivery's own build
        assert summary.rows_rejected == len(BAD)
        assert write_feedback(con, paths.feedback, paths.landing) == [during]
        assert during.read_bytes() == during_bytes  # the same content: not written again
        fresh = write_feedback(con, tmp_path / "fresh", paths.landing)
        assert _sheets(fresh[0]) == _sheets(during)

        # A corrected version under the same name, dropped during the next build: one more row rejected.
        wb = openpyxl.load_workbook(paths.landing / source_file)
        ws = wb[t.PROJECT_SHEET]
        status = next(
            c
            for c in ws[next(r for r in range(1, 20) if ws.cell(r, 1).value == "Kommune")]
            if c.value == "Projektstatus"
        )
        ws.cell(status.row + 1, status.column).value = "kein Status"
        wb.save(paths.landing / source_file)
        [again] = write_feedback_from_landing(paths.landing, [source_file], paths.feedback)
        newer = again.read_bytes()
        assert again == during and newer != during_bytes
        assert write_feedback(con, paths.feedback, paths.landing) == [during]  # the build that knows the old version
        assert again.read_bytes() == newer  # did not put the older version's feedback back
        assert write_feedback(con, paths.feedback) == [during]  # without the landing area: the warehouse's version
        assert again.read_bytes() != newer

        # Without the landing area to ask, a workbook the warehouse does not know is stale and removed.
        (paths.landing / source_file).unlink()
        ingest(con, src, paths.landing, log=lambda m: None)
        fill_template(paths.landing / source_file)
        write_feedback_from_landing(paths.landing, [source_file], paths.feedback)
        assert write_feedback(con, paths.feedback) == [] and not during.exists()


def test_the_feedback_on_a_copy_of_a_delivery_asks_for_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path / "data"))
    paths = config.paths().ensure()
    fill_template(paths.landing_for("forecasts") / FILE)
    copy = paths.landing_for("forecasts") / FILE.replace(".xlsx", "_kopie.xlsx")
    copy.write_bytes((paths.landing_for("forecasts") / FILE).read_bytes())
    with warehouse.connect(paths.warehouse) as con:
        ingest(con, src, paths.landing, log=lambda m: None)
        written = write_feedback(con, paths.feedback)
    [workbook] = [p for p in written if "_kopie" in p.name]
    summary = " ".join(str(c) for r in _sheets(workbook)["Zusammenfassung"] for c in r)
    assert "Datei doppelt geliefert" in summary and "nichts weiter zu tun" in summary
    assert "erneut senden" not in summary and "korrigieren" not in summary
    assert "bereits geliefert, nicht noch einmal geladen" in summary and "Datei abgewiesen" not in summary


def test_the_feedback_on_a_file_refused_as_a_whole_names_the_file_to_send(tmp_path, monkeypatch):
    """A workbook that cannot be read (here: not a workbook at all) is refused as a whole; its feedback asks for
    the file again under the next correction's name, as the feedback on rejected rows does."""
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path / "data"))
    paths = config.paths().ensure()
    (paths.landing_for("forecasts") / FILE).write_bytes(b"kein Excel")
    with warehouse.connect(paths.warehouse) as con:
        ingest(con, src, paths.landing, log=lambda m: None)
        [workbook] = write_feedback(con, paths.feedback)
    summary = " ".join(str(c) for r in _sheets(workbook)["Zusammenfassung"] for c in r)
    assert "Datei abgewiesen" in summary and "erneut senden (Dateiname mit „_korrektur1“)" in summary


def test_a_row_rejected_for_two_reasons_is_explained_where_the_reasons_are_counted(tmp_path):
    """„Anzahl Zeilen“ per reason adds up to more than the rows rejected when a row has two reasons: the
    summary says so (the e-mail does too), so that nobody recounts and thinks a row went missing."""
    from zi_warehouse.forecasts import feedback

    entry = {
        "municipality_key": "gelsenkirchen",
        "period": "2023-Q2",
        "file_name": FILE,
        "source_file": f"forecasts/{FILE}",
        "file_hash": "0" * 64,
        "outcome": "partially_loaded",
        "rows_read": 3,
        "rows_loaded": 2,
        "rows_rejected": 1,
    }
    two_reasons = [
        ("Projekte", 9, "status", "läuft", "known_status", "Projekt GE-1: Status „läuft“ ist unbekannt.", "GE-1"),
        (
            "Projekte",
            9,
            "total_cost_eur",
            "-5",
            "total_cost_range",
            "Projekt GE-1: Gesamtkosten -5 EUR sind nicht plausibel.",
            "GE-1",
        ),
    ]
    for rows, explained in ((two_reasons, True), (two_reasons[:1], False)):
        path = tmp_path / f"{len(rows)}.xlsx"
        feedback._write_workbook(path, entry, rows)
        text = " ".join(str(c) for r in _sheets(path)["Zusammenfassung"] for c in r)
        assert ("aus mehreren Gründen abgewiesen" in text) is explained


def test_a_file_named_for_another_quarter_says_that_quarter_is_still_unreported(tmp_path, monkeypatch):
    """Last quarter's workbook sent under this quarter's name loads as last quarter (the field wins); the feedback
    must not end with "nothing to do now": the quarter in the file name has no report yet (walkthrough)."""
    from zi_warehouse.forecasts.feedback import _closing_after_notices

    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path / "data"))
    paths = config.paths().ensure()
    fill_template(paths.landing_for("forecasts") / FILE.replace("2023-Q2", "2023-Q3"))  # the workbook says Q2/2023
    with warehouse.connect(paths.warehouse) as con:
        ingest(con, src, paths.landing, log=lambda m: None)
        [workbook] = write_feedback(con, paths.feedback)
    summary = " ".join(str(c) for r in _sheets(workbook)["Zusammenfassung"] for c in r)
    assert "Geladen als 2023-Q2" in summary  # the notice
    assert "bis dahin liegt für jenes Quartal keine Meldung vor" in summary  # and what it means, after the rows
    # a file taken over whole with that notice: the same meaning, not "next time"
    taken_over = _closing_after_notices({"file_name_period_mismatch"})
    assert "keine Meldung vor" in taken_over and "beim nächsten Mal" not in taken_over
    assert "beim nächsten Mal" in _closing_after_notices(set())


def test_last_quarter_s_workbook_with_only_the_quarter_changed_gets_a_notice(tmp_path, monkeypatch):
    """The payment columns of the 2023-Q2 template start with 2023-Q3; sent as the 2023-Q3 report (field and file
    name changed), the workbook loads with its amounts where the columns put them and a notice says why the
    columns do not follow the quarter (walkthrough: nothing said so)."""
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path / "data"))
    paths = config.paths().ensure()
    path = paths.landing_for("forecasts") / FILE.replace("2023-Q2", "2023-Q3")
    fill_template(path)
    wb = openpyxl.load_workbook(path)
    wb[t.PROJECT_SHEET].cell(4, 2).value = "Q3/2023"  # Berichtsquartal:
    wb.save(path)
    with warehouse.connect(paths.warehouse) as con:
        ingest(con, src, paths.landing, log=lambda m: None)
        notices = con.execute(
            "select column_name, value_found, message_de from raw.rejected_rows "
            "where rule = 'payment_columns_not_following_period'"
        ).fetchall()
        period = con.execute("select distinct period from raw.ingestion_files").fetchall()
    assert period == [("2023-Q3",)]
    [(column, value, message)] = notices
    assert column == t.PAYMENT_COLUMN and "Q3/2023" in value
    assert "beginnen mit Q3/2023" in message and "ab Q4/2023" in message


def test_the_template_s_own_payment_columns_get_no_notice(tmp_path, monkeypatch):
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path / "data"))
    paths = config.paths().ensure()
    fill_template(paths.landing_for("forecasts") / FILE)
    with warehouse.connect(paths.warehouse) as con:
        ingest(con, src, paths.landing, log=lambda m: None)
        assert con.execute(
            "select count(*) from raw.rejected_rows where rule = 'payment_columns_not_following_period'"
        ).fetchone() == (0,)


def test_last_quarter_s_file_sent_again_under_this_quarter_s_name_says_this_quarter_is_missing(tmp_path, monkeypatch):
    """A byte-identical copy is not loaded again; when its name names another quarter (last quarter's file re-sent
    as this quarter's), its feedback must not say there is nothing to do (verification walkthrough)."""
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path / "data"))
    paths = config.paths().ensure()
    original = paths.landing_for("forecasts") / FILE
    fill_template(original)
    resent = original.with_name(FILE.replace("2023-Q2", "2023-Q3"))
    resent.write_bytes(original.read_bytes())
    with warehouse.connect(paths.warehouse) as con:
        ingest(con, src, paths.landing, log=lambda m: None)
        written = write_feedback(con, paths.feedback)
    [workbook] = [p for p in written if "2023-Q3" in p.name]
    summary = " ".join(str(c) for r in _sheets(workbook)["Zusammenfassung"] for c in r)
    assert "bereits geliefert" in summary
    assert "für Q3/2023 liegt damit noch keine Meldung vor" in summary and "nichts weiter zu tun" not in summary
