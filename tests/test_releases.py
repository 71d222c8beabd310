"""Berichtsstände and restatements on a copy of the demo build (issue 19, "Done when").

`zi report --quarter` freezes the latest quarter; then a corrected workbook for an earlier quarter (Herne
2024-Q1, one project idea now an application in preparation) and a late funding delta (one payment booked in
December 2025 for an approval of another municipality) land, and `zi build` runs. The test then finds in
``marts.mart_restatements`` exactly the figures that differ between the frozen and the current release (its
own comparison, column by column, in Python), each explained by the file that caused it and by no other;
the quarterly report's section lists them; the Berichtsstand is byte-for-byte unchanged and `zi sql
--release` still answers from it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import subprocess
from pathlib import Path

import duckdb
import openpyxl
import pytest

from conftest import REPO_ROOT, ZI, copy_built_data_dir, run_zi, zi_env
from zi_warehouse import releases
from zi_warehouse.demo.funding_extracts import render_file
from zi_warehouse.restatements import RESTATED_MARTS
from zi_warehouse.sources import funding as funding_spec

pytestmark = pytest.mark.slow

NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL")


def corrected_workbook(landing: Path, municipality: str = "Herne", period: str = "2024-Q1") -> Path:
    """The municipality's workbook of an earlier quarter again, one project idea now 'Antrag in Vorbereitung'."""
    workbook = openpyxl.load_workbook(landing / "forecasts" / f"Prognose_{municipality}_{period}.xlsx")
    sheet = workbook["Projekte"]
    status = [c.value for c in sheet[7]].index("Projektstatus") + 1
    row = next(r for r in range(8, sheet.max_row + 1) if sheet.cell(r, status).value == "Projektidee")
    sheet.cell(row, status).value = "Antrag in Vorbereitung"
    target = landing / "forecasts" / f"Prognose_{municipality}_{period}_korrektur.xlsx"
    workbook.save(target)
    return target


def late_delta(landing: Path, warehouse: Path) -> tuple[Path, str]:
    """The next delta extract: one late payment (paid in December 2025) for an approval of a municipality other
    than Herne with room left; the other entity files of the extract are empty. Returns the payments file."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        approval, municipality = con.execute(
            "select approval_id, municipality_key from marts.fct_measure where municipality_key <> 'herne' "
            "and notice_date < date '2025-12-01' and approved_eur - coalesce(paid_eur, 0) > 1000 "
            "order by approval_id limit 1"
        ).fetchone()
        last = con.execute("select max(file_name) from raw.ingestion_files where source_family = 'funding'").fetchone()[
            0
        ]
    finally:
        con.close()
    predecessor = last.rsplit("_", 1)[0]  # zi_foerderung_023_delta_20260930
    seq = int(predecessor.split("_")[2]) + 1
    as_of = dt.datetime.strptime(predecessor.rsplit("_", 1)[1], "%Y%m%d").date() + dt.timedelta(days=92)
    rows = {e.name: [] for e in funding_spec.ENTITIES}
    rows["payments"] = [
        {
            "payment_id": "ZI-Z-999001",
            "approval_id": approval,
            "paid_on": dt.date(2025, 12, 15),
            "amount_eur": 500.00,
            "updated_at": dt.datetime.combine(as_of, dt.time(9, 30)),
        }
    ]
    payments = None
    for entity in funding_spec.ENTITIES:
        path = landing / "funding" / funding_spec.file_name(seq, "delta", as_of, entity)
        path.write_bytes(render_file(entity, rows[entity.name], seq, "delta", as_of, predecessor))
        if entity.name == "payments":
            payments = path
    return payments, municipality


def changed_figures(frozen: Path, current: Path) -> dict[tuple, tuple]:
    """(mart, figure, municipality, period, breakdown) -> (old, new) for every figure that differs, compared
    row by row and column by column in Python (independent of the publish's SQL)."""
    out = {}
    for mart in RESTATED_MARTS:
        tables = []
        for path in (frozen, current):
            con = duckdb.connect(str(path), read_only=True)
            try:
                cursor = con.execute(f"select * from marts.{mart.name}")
                names = [d[0] for d in cursor.description]
                rows = cursor.fetchall()  # before the next statement (DuckDB drops an unread result)
                types = dict(
                    con.execute(
                        "select column_name, data_type from duckdb_columns() where table_name = ?", [mart.name]
                    ).fetchall()
                )
                tables.append(({tuple(r[names.index(k)] for k in mart.keys): dict(zip(names, r)) for r in rows}, types))
            finally:
                con.close()
        (old, old_types), (new, new_types) = tables
        figures = [
            c
            for c, t in new_types.items()
            if c in old_types and t.split("(")[0] in NUMERIC and c not in (*mart.keys, *mart.attributes)
        ]
        for key in old.keys() | new.keys():
            for figure in figures:
                a = old.get(key, {}).get(figure)
                b = new.get(key, {}).get(figure)
                if (
                    a is None
                    and b is None
                    or (a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9))
                ):
                    continue
                breakdown = " / ".join(str(v) for v in key[2:]) if mart.breakdown else None
                out[(mart.name, figure, key[0], str(key[1]), breakdown)] = (
                    None if a is None else float(a),
                    None if b is None else float(b),
                )
    return out


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def restated(demo_data_dir, tmp_path_factory) -> dict:
    data_dir = copy_built_data_dir(demo_data_dir, tmp_path_factory.mktemp("releases") / "data")
    published = data_dir / "published"
    con = duckdb.connect(str(published / "zi.duckdb"), read_only=True)
    quarter = con.execute("select max(period) from marts.mart_pipeline_municipality_quarter").fetchone()[0]
    con.close()
    frozen_out = run_zi(data_dir, "report", "--quarter", quarter)
    folder = published / "reporting" / quarter
    frozen_digest = tree_digest(folder)
    again = run_zi(data_dir, "report", "--quarter", quarter)

    workbook = corrected_workbook(data_dir / "landing")
    payments, delta_municipality = late_delta(data_dir / "landing", data_dir / "warehouse" / "zi.duckdb")
    build = run_zi(data_dir, "build")
    return {
        "data_dir": data_dir,
        "published": published,
        "quarter": quarter,
        "folder": folder,
        "frozen_out": frozen_out.stdout,
        "again_out": again.stdout,
        "frozen_digest": frozen_digest,
        "workbook": workbook.relative_to(data_dir / "landing").as_posix(),
        "payments": payments.relative_to(data_dir / "landing").as_posix(),
        "delta_municipality": delta_municipality,
        "build_out": build.stdout,
    }


def restatement_rows(published: Path) -> list[dict]:
    con = duckdb.connect(str(published / "zi.duckdb"), read_only=True)
    try:
        cursor = con.execute("select * from marts.mart_restatements")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r)) for r in cursor.fetchall()]
    finally:
        con.close()


def test_zi_report_freezes_the_release_with_the_report_beside_it(restated):
    folder, quarter = restated["folder"], restated["quarter"]
    assert f"Berichtsstand {quarter} eingefroren" in restated["frozen_out"]
    assert {"zi.duckdb", "manifest.json", "freeze.json", "bericht.html", "bericht.pdf"} <= set(
        restated["frozen_digest"]
    )
    assert (folder / "bericht.pdf").read_bytes().startswith(b"%PDF")
    # The frozen report says so on its cover; the pipeline's reports are drafts (test_report_quarterly).
    frozen_html = (folder / "bericht.html").read_text(encoding="utf-8")
    assert 'data-release-state="frozen"' in frozen_html
    # The first Berichtsstand has none before it to compare with, and its report does not claim none is frozen.
    assert "Dies ist der erste eingefrorene Berichtsstand" in frozen_html
    assert "Kein früherer Berichtsstand" not in frozen_html and "Noch kein Berichtsstand" not in frozen_html
    record = json.loads((folder / "freeze.json").read_text())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert record["quarter"] == quarter and record["release_id"] == manifest["release_id"]
    assert manifest["run_id"]  # the Dagster run that published it
    # A second freeze of the quarter changes nothing and says where the Berichtsstand is.
    assert "bereits eingefroren" in restated["again_out"]


def test_restatements_are_exactly_the_changed_figures_with_the_files_that_caused_them(restated):
    published, folder = restated["published"], restated["folder"]
    rows = restatement_rows(published)
    expected = changed_figures(folder / "zi.duckdb", published / "zi.duckdb")
    found = {
        (r["mart"], r["figure"], r["municipality_key"], r["period"], r["breakdown"]): (r["old_value"], r["new_value"])
        for r in rows
    }
    assert "Teillauf" in restated["build_out"]  # freezing a quarter does not force a full build
    assert len(found) == len(rows)  # one row per figure
    assert found.keys() == expected.keys()
    for key, (old, new) in expected.items():
        got_old, got_new = found[key]
        assert (got_old is None) == (old is None) and (got_new is None) == (new is None), key
        assert old is None or math.isclose(got_old, old, rel_tol=1e-9), key
        assert new is None or math.isclose(got_new, new, rel_tol=1e-9), key
    # Only the two municipalities the deliveries concern, and their expected figures among them.
    delta = restated["delta_municipality"]
    assert {r["municipality_key"] for r in rows} == {"herne", delta}
    assert ("mart_pipeline_municipality_quarter", "idea_projects", "herne", "2024-Q1", None) in found
    assert (
        "mart_pipeline_municipality_quarter",
        "application_in_preparation_projects",
        "herne",
        "2024-Q1",
        None,
    ) in found
    assert found[("mart_budget_municipality_year", "paid_eur", delta, "2025", None)] == pytest.approx(
        expected[("mart_budget_municipality_year", "paid_eur", delta, "2025", None)]
    )
    paid = next(
        r
        for r in rows
        if (r["mart"], r["figure"], r["municipality_key"], r["period"])
        == ("mart_budget_municipality_year", "paid_eur", delta, "2025")
    )
    assert paid["difference"] == pytest.approx(500.0) and paid["change_kind"] == "geändert"
    # Each figure is explained by the file that caused it, and by no other.
    for r in rows:
        cause = restated["workbook"] if r["municipality_key"] == "herne" else restated["payments"]
        assert (r["files_added"], r["files_replaced"], r["files_removed"]) == (cause, None, None), r
        assert r["reporting_quarter"] == restated["quarter"]
        assert r["reporting_release_id"] == json.loads((restated["folder"] / "freeze.json").read_text())["release_id"]


def test_the_berichtsstand_is_unchanged_and_still_queryable(restated):
    folder, data_dir, quarter = restated["folder"], restated["data_dir"], restated["quarter"]
    assert tree_digest(folder) == restated["frozen_digest"]
    assert releases.verify_frozen(folder) == []
    query = (
        "select idea_projects from marts.mart_pipeline_municipality_quarter "
        "where municipality_key = 'herne' and period = '2024-Q1'"
    )
    then = run_zi(data_dir, "sql", "--release", quarter, query).stdout
    now = run_zi(data_dir, "sql", query).stdout
    old_new = [r for r in restatement_rows(restated["published"]) if r["figure"] == "idea_projects"][0]
    assert re.search(rf"│\s*{int(old_new['old_value'])}\s*│", then), then
    assert re.search(rf"│\s*{int(old_new['new_value'])}\s*│", now), now
    listing = run_zi(data_dir, "releases", "--verify").stdout
    assert quarter in listing and "aktuell" in listing and "unverändert" in listing
    # piped into a file without COLUMNS (cron, a script): the headers are not cut at 80 characters
    env = {k: v for k, v in zi_env(data_dir).items() if k != "COLUMNS"}
    piped = subprocess.run([ZI, "releases"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    assert "veröffentlicht" in piped.stdout and "Marts (neu geschrieben)" in piped.stdout, piped.stdout


def test_the_quarterly_report_lists_the_restatements(restated, monkeypatch, tmp_path):
    from zi_warehouse.reports.quarterly import write_report

    monkeypatch.setenv("ZI_DATA_DIR", str(restated["data_dir"]))
    result = write_report(restated["quarter"], out_dir=tmp_path, pdf=False)
    html = result.html_path.read_text(encoding="utf-8")
    assert f"Änderungen gegenüber dem Berichtsstand {restated['quarter']}" in html
    rows = restatement_rows(restated["published"])
    listed = set(re.findall(r'data-figure="(restatement_[^"]+)_old"', html))
    assert len(listed) == len(rows) > 0
    assert re.search(rf'data-figure="restatements_total" data-value="{len(rows)}"', html)
    assert restated["workbook"] in html and restated["payments"] in html


def test_reports_written_by_hand_leave_the_next_build_nothing_to_do(demo_data_dir, tmp_path):
    """A draft of an earlier quarter and a quality report written by hand change nothing the pipeline built: the
    next `zi build` with no new delivery skips (it built everything in full again, walkthrough)."""
    data_dir = copy_built_data_dir(demo_data_dir, tmp_path / "data")
    run_zi(data_dir, "report", "--quarter", "2025-Q4", "--draft")
    run_zi(data_dir, "quality-report")
    build = run_zi(data_dir, "build")
    assert "Keine Änderung" in build.stdout, build.stdout
