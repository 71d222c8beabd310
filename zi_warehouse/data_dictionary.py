"""The data dictionary of the published marts: every mart with its grain and description, every column with
its type, description and unit, generated from the dbt project so that it cannot drift.

What belongs here: reading the marts from the dbt manifest (``target/manifest.json``, built by
``make setup``) and the marts the publish adds to a release (``mart_restatements``), the unit of a column, the grain of a mart, and writing the dictionary as Markdown
(``docs/data-dictionary.md``: ``python -m zi_warehouse.data_dictionary`` rewrites it, a test fails when it
differs from what the manifest gives) and as Parquet metadata (``publish.py`` calls
:func:`parquet_kv_metadata` for every mart file).

Where each piece comes from:
- description: the model's and the column's ``description`` in the marts' YAML (dbt writes both into the
  warehouse as comments, ``persist_docs``, and publishing copies them);
- grain: the "(Grain: …)" part of the model's description (every mart states its grain there);
- unit: the column-name convention (``_eur``, ``_m2``, ``_pct``, ``_pp``, ``_mm``, ``_km2``, ``_km``, ``_c``,
  ``_days``, ``_nights``, ``_bytes``; ``<unit>_per_<thing>`` is a ratio), see :func:`unit_of`. A unit that a
  name does not carry is no unit: counts, keys, names, flags, shares ``v`` between 0 and 1.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from zi_warehouse import config
from zi_warehouse.warehouse import quote_literal

PUBLIC_SCHEMA = "marts"
MANIFEST = config.REPO_ROOT / "target" / "manifest.json"
DICTIONARY_DOC = config.REPO_ROOT / "docs" / "data-dictionary.md"

#: Name parts that carry a unit, and the unit's symbol.
UNIT_TOKENS = {
    "eur": "EUR",
    "m2": "m²",
    "km2": "km²",
    "km": "km",
    "mm": "mm",
    "pct": "%",
    "pp": "pp",  # percentage points
    "c": "°C",
    "days": "Tage",
    "nights": "Nächte",
    "bytes": "Bytes",
}
#: What a ratio is per (``eur_per_tree``: EUR/Baum) when the part after ``per`` is not itself a unit.
PER_NOUNS = {"tree": "Baum", "project": "Projekt", "measure": "Maßnahme", "inhabitant": "Einwohner"}
UNIT_NAMES_DE = {"pp": "Prozentpunkte", "%": "Prozent"}
_GRAIN = re.compile(r"\(Grain:\s*([^;)]*)")


def unit_of(column: str) -> str | None:
    """The unit a column name carries: the last unit part of the name, a ratio for ``<unit>_per_<x>``.

    ``approved_eur_cumulative`` -> EUR, ``disconnected_area_approved_m2`` -> m², ``eur_per_m2_disconnected``
    -> EUR/m², ``eur_per_tree`` -> EUR/Baum, ``precipitation_days_10mm`` -> Tage (``10mm`` is a threshold),
    ``trees`` -> None (a count).
    """
    parts = column.lower().split("_")
    if "per" in parts[1:-1]:
        i = parts.index("per")
        numerator = UNIT_TOKENS.get(parts[i - 1])
        denominator = UNIT_TOKENS.get(parts[i + 1]) or PER_NOUNS.get(parts[i + 1])
        if numerator and denominator:
            return f"{numerator}/{denominator}"
    for part in reversed(parts if len(parts) > 1 else []):  # a one-word name ("trees") is a count
        if part in UNIT_TOKENS:
            return UNIT_TOKENS[part]
    return None


def grain_of(description: str | None) -> str | None:
    match = _GRAIN.search(description or "")
    return match.group(1).strip() if match else None


@dataclass
class ColumnDoc:
    name: str
    data_type: str
    description: str
    unit: str | None


@dataclass
class MartDoc:
    name: str
    description: str
    grain: str | None
    path: str
    columns: list[ColumnDoc] = field(default_factory=list)


def marts(manifest_path: Path = MANIFEST) -> list[MartDoc]:
    """Every model dbt builds into the public schema, with its columns as the YAML declares them."""
    if not manifest_path.exists():
        raise FileNotFoundError(f"Kein dbt-Manifest unter {manifest_path}: zuerst `make setup`.")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    out = []
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model" or node["schema"] != PUBLIC_SCHEMA:
            continue
        description = _one_line(node.get("description"))
        out.append(
            MartDoc(
                name=node["alias"] or node["name"],
                description=description,
                grain=grain_of(description),
                path=node["original_file_path"],
                columns=[
                    ColumnDoc(c["name"], c.get("data_type") or "", _one_line(c.get("description")), unit_of(c["name"]))
                    for c in node["columns"].values()
                ],
            )
        )
    out += release_marts()
    return sorted(out, key=lambda m: m.name)


def release_marts() -> list[MartDoc]:
    """Marts the publish adds to each release (not dbt models): ``mart_restatements``, described where it is
    built (``zi_warehouse/restatements.py``)."""
    from zi_warehouse import restatements

    description = _one_line(restatements.TABLE_COMMENT)
    return [
        MartDoc(
            name=restatements.TABLE,
            description=description,
            grain=grain_of(description),
            path="zi_warehouse/restatements.py",
            columns=[
                ColumnDoc(name, kind, _one_line(comment), unit_of(name)) for name, kind, comment in restatements.COLUMNS
            ],
        )
    ]


# --- Markdown -----------------------------------------------------------------------------------------
def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ") or "–"


def render_markdown(docs: list[MartDoc]) -> str:
    lines = [
        "# Datenkatalog der Marts",
        "",
        "<!-- Generated from the dbt project by `python -m zi_warehouse.data_dictionary` (after `make setup`). "
        "Do not edit: change the descriptions in models/marts/**/*.yml and regenerate; "
        "tests/test_data_dictionary.py fails when this file differs. -->",
        "",
        "Jede Mart des veröffentlichten Warehouse (Schema `marts`, Parquet-Dateien gleichen Namens; die "
        "Prüfhistorie `mart_data_quality` als Ordner mit einer Datei je Monat) mit Grain "
        "(eine Zeile je …), Beschreibung und jeder Spalte mit Typ, Einheit und Beschreibung. Einheiten stehen "
        "im Spaltennamen (`_eur` EUR, `_m2` m², `_pct` Prozent, `_pp` Prozentpunkte, `_mm` mm, `_km2` km², "
        "`_c` °C, `_days` Tage, `<einheit>_per_<bezug>` Verhältnis); Spalten ohne Einheit sind Zählwerte, "
        "Schlüssel, Namen, Wahrheitswerte oder Anteile. Dieselben Beschreibungen tragen die Spaltenkommentare der "
        "DuckDB-Datei und von PostgreSQL sowie die Feld-Metadaten der Parquet-Dateien (`description`, `unit`).",
        "",
        "| Mart | Grain | Spalten |",
        "|---|---|---|",
    ]
    lines += [f"| [`{m.name}`](#{m.name}) | {_cell(m.grain)} | {len(m.columns)} |" for m in docs]
    for m in docs:
        origin = "beim Veröffentlichen gebildet" if m.path.endswith(".py") else "dbt-Modell"
        lines += [
            "",
            f"## {m.name}",
            "",
            m.description or "–",
            "",
            f"Grain: {m.grain or '–'} · {origin}: `{m.path}`",
            "",
            "| Spalte | Typ | Einheit | Beschreibung |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{c.name}` | {_cell(c.data_type.lower())} | {_cell(c.unit)} | {_cell(c.description)} |"
            for c in m.columns
        ]
    return "\n".join(lines) + "\n"


def write_markdown(target: Path = DICTIONARY_DOC, manifest_path: Path = MANIFEST) -> Path:
    target.write_text(render_markdown(marts(manifest_path)), encoding="utf-8")
    return target


# --- Parquet ------------------------------------------------------------------------------------------
def parquet_kv_metadata(
    con, source: str, table_comment: str | None, column_comments: dict[str, str], scratch_dir: Path
) -> str:
    """The ``kv_metadata`` option for DuckDB's ``COPY ... (format parquet)`` of ``source``: the Arrow schema of
    the file with each field's ``description`` and ``unit`` (pyarrow, pandas and Spark read them as field
    metadata) and the table's ``description`` and ``grain``.

    The Arrow schema is the one pyarrow reads from DuckDB's Parquet for ``source`` (an empty file written to
    ``scratch_dir`` first), so the types stay exactly what the file holds.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    probe = scratch_dir / f".schema-{uuid.uuid4().hex[:8]}.parquet"
    try:
        con.execute(f"copy (select * from {source} limit 0) to {quote_literal(probe)} (format parquet)")
        schema = pq.read_schema(probe)
    finally:
        probe.unlink(missing_ok=True)
    fields = []
    for f in schema:
        metadata = {"description": _one_line(column_comments.get(f.name))}
        if unit := unit_of(f.name):
            metadata["unit"] = unit
        fields.append(f.with_metadata(metadata))
    table = {"description": _one_line(table_comment), "grain": grain_of(table_comment) or ""}
    arrow_schema = base64.b64encode(pa.schema(fields, metadata=table).serialize().to_pybytes()).decode()
    pairs = {"ARROW:schema": arrow_schema, **table}
    return "{" + ", ".join(f"{quote_literal(k)}: {quote_literal(v)}" for k, v in pairs.items()) + "}"


def _one_line(text: str | None) -> str:
    """A description as one line (YAML's folded text ends in a newline, long ones hold several)."""
    return " ".join((text or "").split())


if __name__ == "__main__":  # pragma: no cover - `python -m zi_warehouse.data_dictionary [target.md]`
    written = write_markdown(Path(sys.argv[1]) if len(sys.argv) > 1 else DICTIONARY_DOC)
    print(f"Datenkatalog geschrieben: {written}")
