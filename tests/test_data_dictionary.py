"""One data dictionary that cannot drift: docs/data-dictionary.md, the published file's comments and the
Parquet files' field metadata all say what the dbt project says, and every published column is described.

- The committed docs/data-dictionary.md is exactly what ``zi_warehouse.data_dictionary`` generates from
  the dbt manifest (regenerate with ``python -m zi_warehouse.data_dictionary`` after ``make setup``).
- Every mart states its grain and every column of every mart has a description in the dbt YAML.
- On the demo build: every column of every published table (DuckDB) is a described column of the
  manifest, and every field of every Parquet file carries that description (and its unit) as metadata.
"""

from __future__ import annotations

import re

import duckdb
import pyarrow.parquet as pq
import pytest

from conftest import parquet_files, published_parquet
from zi_warehouse.data_dictionary import DICTIONARY_DOC, grain_of, marts, render_markdown, unit_of


@pytest.mark.parametrize(
    ("column", "unit"),
    [
        ("approved_eur", "EUR"),
        ("approved_eur_cumulative", "EUR"),
        ("disconnected_area_approved_m2", "m²"),
        ("disconnection_rate_actual_pct", "%"),
        ("evaporation_change_actual_pp", "pp"),
        ("precipitation_mm", "mm"),
        ("precipitation_days_10mm", "Tage"),
        ("mean_temperature_c", "°C"),
        ("area_km2", "km²"),
        ("eur_per_m2_disconnected", "EUR/m²"),
        ("eur_per_tree", "EUR/Baum"),
        ("days_with_precipitation", "Tage"),
        ("trees", None),
        ("population_2020", None),
        ("evaporation_share_before_v", None),
        ("municipality_key", None),
        ("is_completed", None),
        ("campaign_target_trees", None),
    ],
)
def test_units_come_from_the_column_name(column, unit):
    assert unit_of(column) == unit


def test_grain_is_read_from_the_description():
    assert grain_of("Mittelverwendung je Programmjahr (Grain: ein Jahr). Projektideen …") == "ein Jahr"
    assert grain_of("Ergebnisse (Grain: ein Prüflauf × Prüfung; Schlüssel result_id).") == "ein Prüflauf × Prüfung"
    assert grain_of("ohne Angabe") is None


def test_every_mart_states_its_grain_and_describes_every_column():
    docs = marts()
    assert len(docs) >= 15 and "mart_data_quality" in {m.name for m in docs}
    missing_grain = [m.name for m in docs if not m.grain]
    assert not missing_grain, f"Marts ohne „(Grain: …)“ in der Beschreibung: {missing_grain}"
    undescribed = [f"{m.name}.{c.name}" for m in docs for c in m.columns if not c.description]
    assert not undescribed, f"Spalten ohne Beschreibung in models/marts/**/*.yml: {undescribed}"


def test_the_committed_dictionary_is_what_the_dbt_project_says():
    expected = render_markdown(marts())
    assert DICTIONARY_DOC.read_text(encoding="utf-8") == expected, (
        "docs/data-dictionary.md weicht vom dbt-Projekt ab: `make setup` und "
        "`.venv/bin/python -m zi_warehouse.data_dictionary` ausführen und die Datei einchecken"
    )
    for column in ("is_actual_year", "check_name"):  # columns a reader once missed in docs/marts.md
        assert f"| `{column}` |" in expected


def test_every_published_column_is_described_in_duckdb_and_parquet(demo_build):
    published = demo_build["data_dir"] / "published"
    described = {(m.name, c.name): c.description for m in marts() for c in m.columns if c.description}
    con = duckdb.connect(str(published / "zi.duckdb"), read_only=True)
    try:
        columns = con.execute(
            "select table_name, column_name, comment from duckdb_columns() "
            "where schema_name = 'marts' order by table_name, column_index"
        ).fetchall()
        tables = [
            t
            for (t,) in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'marts' order by 1"
            ).fetchall()
        ]
        counts = {t: con.execute(f'select count(*) from marts."{t}"').fetchone()[0] for t in tables}
    finally:
        con.close()
    assert len(tables) >= 15
    undescribed = [f"{t}.{c}" for t, c, _comment in columns if (t, c) not in described]
    assert not undescribed, f"veröffentlichte Spalten ohne Beschreibung im dbt-Projekt: {undescribed}"
    # (the comment keeps the YAML's line breaks; the words are what counts)
    wrong_comment = [f"{t}.{c}" for t, c, comment in columns if " ".join(comment.split()) != described[(t, c)]]
    assert not wrong_comment, f"Spaltenkommentar weicht vom dbt-Projekt ab: {wrong_comment}"
    parquet = published_parquet(published / "parquet")
    for table in tables:
        for path in parquet_files(parquet[table]):
            schema = pq.read_schema(path)
            assert schema.metadata[b"description"] and schema.metadata[b"grain"], table
            for field in schema:
                metadata = field.metadata or {}
                described_as = described[(table, field.name)]
                assert metadata.get(b"description", b"").decode() == described_as, (table, field.name)
                unit = unit_of(field.name)
                assert metadata.get(b"unit", b"").decode() == (unit or ""), (table, field.name)
        # the metadata changes nothing about the data: pyarrow reads every row DuckDB published
        assert pq.read_table(parquet[table]).num_rows == counts[table], table


def test_the_marts_overview_lists_every_mart():
    overview = (DICTIONARY_DOC.parent / "marts.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `(\w+)` \|", overview, re.M))
    assert listed == {m.name for m in marts()}, "docs/marts.md: die Tabelle der Marts ist nicht vollständig"
