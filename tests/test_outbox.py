"""The coordinators' outbox: a Dagster run ingests workbooks, writes the feedback workbooks and, per municipality,
one German e-mail that arrives at a local SMTP server (aiosmtpd, started by the test) with the feedback workbooks
attached; the record keeps anyone from getting the same feedback twice (zi_warehouse/outbox.py, docs/outbox.md).
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from smtp_server import smtp_server
from test_forecasts_reader import good_row, write_xlsx
from zi_warehouse import alerts, config, outbox, reference, warehouse


def _rename_header(path: Path, old: str, new: str) -> None:
    import openpyxl

    wb = openpyxl.load_workbook(path)
    for cell in wb["Projekte"][7]:
        if cell.value == old:
            cell.value = new
    wb.save(path)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path / "data"))
    for name in (alerts.SMTP_HOST_ENV, alerts.FROM_ENV, alerts.TO_ENV, outbox.ADDRESSES_ENV):
        monkeypatch.delenv(name, raising=False)
    paths = config.paths().ensure()
    landing = paths.landing_for("forecasts")
    # Bochum: one clean file, one with a rejected row; Herne: a header a person renamed, in a file whose
    # name says nothing (the fields above the table do); one file nobody can be identified from.
    write_xlsx(landing / "Prognose_Bochum_2022-Q4.xlsx", [good_row("BO-1")])
    write_xlsx(
        landing / "Prognose_Bochum_2023-Q1.xlsx",
        [good_row("BO-1"), good_row("BO-2", status="in Arbeit")],
        period=(2023, 1),
    )
    herne = write_xlsx(
        landing / "Meldung.xlsx", [good_row("HE-1", municipality="Herne")], municipality="Herne", period=(2023, 1)
    )
    _rename_header(herne, "Gesamtkosten in EUR", "Kosten")
    (landing / "scan.xlsx").write_bytes(b"PK\x03\x04")
    addresses = tmp_path / "koordination.csv"  # outside the repository, as in production
    addresses.write_text(
        'municipality;email\nBochum;"anna@bochum.example.de; b@bochum.example.de"\nherne;k@herne.example.de\n',
        encoding="utf-8",
    )
    monkeypatch.setenv(outbox.ADDRESSES_ENV, str(addresses))
    return paths


def _run_dagster():
    """The forecasts ingest, the feedback workbooks and the outbox: the real assets, one in-process run."""
    from dagster_zi import forecasts as dz
    from dagster_zi.sources import ingest_assets

    raw_forecasts = next(a for a in ingest_assets if AssetKey(["raw_forecasts", "forecasts__projects"]) in a.keys)
    result = materialize(
        [raw_forecasts, dz.forecast_feedback_workbooks, dz.coordinator_outbox], instance=DagsterInstance.ephemeral()
    )
    assert result.success
    return result.asset_materializations_for_node("coordinator_outbox")[0].metadata


def _smtp_env(monkeypatch, smtp) -> None:
    """The alerts' mail server settings, pointing at the test's server (the outbox sends over the same one)."""
    for name, value in smtp.env(to="datenteam@example.org").items():
        monkeypatch.setenv(name, value)


def body_of(message) -> str:
    """The text part of a received message (with attachments: multipart), with Python line ends."""
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def _rule_keys() -> set[str]:
    return {r.rule_key for r in reference.rule_texts() if not r.is_pattern}


def test_a_run_sends_each_municipality_its_feedback_once(data_dir, monkeypatch):
    with smtp_server() as smtp:
        _smtp_env(monkeypatch, smtp)
        metadata = _run_dagster()
        messages = smtp.wait_for(2)
        assert metadata["messages_sent"].value == 2 and metadata["messages_pending"].value == 0
        assert len(messages) == 2
        by_to = {m["To"]: m for m in messages}
        assert set(by_to) == {"anna@bochum.example.de, b@bochum.example.de", "k@herne.example.de"}
        assert sorted(sorted(r) for r in smtp.recipients) == [
            ["anna@bochum.example.de", "b@bochum.example.de"],
            ["k@herne.example.de"],
        ]

        bochum = by_to["anna@bochum.example.de, b@bochum.example.de"]
        text = body_of(bochum)
        assert "Kommune Bochum" in bochum["Subject"]
        assert "„Prognose_Bochum_2022-Q4.xlsx“, Berichtsquartal Q4/2022" in text
        assert "vollständig übernommen (1 Zeile)" in text
        assert "teilweise übernommen: 2 Zeilen gelesen, 1 übernommen, 1 abgewiesen" in text
        assert "Status unbekannt (1 Zeile)" in text  # the rule by its German label
        [attachment] = list(bochum.iter_attachments())
        assert attachment.get_filename() == "2023-Q1_Prognose_Bochum_2023-Q1_Rueckmeldung.xlsx"
        workbook = attachment.get_content()
        assert workbook[:2] == b"PK"
        on_disk = config.paths().feedback / "forecasts" / "bochum" / attachment.get_filename()
        assert workbook == on_disk.read_bytes()

        herne = body_of(by_to["k@herne.example.de"])  # the whole-file rejection reached its municipality
        assert "„Meldung.xlsx“, Berichtsquartal Q1/2023" in herne and "Datei abgewiesen" in herne
        assert "„Kosten“ statt „Gesamtkosten in EUR“" in herne
        for message in messages:
            body = body_of(message)
            assert not set(re.findall(r"[\w.]+", body)) & _rule_keys(), "an internal rule key in an e-mail"
            assert "{" not in body and "header_maps" not in body

        # The same state again: nothing new, nothing sent twice.
        again = _run_dagster()
        assert again["messages_written"].value == 0 and again["messages_sent"].value == 0
        assert len(smtp.wait_for(3, timeout=1.0)) == 2

        # A correction arrives: only it is reported, in a new message to Bochum.
        paths = config.paths()
        write_xlsx(
            paths.landing_for("forecasts") / "Prognose_Bochum_2023-Q1_korrektur1.xlsx",
            [good_row("BO-1"), good_row("BO-2")],
            period=(2023, 1),
        )
        third = _run_dagster()
        assert third["messages_sent"].value == 1
        latest = smtp.wait_for(3)[-1]
        assert "korrektur1" in body_of(latest) and "Prognose_Bochum_2022-Q4.xlsx" not in body_of(latest)
    record = outbox.read_record(paths.outbox)
    assert [e["event"] for e in record].count("sent") == 3
    assert all(e["at"] for e in record)
    # the unidentifiable file went to nobody: it is on the quality report's list for the data team
    assert not any("scan.xlsx" in f["source_file"] for e in record if e["event"] == "written" for f in e["files"])


def test_without_smtp_the_messages_wait_in_the_outbox_and_go_out_later(data_dir, monkeypatch):
    metadata = _run_dagster()  # no ZI_SMTP_HOST: written, not sent
    assert metadata["messages_written"].value == 2 and metadata["messages_sent"].value == 0
    paths = config.paths()
    written = sorted(paths.outbox.glob("*.eml"))
    assert [p.name.split("_", 1)[1] for p in written] == ["bochum.eml", "herne.eml"]
    assert b"Content-Type: multipart/mixed" in written[0].read_bytes()  # a standard MIME message

    monkeypatch.setenv(outbox.ADDRESSES_ENV, str(Path(os.environ[outbox.ADDRESSES_ENV]).with_name("nur_bochum.csv")))
    Path(os.environ[outbox.ADDRESSES_ENV]).write_text(
        "municipality,email\nbochum,anna@bochum.example.de\n", encoding="utf-8"
    )
    from dagster_zi import forecasts as dz

    with smtp_server() as smtp:
        _smtp_env(monkeypatch, smtp)
        with warehouse.connect(paths.warehouse) as con:
            result = outbox.run(con, paths, alerts.SmtpSettings.from_env(), outbox.coordinator_addresses())
        assert [p.name for p in result.sent] == [written[0].name] and smtp.wait_for(1)[0][
            "To"
        ] == "anna@bochum.example.de"
        assert result.why_pending == {"keine Adresse": 1}
        check = dz.coordinator_outbox_delivered()  # Herne has no address: the data team is warned
        assert not check.passed and check.metadata["municipalities_without_address"].value == "herne"
    monkeypatch.setenv(alerts.SMTP_HOST_ENV, "127.0.0.1")
    monkeypatch.setenv(alerts.SMTP_PORT_ENV, "1")  # nothing listens there: recorded, retried next run
    with warehouse.connect(paths.warehouse) as con:
        result = outbox.run(
            con, paths, alerts.SmtpSettings.from_env(), {"herne": ["k@herne.example.de"]}, log=lambda m: None
        )
        assert result.sent == [] and result.why_pending == {"Versand gescheitert": 1}
        assert outbox.read_record(paths.outbox)[-1]["event"] == "failed"
        written[1].unlink()  # the data team deletes the message by hand: it is not sent, and not written again
        result = outbox.run(con, paths, alerts.SmtpSettings.from_env(), {"herne": ["k@herne.example.de"]})
    assert result.written == [] and result.pending == []
    assert outbox.read_record(paths.outbox)[-1] == {
        **outbox.read_record(paths.outbox)[-1],
        "event": "discarded",
        "message": written[1].name,
    }


def test_address_file_errors_are_reported_in_german(tmp_path):
    bad = tmp_path / "a.csv"
    bad.write_text("municipality;email\nAtlantis;x@y.de\n", encoding="utf-8")
    with pytest.raises(outbox.OutboxConfigError, match="Kommune 'Atlantis' unbekannt"):
        outbox.coordinator_addresses({outbox.ADDRESSES_ENV: str(bad)})
    with pytest.raises(outbox.OutboxConfigError, match="nicht lesbar"):
        outbox.coordinator_addresses({outbox.ADDRESSES_ENV: str(tmp_path / "fehlt.csv")})
    assert outbox.coordinator_addresses({}) is None


def _delivery(family: str, source_file: str, rejections: list[dict], outcome: str = "partially_loaded"):
    return outbox.Delivery(
        family=family,
        source_file=source_file,
        file_name=Path(source_file).name,
        file_hash="0" * 16,
        municipality_key="bochum",
        period="2023-Q1" if family == "forecasts" else None,
        outcome=outcome,
        rows_read=3,
        rows_loaded=3 - len(rejections),
        rows_rejected=len(rejections),
        error_message=None,
        rejections=rejections,
    )


def test_a_register_s_rejected_rows_arrive_readable_and_a_correction_is_named_like_the_workbook_says(tmp_path):
    from email import message_from_bytes
    from email.policy import default

    tree = {
        "sheet": None,
        "row_number": 7,
        "column_name": "height_m",
        "value_found": "sehr hoch",
        "rule": "tree_height_number",
        "message_de": "Baumhöhe ist keine Zahl; bitte in m angeben oder leer lassen.",
    }
    workbook_row = {**tree, "sheet": "Projekte", "column_name": "status", "rule": "status_known"}
    message = outbox.compose(
        "bochum",
        [
            _delivery("trees", "trees/bochum/baumkataster.csv", [tree]),
            _delivery("forecasts", "forecasts/Prognose_Bochum_2023-Q1_korrektur1.xlsx", [workbook_row]),
        ],
        tmp_path,
        "zi@example.org",
        ["anna@bochum.example.de"],
    )
    received = message_from_bytes(message.as_bytes(), policy=default)  # as a mail program parses it
    [attachment] = list(received.iter_attachments())
    assert attachment.get_content_type() == "text/csv" and attachment.get_content_charset() == "utf-8"
    text = attachment.get_content()  # decoded with the declared charset
    header, row = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    assert header == ["Zeile", "Gefundener Wert", "Grund", "Hinweis"]  # no sheet column for a register without sheets
    assert row[0] == "7" and row[3] == tree["message_de"]
    body = body_of(received)
    # one revision above the file's own, as the feedback workbook asks (not a fixed "_korrektur1")
    assert "Dateiname mit „_korrektur2“" in body and "_korrektur1.xlsx)" not in body
    # asked once per file: the workbook in its item (with the name ending), the register at the end
    assert body.count("erneut") == 2 and "senden Sie die betroffene Datei erneut" in body


def test_a_workbook_is_asked_for_again_once():
    row = {"sheet": "Projekte", "row_number": 7, "column_name": "status", "value_found": "x", "rule": "status_known"}
    deliveries = [_delivery("forecasts", "forecasts/Prognose_Bochum_2023-Q1.xlsx", [{**row, "message_de": "…"}])]
    body = outbox.message_text("Bochum", deliveries, {})
    assert body.count("erneut") == 1 and "Dateiname mit „_korrektur1“" in body


def test_the_list_of_deliveries_stays_aligned_past_the_ninth():
    deliveries = [_delivery("trees", f"trees/bochum/kataster_{i}.csv", [], outcome="loaded") for i in range(12)]
    lines = outbox.message_text("Bochum", deliveries, {}).splitlines()
    items = [line for line in lines if re.match(r"\d+\. ", line)]
    results = [line for line in lines if line.lstrip().startswith("Ergebnis:")]
    assert len(items) == len(results) == 12
    starts = {len(line) - len(line.lstrip()) for line in results}
    assert starts == {len(items[-1]) - len(items[-1].split(" ", 1)[1].lstrip())}  # under the text of "12. …"
    assert {line.index("Baumkataster") for line in items} == starts


def test_a_copy_of_a_delivery_already_loaded_is_not_asked_for_again():
    """A byte-identical copy is refused as a repeated delivery, which asks nothing of the sender (rule text:
    „Es ist nichts zu tun“): no request to correct and resend it, in the item nor at the end."""
    copy = {
        "sheet": None,
        "row_number": None,
        "column_name": None,
        "value_found": "Prognose_Bochum_2023-Q1_kopie.xlsx",
        "rule": "duplicate_delivery",
        "message_de": "Diese Datei ist identisch mit der bereits gelieferten Datei „Prognose_Bochum_2023-Q1.xlsx“.",
    }
    deliveries = [_delivery("forecasts", "forecasts/Prognose_Bochum_2023-Q1_kopie.xlsx", [copy], outcome="duplicate")]
    body = outbox.message_text("Bochum", deliveries, {})
    assert "Datei doppelt geliefert" in body and "erneut" not in body and "korrigieren" not in body
    assert "Ergebnis: bereits geliefert, nicht noch einmal geladen" in body and "abgewiesen" not in body
    message = outbox.compose("bochum", deliveries, Path("/nonexistent"), "zi@example.de", ["k@example.de"])
    assert "Abweisung" not in message["Subject"]


def test_one_row_rejected_for_three_reasons_is_not_read_as_three_rows():
    base = {"sheet": "Projekte", "row_number": 7, "value_found": "x", "message_de": "…"}
    rules = [("status", "known_status"), ("total_cost_eur", "total_cost_range"), ("municipality", "required")]
    reasons = [{**base, "column_name": column, "rule": rule} for column, rule in rules]
    one_row = _delivery("forecasts", "forecasts/Prognose_Bochum_2023-Q1.xlsx", reasons)
    one_row.rows_rejected, one_row.rows_loaded = 1, 2
    body = outbox.message_text("Bochum", [one_row], {})
    assert "1 abgewiesen" in body and body.count("(1 Zeile)") == 3 and "aus mehreren Gründen" in body
    single = _delivery("forecasts", "forecasts/Prognose_Bochum_2023-Q1.xlsx", reasons[:1])
    assert "aus mehreren Gründen" not in outbox.message_text("Bochum", [single], {})
