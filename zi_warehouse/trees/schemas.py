"""Tree-register schemas: one mapping per sender, as data, and a register's canonical columns.

Belongs here: the schemas in ``register_schemas.csv`` (separator, encoding, decimal mark, geometry as x/y
columns or WKT, coordinate reference system, the scope of a unique tree number) and
``register_headers.csv`` (which header of that sender means which canonical column); choosing the schema
whose headers fit a file; renaming a CSV register's columns to the canonical ones (a WKT point split into
x/y, species given as "botanical, German" in one field split in two). The rules are ``register.py``'s.

Adding a municipality's schema adds rows to the two CSV files, no code. A file whose headers fit no schema
fails with a German message listing the headers found and what the nearest schema lacks.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pyproj import CRS

from zi_warehouse.columnar import HeaderError, canonical_columns, map_headers
from zi_warehouse.delimited import ENCODINGS, SEPARATORS, UnreadableFile, read_header
from zi_warehouse.trees.coordinates import EPSG_WGS84

REGISTER_SCHEMAS_CSV = Path(__file__).with_name("register_schemas.csv")
REGISTER_HEADERS_CSV = Path(__file__).with_name("register_headers.csv")
STANDARD_SCHEMA = "zi_standard"
#: The canonical string columns of a register table, in order (x/y in the schema's CRS, lon/lat WGS84).
REGISTER_COLUMNS = (
    "tree_number",
    "species_botanical",
    "species_german",
    "planting_year",
    "trunk_circumference_cm",
    "crown_diameter_m",
    "height_m",
    "district_name",
    "street",
    "status",
    "x",
    "y",
    "lon",
    "lat",
)
#: Further columns a schema may name: species as "botanical, German" in one field; a WKT point (x y in
#: the schema's CRS); ``ignore``: a column the sender sends and we knowingly do not load.
SPECIES_COMBINED = "species_combined"
GEOMETRY_WKT = "geometry_wkt"
IGNORE = "ignore"
_SCHEMA_COLUMNS = REGISTER_COLUMNS + (SPECIES_COMBINED, GEOMETRY_WKT, IGNORE)
_DECIMAL_MARKS = ("auto", "comma", "point")
_GEOMETRIES = ("xy", "wkt")


@dataclass(frozen=True)
class RegisterSchema:
    """One sender's register format (a row of register_schemas.csv and its rows in register_headers.csv)."""

    name: str
    sender: str
    separator: str  # a key of delimited.SEPARATORS
    encoding: str  # one of delimited.ENCODINGS
    decimal_mark: str  # auto (comma or point) | comma | point
    geometry: str  # xy (x/y columns, or lon/lat in WGS84) | wkt (a POINT in one column)
    crs: str  # of x/y and WKT, e.g. EPSG:25832, EPSG:31467 (Gauss-Krüger zone 3)
    unique_within: tuple[str, ...]  # canonical columns within which a tree number is unique
    headers: dict[str, frozenset[str]]  # canonical column -> header spellings


@cache
def register_schemas() -> tuple[RegisterSchema, ...]:
    """Every schema, in file order (the first one whose headers fit a file reads it); checked on load."""
    headers: dict[str, dict[str, set[str]]] = {}
    with open(REGISTER_HEADERS_CSV, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["column"] not in _SCHEMA_COLUMNS:
                raise ValueError(f"register_headers.csv: unknown column {row['column']!r} ({row})")
            headers.setdefault(row["schema"], {}).setdefault(row["column"], set()).add(row["header"])
    schemas = []
    with open(REGISTER_SCHEMAS_CSV, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            scope = tuple(c for c in row["tree_number_unique_within"].split("+") if c)
            problems = [
                f"{key} {row[key]!r}"
                for key, allowed in (
                    ("separator", SEPARATORS),
                    ("encoding", ENCODINGS),
                    ("decimal_mark", _DECIMAL_MARKS),
                    ("geometry", _GEOMETRIES),
                )
                if row[key] not in allowed
            ]
            problems += [f"tree_number_unique_within {c!r}" for c in scope if c not in REGISTER_COLUMNS]
            problems += [] if row["schema"] in headers else ["no rows in register_headers.csv"]
            CRS.from_user_input(row["crs"])  # raises for an unknown CRS
            if problems:
                raise ValueError(f"register_schemas.csv, schema {row['schema']}: " + ", ".join(problems))
            schemas.append(
                RegisterSchema(
                    row["schema"],
                    row["sender"],
                    row["separator"],
                    row["encoding"],
                    row["decimal_mark"],
                    row["geometry"],
                    row["crs"],
                    scope,
                    {c: frozenset(h) for c, h in headers[row["schema"]].items()},
                )
            )
    unknown = set(headers) - {s.name for s in schemas}
    if unknown:
        raise ValueError(f"register_headers.csv names schemas not in register_schemas.csv: {sorted(unknown)}")
    return tuple(schemas)


def schema_named(name: str) -> RegisterSchema:
    return next(s for s in register_schemas() if s.name == name)


#: The standard schema's header map (the ZI template; GeoJSON registers use it most).
REGISTER_HEADERS = {c: set(h) for c, h in schema_named(STANDARD_SCHEMA).headers.items()}

_COORDINATE_LABEL = {"xy": "Koordinatenspalten (Rechtswert/Hochwert oder Länge/Breite)", "wkt": "Geometriespalte (WKT)"}


def _schema_problems(schema: RegisterSchema, headers: list[str], geojson: bool) -> tuple[dict[str, str] | None, str]:
    """(mapping, "") if ``headers`` fit ``schema``, else (None, what does not fit, German)."""
    try:
        mapping = map_headers(
            headers, {c: set(h) for c, h in schema.headers.items()}, ("tree_number",), ignore=(IGNORE,)
        )
    except HeaderError as exc:
        return None, str(exc).removeprefix("Kopfzeile passt nicht zur Vorlage (").removesuffix(").")
    if geojson:  # the geometry comes from the features; a tree without species is rejected as a row
        return mapping, ""
    present = set(mapping.values())
    missing = []
    if not present & {"species_botanical", "species_german", SPECIES_COMBINED}:
        missing.append("Baumart (botanisch oder deutsch)")
    has_coordinates = (
        {GEOMETRY_WKT} <= present if schema.geometry == "wkt" else {"x", "y"} <= present or {"lon", "lat"} <= present
    )
    if not has_coordinates:
        missing.append(_COORDINATE_LABEL[schema.geometry])
    return (None, "fehlend: " + ", ".join(missing)) if missing else (mapping, "")


def match_schema(
    headers: list[str] | Callable[[RegisterSchema], list[str]], geojson: bool = False
) -> tuple[RegisterSchema, dict[str, str]]:
    """The first schema whose header map fits the headers, and {header: canonical column} (ignored headers
    left out). ``headers`` may depend on the schema (a CSV header line read with the schema's separator and
    encoding). Raises HeaderError (German) listing the headers found when no schema fits."""
    attempts = []
    found: list[str] = []
    for schema in register_schemas():
        try:
            names = headers(schema) if callable(headers) else headers
        except UnreadableFile as exc:
            attempts.append((schema, str(exc)))
            continue
        found = found or [h for h in names if h != "_row_number"]
        mapping, problem = _schema_problems(schema, names, geojson)
        if mapping is not None:
            return schema, mapping
        attempts.append((schema, problem))
    nearest, problem = min(attempts, key=lambda a: len(a[1]))
    raise HeaderError(
        "Schema des Baumkatasters nicht erkannt. Gefundene Spalten: "
        + ", ".join(f"'{h}'" for h in found)
        + f". Am nächsten kommt das Schema '{nearest.name}' ({nearest.sender}): {problem}. Bitte die Spalten "
        "wie in der Vorlage benennen, oder das Schema des Absenders wird als Zeilen in "
        "zi_warehouse/trees/register_schemas.csv und register_headers.csv ergänzt."
    )


def schema_of_file(path: Path) -> tuple[RegisterSchema, dict[str, str]]:
    """The schema of a CSV register: its header line read as each schema says (separator, encoding)."""
    read_header(path)  # a file without a readable header line fails as unreadable, not as unknown schema
    return match_schema(lambda schema: read_header(path, schema.separator, schema.encoding)[0])


_WKT_POINT = r"^\s*POINT\s*(?:Z\s*)?\(\s*(?P<x>[^\s()]+)\s+(?P<y>[^\s()]+)"


def canonical_register(table: pa.Table, schema: RegisterSchema, mapping: dict[str, str]) -> tuple[pa.Table, str]:
    """A CSV register's columns renamed to the canonical ones (a WKT point split into x/y), and the CRS of
    its coordinates: the schema's for x/y and WKT, WGS84 for lon/lat."""
    extra = tuple(c for c in (SPECIES_COMBINED, GEOMETRY_WKT) if c in mapping.values())
    canon = canonical_columns(table, mapping, REGISTER_COLUMNS + extra)
    if GEOMETRY_WKT in extra:
        wkt = canon.column(GEOMETRY_WKT)
        point = pc.extract_regex(wkt, _WKT_POINT)
        # an unreadable WKT text stays in x, so the rejection shows what was delivered
        canon = canon.set_column(canon.schema.get_field_index("x"), "x", pc.coalesce(pc.struct_field(point, "x"), wkt))
        canon = canon.set_column(canon.schema.get_field_index("y"), "y", pc.struct_field(point, "y"))
        canon = canon.drop_columns([GEOMETRY_WKT])
    present = set(mapping.values())
    crs = schema.crs if {"x", "y"} <= present or GEOMETRY_WKT in present else EPSG_WGS84
    return canon, crs


def split_species(table: pa.Table) -> pa.Table:
    """A ``species_combined`` column ("Alnus glutinosa, Schwarz-Erle") split at its first ", " into the
    botanical and the German name where those columns are empty; without ", " the whole text is taken as
    the botanical name (cultivars such as "Ulmus resista 'Sapporo Gold'" are written so)."""
    if SPECIES_COMBINED not in table.column_names:
        return table
    parts = pc.extract_regex(table.column(SPECIES_COMBINED), r"^(?P<botanical>.*?)(?:, (?P<german>.*))?$")
    botanical = pc.struct_field(parts, "botanical")
    german = pc.struct_field(parts, "german")
    german = pc.if_else(pc.equal(german, ""), pa.scalar(None, pa.string()), german)
    for name, values in (("species_botanical", botanical), ("species_german", german)):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pc.coalesce(table.column(name), values))
    return table.drop_columns([SPECIES_COMBINED])
