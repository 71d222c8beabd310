"""Municipal tree registers (Baumkataster): whose register a file is, its header map, the plausibility rules.

Belongs here: the municipality of a register (from its folder or file name), the register header map
(``register_headers.csv``, data), the canonical columns of a CSV register, and ``check_register``: typing
the canonical string columns, converting the coordinates (``coordinates.py``) and applying the rules of
DOMAIN.md §6: height 1–45 m, crown diameter 0.5–30 m, planting year not in the future, coordinates inside
the municipality, a unique tree number, a species.

"Inside" is an **approximation** (no municipal polygons are available offline): the tree must lie within
``INSIDE_RADIUS_FACTOR`` × the radius of a circle with the municipality's area (seeds/municipalities.csv),
plus ``INSIDE_RADIUS_MARGIN_M``, around its reference point (seeds/municipality_locations.csv). Generous on
purpose: it catches swapped axes, wrong CRS and trees of another city, not trees a few hundred metres over
the border.

Registers reach about a million trees for the region: typing and checking (one DuckDB query) and the
coordinate transformation (numpy arrays through pyproj) are columnar; only rejected rows become Python
objects.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from functools import lru_cache
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from zi_warehouse.columnar import (
    HeaderError,
    canonical_columns,
    constant_column,
    map_headers,
    sorted_by_row_number,
    text_columns,
)
from zi_warehouse.reference import match_municipality, municipality_by_key, normalise_name
from zi_warehouse.trees.coordinates import EPSG_UTM32, EPSG_WGS84, to_both_crs, to_utm

#: Plausibility ranges (DOMAIN.md §6). Trunk circumference has no published range: 1–1,500 cm is our
#: generous assumption (Germany's thickest trees measure about 1,000–1,300 cm).
HEIGHT_M = (1.0, 45.0)
CROWN_DIAMETER_M = (0.5, 30.0)
TRUNK_CIRCUMFERENCE_CM = (1.0, 1500.0)
#: "Inside the municipality" approximation: radius = factor · sqrt(area / π) + margin.
INSIDE_RADIUS_FACTOR = 2.0
INSIDE_RADIUS_MARGIN_M = 1000.0

#: Header map of registers (data): schema, canonical column, a header spelling (compared after normalise_name).
REGISTER_HEADERS_CSV = Path(__file__).with_name("register_headers.csv")
STANDARD_SCHEMA = "zi_standard"


@lru_cache(maxsize=None)
def register_header_maps() -> dict[str, dict[str, frozenset[str]]]:
    """schema -> {canonical column: header spellings}, columns in the order they first appear."""
    maps: dict[str, dict[str, set[str]]] = {}
    with open(REGISTER_HEADERS_CSV, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            maps.setdefault(row["schema"], {}).setdefault(row["column"], set()).add(row["header"])
    return {s: {c: frozenset(h) for c, h in m.items()} for s, m in maps.items()}


REGISTER_HEADERS = {c: set(h) for c, h in register_header_maps()[STANDARD_SCHEMA].items()}
REGISTER_COLUMNS = tuple(REGISTER_HEADERS)


# --- municipality of a register -------------------------------------------------------------------------


def register_municipality(source_file: str) -> str | None:
    """The municipality a register file belongs to, from its folder or file name (never a guess)."""
    path = Path(source_file)
    if len(path.parts) > 2:
        key = match_municipality(path.parent.name.replace("_", " "))
        if key:
            return key
    tokens = [t for t in re.split(r"[_\-\s.]+", path.stem) if t]
    tokens = [t for t in tokens if normalise_name(t) not in {"baumkataster", "baeume", "strassenbaeume", "trees"}
              and not re.fullmatch(r"\d{4}(\d{2}){0,2}", t)]
    # Longest run of tokens that is a municipality name ("muelheim an der ruhr", "castrop rauxel").
    for length in range(len(tokens), 0, -1):
        for start in range(0, len(tokens) - length + 1):
            key = match_municipality(" ".join(tokens[start:start + length]))
            if key:
                return key
    return None


@lru_cache(maxsize=None)
def _reference_points() -> pa.Table:
    """Municipality reference points in EPSG:25832 and the radius of the "inside" approximation."""
    from zi_warehouse.config import SEEDS_DIR

    with open(SEEDS_DIR / "municipality_locations.csv", newline="", encoding="utf-8") as fh:
        locations = {r["municipality_key"]: (float(r["longitude"]), float(r["latitude"])) for r in csv.DictReader(fh)}
    keys = sorted(locations)
    lon = np.array([locations[k][0] for k in keys])
    lat = np.array([locations[k][1] for k in keys])
    east, north = to_utm(lon, lat)
    areas = municipality_by_key()
    radius = np.array([
        INSIDE_RADIUS_FACTOR * math.sqrt(areas[k].area_km2 * 1e6 / math.pi) + INSIDE_RADIUS_MARGIN_M for k in keys
    ])
    return pa.table({"municipality_key": keys, "ref_easting_m": east, "ref_northing_m": north,
                     "inside_radius_m": radius})


def canonical_register(table: pa.Table) -> tuple[pa.Table, str]:
    """A CSV register's columns renamed to the canonical ones, and the CRS its coordinate columns imply."""
    mapping = map_headers(table.column_names, REGISTER_HEADERS, ("tree_number",))
    present = set(mapping.values())
    if {"x", "y"} <= present:
        crs = EPSG_UTM32
    elif {"lon", "lat"} <= present:
        crs = EPSG_WGS84
    else:
        raise HeaderError(
            "Koordinatenspalten fehlen: erwartet Rechtswert/Hochwert (EPSG:25832) oder Länge/Breite (WGS84)."
        )
    if "species_botanical" not in present and "species_german" not in present:
        raise HeaderError("Baumart fehlt: erwartet eine Spalte 'Art botanisch' oder 'Art deutsch'.")
    return canonical_columns(table, mapping, REGISTER_COLUMNS), crs


_REGISTER_TYPED_SQL = """
select
    _row_number,
    nullif(trim(tree_number), '') as tree_number,
    nullif(trim(species_botanical), '') as species_botanical,
    nullif(trim(species_german), '') as species_german,
    nullif(trim(planting_year), '') as planting_year_text,
    try_cast(try_cast(replace(trim(planting_year), ',', '.') as double) as integer) as planting_year,
    nullif(trim(trunk_circumference_cm), '') as trunk_text,
    try_cast(replace(trim(trunk_circumference_cm), ',', '.') as double) as trunk_circumference_cm,
    nullif(trim(crown_diameter_m), '') as crown_text,
    try_cast(replace(trim(crown_diameter_m), ',', '.') as double) as crown_diameter_m,
    nullif(trim(height_m), '') as height_text,
    try_cast(replace(trim(height_m), ',', '.') as double) as height_m,
    nullif(trim(district_name), '') as district_name,
    nullif(trim(street), '') as street,
    nullif(trim(status), '') as status,
    nullif(trim({a}), '') as coord_a_text,
    nullif(trim({b}), '') as coord_b_text,
    try_cast(replace(trim({a}), ',', '.') as double) as coord_a,
    try_cast(replace(trim({b}), ',', '.') as double) as coord_b,
    {geometry_type} as geometry_type{extra}
from src
"""

_NUMBER_RULES = [
    # (text column, typed column, reported column, rule, message)
    ("planting_year_text", "planting_year", "planting_year", "planting_year_not_numeric",
     "Pflanzjahr ist keine Jahreszahl; bitte vierstellig angeben (z. B. 1998) oder leer lassen."),
    ("trunk_text", "trunk_circumference_cm", "trunk_circumference_cm", "trunk_circumference_not_numeric",
     "Stammumfang ist keine Zahl; bitte in cm angeben oder leer lassen."),
    ("crown_text", "crown_diameter_m", "crown_diameter_m", "crown_diameter_not_numeric",
     "Kronendurchmesser ist keine Zahl; bitte in m angeben oder leer lassen."),
    ("height_text", "height_m", "height_m", "height_not_numeric",
     "Baumhöhe ist keine Zahl; bitte in m angeben oder leer lassen."),
]



def register_reject_parts(current_year: int) -> list[str]:
    """One ``select ... from checked where <rule>`` per rule (the WHERE is the whole rest of the part)."""
    h0, h1 = HEIGHT_M
    c0, c1 = CROWN_DIAMETER_M
    t0, t1 = TRUNK_CIRCUMFERENCE_CM
    parts = [
        """select _row_number as row_number, 'tree_number' as column_name, tree_number as value_found,
                  'tree_number_missing' as rule,
                  'Baumnummer fehlt; jeder Baum im Kataster braucht eine eindeutige Nummer.' as message_de
           from checked where tree_number is null""",
        """select _row_number, 'tree_number', tree_number, 'tree_number_unique',
                  'Baumnummer kommt in der Datei mehrfach vor; nur das erste Vorkommen wurde übernommen.'
           from checked where duplicate_no > 1""",
        """select _row_number, 'species_botanical', species_botanical, 'species_missing',
                  'Baumart fehlt (weder botanisch noch deutsch angegeben).'
           from checked where species_botanical is null and species_german is null""",
        f"""select _row_number, 'height_m', height_text, 'height_plausible',
                  'Baumhöhe unplausibel: erlaubt sind {h0:g} bis {h1:g} m; bitte Messwert prüfen.'
           from checked where height_m is not null and not (height_m between {h0} and {h1})""",
        f"""select _row_number, 'crown_diameter_m', crown_text, 'crown_diameter_plausible',
                  'Kronendurchmesser unplausibel: erlaubt sind 0,5 bis {c1:g} m; bitte Messwert prüfen.'
           from checked where crown_diameter_m is not null and not (crown_diameter_m between {c0} and {c1})""",
        f"""select _row_number, 'trunk_circumference_cm', trunk_text, 'trunk_circumference_plausible',
                  'Stammumfang unplausibel: erlaubt sind {t0:g} bis {t1:g} cm; bitte Messwert prüfen.'
           from checked where trunk_circumference_cm is not null
             and not (trunk_circumference_cm between {t0} and {t1})""",
        f"""select _row_number, 'planting_year', planting_year_text, 'planting_year_not_future',
                  'Pflanzjahr liegt in der Zukunft (nach {current_year}); bitte prüfen.'
           from checked where planting_year > {current_year}""",
        """select _row_number, 'planting_year', planting_year_text, 'planting_year_plausible',
                  'Pflanzjahr vor 1500 ist unplausibel; bitte prüfen.'
           from checked where planting_year < 1500""",
        """select _row_number, 'coordinates', concat_ws(' / ', coord_a_text, coord_b_text, geometry_type),
                  'coordinates_missing',
                  'Koordinaten fehlen oder sind keine Zahlen (bei GeoJSON: nur Punktgeometrien); '
                  || 'bitte Lage des Baums angeben.'
           from checked where easting_m is null or northing_m is null or isnan(easting_m)
                           or isnan(northing_m) or isinf(easting_m) or isinf(northing_m)""",
        """select _row_number, 'coordinates', concat_ws(' / ', coord_a_text, coord_b_text),
                  'coordinates_inside_municipality',
                  'Koordinaten liegen außerhalb der Kommune (mehr als ' || cast(round(inside_radius_m / 1000, 1)
                  as varchar) || ' km vom Bezugspunkt, ' || cast(round(distance_to_reference_point_m / 1000, 1)
                  as varchar) || ' km gefunden); Koordinatensystem und Achsenreihenfolge prüfen.'
           from checked where distance_to_reference_point_m > inside_radius_m""",
    ]
    for text_col, typed_col, column, rule, message in _NUMBER_RULES:
        parts.append(
            f"select _row_number, '{column}', {text_col}, '{rule}', '{message}' "
            f"from checked where {text_col} is not null and {typed_col} is null"
        )
    return parts



_REGISTER_NUMBERS_SQL = """
select planting_year, trunk_circumference_cm, crown_diameter_m, height_m, coord_a, coord_b,
       coalesce({any_rule}, false) as flagged
from ({typed}) as checked
"""

_REGISTER_DUPLICATES_SQL = """
select _row_number from (
    select _row_number, row_number() over (partition by tree_number order by _row_number) as duplicate_no
    from (select _row_number, nullif(trim(tree_number), '') as tree_number from src)
    where tree_number is not null
) where duplicate_no > 1
"""

#: String columns of the register loaded as ``nullif(trim(x), '')``.
_REGISTER_TEXT_COLUMNS = ("tree_number", "species_botanical", "species_german", "district_name", "street", "status")
#: Rules that need the converted coordinates or the whole file (duplicates); the others see one row.
_LATE_RULE_COLUMNS = ("duplicate_no", "easting_m", "northing_m", "distance_to_reference_point_m")


def check_register(
    table: pa.Table,
    crs: str,
    municipality_key: str,
    source_file: str,
    con: duckdb.DuckDBPyConnection,
    current_year: int | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Type, convert and check a register's canonical string columns: (good rows, rejections).

    The rules are written once, as SQL over a table ``checked`` (``register_reject_parts``). The ~1 M
    register rows are not copied as strings through DuckDB, which took most of the time: one DuckDB pass
    types the numbers and flags the rows that break a row rule, pyproj converts the coordinates, a narrow
    query finds repeated tree numbers; only the flagged rows (a handful) go through the rule SQL, and the
    good rows are the delivered Arrow columns filtered (strings that need no trimming are taken as they
    are, see ``text_columns``). Rows are taken in file order (``sorted_by_row_number``).
    tests/test_trees_sources.py checks the result against a straightforward all-rows-through-SQL version.
    """
    table = sorted_by_row_number(table)
    refs = _reference_points()
    ref_index = refs.column("municipality_key").to_pylist()
    current_year = current_year or dt.date.today().year
    ref = refs.slice(ref_index.index(municipality_key), 1).to_pylist()[0]
    a, b = ("x", "y") if crs == EPSG_UTM32 else ("lon", "lat")
    geometry_type = "geometry_type" if "geometry_type" in table.column_names else "null::varchar"
    parts = register_reject_parts(current_year)
    conditions = ["(" + part.split("from checked where", 1)[1] + ")" for part in parts]
    row_rules = " or ".join(c for c in conditions if not any(col in c for col in _LATE_RULE_COLUMNS))
    late_rules = " or ".join(c for c in conditions if any(col in c for col in _LATE_RULE_COLUMNS)
                             and "duplicate_no" not in c)
    distance = "sqrt(power(easting_m - ?::double, 2) + power(northing_m - ?::double, 2))"
    n = table.num_rows
    cur = con.cursor()
    try:
        cur.register("src", table)
        numbers = cur.sql(_REGISTER_NUMBERS_SQL.format(
            any_rule=row_rules, typed=_REGISTER_TYPED_SQL.format(a=a, b=b, geometry_type=geometry_type, extra=""),
        )).to_arrow_table()
        duplicates = cur.sql(_REGISTER_DUPLICATES_SQL).to_arrow_table().column("_row_number")
        converted = to_both_crs(numbers.column("coord_a").to_numpy(zero_copy_only=False).astype(float),
                                numbers.column("coord_b").to_numpy(zero_copy_only=False).astype(float), crs)
        geo = pa.table({name: pa.array(values, pa.float64(), mask=np.isnan(values))
                        for name, values in converted.items()})
        cur.register("geo", geo)
        located = cur.sql(
            f"""select {distance} as distance_to_reference_point_m,
                       coalesce({late_rules}, false) as flagged
                from (select *, {distance} as distance_to_reference_point_m, ?::double as inside_radius_m
                      from geo)""",
            params=[ref["ref_easting_m"], ref["ref_northing_m"]] * 2 + [ref["inside_radius_m"]],
        ).to_arrow_table()
        is_duplicate = pc.is_in(table.column("_row_number"), value_set=duplicates)
        flagged = pc.or_(pc.or_(numbers.column("flagged"), located.column("flagged")), is_duplicate)
        suspects = table
        for name in converted:
            suspects = suspects.append_column(name, geo.column(name))
        suspects = suspects.append_column("_duplicate", is_duplicate).filter(flagged)
        cur.register("suspects", suspects)
        cur.execute(
            f"""
            create or replace temp table checked as
            select t.*, {distance} as distance_to_reference_point_m, ?::double as inside_radius_m,
                   case when t._duplicate then 2 else 1 end as duplicate_no
            from ({_REGISTER_TYPED_SQL.format(a=a, b=b, geometry_type=geometry_type,
                                              extra=", easting_m, northing_m, longitude, latitude, _duplicate")
                   .replace("from src", "from suspects")}) t
            """,
            [ref["ref_easting_m"], ref["ref_northing_m"], ref["inside_radius_m"]],
        )
        rejected = cur.sql("\nunion all\n".join(parts) + " order by 1, 2, 4").to_arrow_table()
        cur.execute("drop table checked")
        texts = text_columns(cur, table, _REGISTER_TEXT_COLUMNS)
    finally:
        cur.close()
    keep = pc.invert(pc.is_in(table.column("_row_number"), value_set=rejected.column("row_number")))
    columns = {
        "municipality_key": constant_column(municipality_key, n),
        **{c: texts[c] for c in _REGISTER_TEXT_COLUMNS[:3]},
        **{c: numbers.column(c) for c in ("planting_year", "trunk_circumference_cm", "crown_diameter_m", "height_m")},
        **{c: texts[c] for c in _REGISTER_TEXT_COLUMNS[3:]},
        "source_crs": constant_column(crs, n),
        **{c: geo.column(c) for c in converted},
        "distance_to_reference_point_m": located.column("distance_to_reference_point_m"),
        "_source_file": constant_column(source_file, n),
        "_row_number": table.column("_row_number"),
    }
    return pa.table(columns).filter(keep), rejected
