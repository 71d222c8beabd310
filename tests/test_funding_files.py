"""Funding database, file channel: demo extracts, control records, the delta sequence and bad input."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from zi_warehouse import reference, warehouse
from zi_warehouse.demo import funding_extracts
from zi_warehouse.demo.programme import build_programme
from zi_warehouse.ingest import ingest
from zi_warehouse.landing import discover
from zi_warehouse.sources import funding, funding_checks, funding_entities

SEED = 7
FULL_CUT = dt.datetime(2020, 12, 31, 23, 59, 59)


@pytest.fixture(scope="module")
def programme():
    return build_programme(0.05, SEED)


@pytest.fixture(scope="module")
def demo_landing(tmp_path_factory, programme) -> Path:
    landing = tmp_path_factory.mktemp("funding_demo") / "landing"
    funding_extracts.write(landing, programme, SEED)
    return landing


def _copy_landing(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest / "landing")
    return dest / "landing"


def _ingest(landing: Path, db: Path):
    with warehouse.connect(db) as con:
        return ingest(con, funding, landing, log=lambda m: None)


def _ledger(db: Path) -> dict[str, dict]:
    with warehouse.connect(db) as con:
        return warehouse.ledger(con, "funding")


def _rejections(db: Path) -> list[dict]:
    with warehouse.connect(db) as con:
        cur = con.execute(
            "select * from raw.rejected_rows where source_family = 'funding' order by source_file, row_number"
        )
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


# --- the demo extracts ------------------------------------------------------------------------------


def test_demo_extracts_keep_the_2020_calibration_and_both_encodings(demo_landing, tmp_path):
    files = sorted((demo_landing / "funding").iterdir())
    schedule = funding_extracts.extract_schedule()
    assert len(files) == len(schedule) * len(funding.ENTITIES)
    assert schedule[0] == (0, "full", dt.date(2020, 12, 31)) and schedule[-1][2] == dt.date(2026, 9, 30)
    old = (demo_landing / "funding" / "zi_foerderung_000_voll_20201231_antraege.csv").read_bytes()
    new = (demo_landing / "funding" / "zi_foerderung_023_delta_20260930_antraege.csv").read_bytes()
    assert not old.startswith(b"\xef\xbb\xbf") and "Maßnahmenart".encode("cp1252") in old  # Windows-1252
    assert new.startswith(b"\xef\xbb\xbf") and "Maßnahmenart".encode() in new  # UTF-8 with BOM

    db = tmp_path / "zi.duckdb"
    summary = _ingest(demo_landing, db)
    assert summary.files_failed == [] and summary.files_blocked == [] and summary.rows_rejected == 0
    assert summary.rows_read == summary.rows_loaded > 0
    with warehouse.connect(db) as con:
        n, requested = con.execute(
            "select count(*), sum(requested_eur) from raw.funding__applications "
            "where extract_seq = 0 and year(application_date) = 2020"
        ).fetchone()
        (notices,) = con.execute(
            "select count(*) from raw.funding__approvals where extract_seq = 0 and year(notice_date) = 2020"
        ).fetchone()
        # every row of the ledger adds up, for every file
        bad = con.execute(
            "select count(*) from raw.ingestion_files where rows_read <> rows_loaded + rows_rejected"
        ).fetchone()[0]
        keys = con.execute(
            "select count(*) from raw.funding__key_lists where entity = 'applications' and extract_kind = 'full'"
        ).fetchone()[0]
    assert (n, requested, notices) == (64, Decimal("5200000.00"), 60)
    assert bad == 0
    assert keys == n  # the full extract's key list holds every application it delivered


def test_extracts_are_deterministic(programme, tmp_path):
    a = funding_extracts.write(tmp_path / "a", programme, SEED)
    b = funding_extracts.write(tmp_path / "b", programme, SEED)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_loading_the_same_extracts_twice_changes_nothing(demo_landing, tmp_path):
    db = tmp_path / "zi.duckdb"
    _ingest(demo_landing, db)
    with warehouse.connect(db) as con:
        before = con.execute("select * from raw.funding__applications order by _source_file, _row_number").fetchall()
    again = _ingest(demo_landing, db)
    assert again.files_read == 0  # unchanged files are skipped
    with warehouse.connect(db) as con:
        forced = ingest(con, funding, demo_landing, log=lambda m: None, force=True)
        after = con.execute("select * from raw.funding__applications order by _source_file, _row_number").fetchall()
    assert forced.files_read == len(list((demo_landing / "funding").iterdir()))
    assert after == before


# --- the delta sequence -----------------------------------------------------------------------------


def test_a_missing_delta_blocks_later_deltas_and_names_the_file(demo_landing, tmp_path):
    landing = _copy_landing(demo_landing, tmp_path)
    missing = landing / "funding" / "zi_foerderung_005_delta_20220331_antraege.csv"
    kept = missing.read_bytes()
    missing.unlink()
    db = tmp_path / "zi.duckdb"
    summary = _ingest(landing, db)
    ledger = _ledger(db)
    blocked = {name: row for name, row in ledger.items() if row["outcome"] == "blocked"}
    later = [f for f in ledger if int(f.split("_")[2]) > 5]
    assert set(blocked) == set(later) and len(later) == 18 * len(funding.ENTITIES)
    assert all("zi_foerderung_005_delta_20220331_antraege.csv" in r["error_message"] for r in blocked.values())
    assert {r["error_rule"] for r in blocked.values()} == {"delta_sequence_gap"}  # the rule next to the message
    assert ledger["funding/zi_foerderung_005_delta_20220331_bescheide.csv"]["outcome"] == "loaded"
    assert len(summary.files_blocked) == len(later)
    with warehouse.connect(db) as con:
        assert con.execute("select count(*) from raw.funding__applications where extract_seq > 5").fetchone()[0] == 0
        check = funding_checks.delta_sequence_complete(con)
    assert not check.passed and check.failing >= len(later)
    # each file named with what became of it and why, in German: what zi build and the quality report show
    gap = reference.rule_text("delta_sequence_gap", "rejection", "funding").label_de
    assert f"zi_foerderung_006_delta_20220630_aenderungen.csv (zurückgehalten: {gap})" in check.message_de

    # the missing file arrives: it and every held-back file load on the next run
    missing.write_bytes(kept)
    second = _ingest(landing, db)
    assert second.files_blocked == [] and second.files_read == len(later) + 1
    assert all(r["outcome"] == "loaded" for r in _ledger(db).values())
    with warehouse.connect(db) as con:
        assert funding_checks.delta_sequence_complete(con).passed


def test_a_whole_missing_extract_is_named_from_the_successors_control_record(demo_landing, tmp_path):
    landing = _copy_landing(demo_landing, tmp_path)
    for path in (landing / "funding").glob("zi_foerderung_012_*"):
        path.unlink()
    db = tmp_path / "zi.duckdb"
    _ingest(landing, db)
    message = _ledger(db)["funding/zi_foerderung_013_delta_20240331_zahlungen.csv"]["error_message"]
    assert "zi_foerderung_012_delta_20231231_antraege.csv" in message
    assert "zi_foerderung_012_delta_20231231_zahlungen.csv" in message


# --- bad input --------------------------------------------------------------------------------------


def _state(programme):
    return funding_extracts.database_rows(programme, FULL_CUT, SEED)


def _write(
    landing: Path, entity_name: str, rows: list[dict], seq=0, kind="full", as_of=dt.date(2020, 12, 31), predecessor=None
) -> Path:
    entity = funding_entities.ENTITY_BY_NAME[entity_name]
    folder = landing / "funding"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / funding.file_name(seq, kind, as_of, entity)
    path.write_bytes(funding_extracts.render_file(entity, rows, seq, kind, as_of, predecessor))
    return path


def _read(path: Path, landing: Path):
    landed = next(f for f in discover(landing, "funding", ()) if f.path == path)
    result = funding.read_extract_file(funding.parse_file_name(landed))
    result.check()
    return result


def test_row_rejections_name_row_column_value_and_rule(programme, tmp_path):
    landing = tmp_path / "landing"
    rows = [dict(r) for r in _state(programme)["applications"][:8]]
    rows[1]["requested_eur"] = Decimal("-500.00")  # negative amount
    rows[2]["municipality_name"] = "Atlantis"  # unknown municipality
    rows[3]["municipality_name"] = "Muelheim a.d. Ruhr"  # an alias: matched, not rejected
    rows[4]["status_key"] = "approved"
    rows.append(dict(rows[5]))  # duplicate key: both copies rejected
    rows[6]["updated_at"] = dt.datetime(2021, 1, 5, 10, 0, 0)  # changed after the cut-off
    path = _write(landing, "applications", rows)
    # an impossible date, edited in the file (not part of the control total)
    text = path.read_bytes().decode("cp1252").splitlines()
    fields = text[1 + 7].split(";")
    fields[6] = "31.02.2020"
    text[1 + 7] = ";".join(fields)
    path.write_bytes(("\r\n".join(text) + "\r\n").encode("cp1252"))

    result = _read(path, landing)
    by_rule = {(r.rule, r.row_number, r.column): r for r in result.rejections}
    assert ("negative_amount", 3, "requested_eur") in by_rule
    assert ("unknown_municipality", 4, "municipality_name") in by_rule
    assert by_rule[("unknown_municipality", 4, "municipality_name")].value_found == "Atlantis"
    assert ("duplicate_key", 7, "application_id") in by_rule and ("duplicate_key", 10, "application_id") in by_rule
    assert "7, 10" in by_rule[("duplicate_key", 7, "application_id")].message_de
    assert ("updated_after_extract", 8, "updated_at") in by_rule
    assert ("date_unparseable", 9, "application_date") in by_rule
    assert "31.02.2020" in by_rule[("date_unparseable", 9, "application_date")].message_de
    assert result.rows_read == 9 and result.rows_rejected == 6 and result.rows_loaded == 3
    assert result.outcome == "partially_loaded"
    loaded = result.tables["funding__applications"]
    assert "muelheim_an_der_ruhr" in loaded.column("municipality_key").to_pylist()
    # rejected rows keep their keys in the full extract's key list: they are not "deleted"
    assert len(result.tables["funding__key_lists"]) == 8


@pytest.mark.parametrize(
    "damage, rule",
    [
        ("truncate", "control_record_missing"),
        ("drop_row", "control_count_mismatch"),
        ("change_amount", "control_sum_mismatch"),
        ("rename_header", "unknown_header"),
    ],
)
def test_whole_file_failures(programme, tmp_path, damage, rule):
    landing = tmp_path / "landing"
    rows = _state(programme)["applications"][:5]
    path = _write(landing, "applications", rows)
    data = path.read_bytes()
    lines = data.split(b"\r\n")
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "drop_row":
        data = b"\r\n".join(lines[:2] + lines[3:])
    elif damage == "change_amount":
        fields = lines[1].split(b";")
        fields[8] = fields[8][:-1] + (b"1" if not fields[8].endswith(b"1") else b"2")
        lines[1] = b";".join(fields)
        data = b"\r\n".join(lines)
    elif damage == "rename_header":
        data = data.replace("Antragsdatum".encode("cp1252"), b"Datum Antrag", 1)
    path.write_bytes(data)
    result = _read(path, landing)
    assert result.outcome == "failed"
    assert [r.rule for r in result.rejections] == [rule]
    assert path.name in result.error_message
    if damage == "rename_header":  # the headers named as a person reads them, not as Python prints a list
        assert "Unbekannt: „Datum Antrag“; fehlend: „Antragsdatum“." in result.error_message


@pytest.mark.parametrize("encoding", ["cp1252", "utf-8-bom"])
def test_a_stray_byte_a_short_and_a_long_row_are_rejected_as_rows_and_the_rest_loads(programme, tmp_path, encoding):
    """Per-row tolerance (issue 18): a byte that is no character, too few or too many fields reject only
    their row; the control count still covers every row, the control total cannot be checked then."""
    landing = tmp_path / "landing"
    rows = _state(programme)["applications"][:6]
    path = _write(landing, "applications", rows)
    lines = path.read_bytes().split(b"\r\n")
    if encoding == "utf-8-bom":
        lines = [line.decode("cp1252").encode("utf-8") for line in lines]
    lines[2] = lines[2] + (b"\x81" if encoding == "cp1252" else b"\xff")  # row 3: undecodable byte
    lines[4] = b";".join(lines[4].split(b";")[:5])  # row 5: short
    lines[6] = lines[6] + b";zu viel"  # row 7: long
    path.write_bytes((b"\xef\xbb\xbf" if encoding == "utf-8-bom" else b"") + b"\r\n".join(lines))
    result = _read(path, landing)  # FileResult.check(): read = loaded + rejected
    assert result.outcome == "partially_loaded"
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (6, 3, 3)
    found = {r.row_number: r for r in result.rejections}
    assert [(n, found[n].rule) for n in sorted(found)] == [
        (3, "row_encoding"),
        (5, "row_field_count"),
        (7, "row_field_count"),
    ]
    assert "0x81" in found[3].message_de if encoding == "cp1252" else "0xFF" in found[3].message_de
    assert "5 statt 14 Felder" in found[5].message_de and "15 statt 14 Felder" in found[7].message_de
    assert found[5].value_found == lines[4].decode("cp1252" if encoding == "cp1252" else "utf-8")
    assert result.tables["funding__applications"].column("_row_number").to_pylist() == [2, 4, 6]


def test_deltas_out_of_order_are_refused(programme, tmp_path):
    landing = tmp_path / "landing"
    state = _state(programme)
    for entity in funding.ENTITIES:
        _write(landing, entity.name, state[entity.name])
    # delta 1 claims a different predecessor, delta 2 is dated before delta 1
    wrong = _write(
        landing,
        "applications",
        [],
        seq=1,
        kind="delta",
        as_of=dt.date(2021, 3, 31),
        predecessor="zi_foerderung_000_voll_20201130",
    )
    db = tmp_path / "zi.duckdb"
    _ingest(landing, db)
    row = _ledger(db)[f"funding/{wrong.name}"]
    assert row["outcome"] == "failed" and "Reihenfolge" in row["error_message"]
    assert "zi_foerderung_000_voll_20201130" in row["error_message"]


def test_a_file_that_is_no_extract_is_rejected_not_ignored(tmp_path):
    landing = tmp_path / "landing"
    (landing / "funding").mkdir(parents=True)
    (landing / "funding" / "antraege_export.xlsx").write_bytes(b"PK\x03\x04")
    db = tmp_path / "zi.duckdb"
    summary = _ingest(landing, db)
    assert summary.files_failed == ["funding/antraege_export.xlsx"]
    assert _rejections(db)[0]["rule"] == "unknown_file_name"


def test_a_delta_without_full_extract_is_held_back(programme, tmp_path):
    landing = tmp_path / "landing"
    path = _write(
        landing,
        "payments",
        [],
        seq=1,
        kind="delta",
        as_of=dt.date(2021, 3, 31),
        predecessor="zi_foerderung_000_voll_20201231",
    )
    db = tmp_path / "zi.duckdb"
    _ingest(landing, db)
    row = _ledger(db)[f"funding/{path.name}"]
    assert row["outcome"] == "blocked"
    assert "zi_foerderung_000_voll_20201231_antraege.csv" in row["error_message"]


def test_validation_takes_many_files_in_one_pass(demo_landing):
    # all 24 extracts of one entity in one pass (its speed: `make bench`, the funding delta scenario)
    entity = funding_entities.ENTITY_BY_NAME["payments"]
    files = [
        funding.parse_file_name(f)
        for f in discover(demo_landing, "funding", ())
        if f.path.name.endswith("_zahlungen.csv")
    ]
    pending = [funding.prepare_extract_file(x, None) for x in files]
    results = funding.validate(entity, [(p.strings, p.extract) for p in pending], "de")
    assert len(results) == len(pending) == 24
    assert sum(r.table.num_rows for r in results) == sum(p.strings.num_rows for p in pending)
