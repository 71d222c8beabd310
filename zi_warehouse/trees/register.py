"""Municipal tree registers (Baumkataster): whose register a file is, and the plausibility rules.

Belongs here: the municipality of a register (from its folder or file name) and ``check_register``: typing
a register's canonical string columns (``schemas.py`` makes them from the sender's schema), converting the
coordinates (``coordinates.py``) and applying the rules of docs/domain.md#tree-registers: height 1–45 m, crown diameter
0.5–30 m, planting year not in the future, coordinates inside the municipality (its boundary polygon,
``zi_warehouse/boundaries.py``), a unique tree number (within the schema's scope), a species.

Registers reach about a million trees for the region: typing and checking (one DuckDB query), the
coordinate transformation (numpy arrays through pyproj) and the point-in-polygon test (shapely) are
columnar; only rejected rows become Python objects.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from zi_warehouse import boundaries
from zi_warehouse.columnar import constant_column, sorted_by_row_number, text_columns
from zi_warehouse.reference import match_municipality, municipality_by_key, normalise_name
from zi_warehouse.trees.coordinates import EPSG_WGS84, to_both_crs
from zi_warehouse.trees.schemas import split_species

#: Plausibility ranges (docs/domain.md#tree-registers). Trunk circumference has no published range: 1–1,500 cm is our
#: generous assumption (Germany's thickest trees measure about 1,000–1,300 cm).
HEIGHT_M = (1.0, 45.0)
CROWN_DIAMETER_M = (0.5, 30.0)
TRUNK_CIRCUMFERENCE_CM = (1.0, 1500.0)

# --- municipality of a register -------------------------------------------------------------------------


def register_municipality(source_file: str) -> str | None:
    """The municipality a register file belongs to, from its folder or file name (never a guess)."""
    path = Path(source_file)
    if len(path.parts) > 2:
        key = match_municipality(path.parent.name.replace("_", " "))
        if key:
            return key
    tokens = [t for t in re.split(r"[_\-\s.]+", path.stem) if t]
    tokens = [
        t
        for t in tokens
        if normalise_name(t) not in {"baumkataster", "baeume", "strassenbaeume", "trees"}
        and not re.fullmatch(r"\d{4}(\d{2}){0,2}", t)
    ]
    # Longest run of tokens that is a municipality name ("muelheim an der ruhr", "castrop rauxel").
    for length in range(len(tokens), 0, -1):
        for start in range(0, len(tokens) - length + 1):
            key = match_municipality(" ".join(tokens[start : start + length]))
            if key:
                return key
    return None


def _number(column: str, decimal_mark: str) -> str:
    """SQL reading a delivered number: with a decimal comma (``auto`` accepts comma or point) or point."""
    text = f"trim({column})"
    return text if decimal_mark == "point" else f"replace({text}, ',', '.')"


def typed_sql(
    a: str, b: str, geometry_type: str, decimal_mark: str = "auto", extra: str = "", source: str = "src"
) -> str:
    """The register's canonical strings typed: one row per tree, the texts kept for rejections."""

    def number(column: str) -> str:
        return _number(column, decimal_mark)

    return f"""
select
    _row_number,
    nullif(trim(tree_number), '') as tree_number,
    nullif(trim(species_botanical), '') as species_botanical,
    nullif(trim(species_german), '') as species_german,
    nullif(trim(planting_year), '') as planting_year_text,
    try_cast(try_cast({number("planting_year")} as double) as integer) as planting_year,
    nullif(trim(trunk_circumference_cm), '') as trunk_text,
    try_cast({number("trunk_circumference_cm")} as double) as trunk_circumference_cm,
    nullif(trim(crown_diameter_m), '') as crown_text,
    try_cast({number("crown_diameter_m")} as double) as crown_diameter_m,
    nullif(trim(height_m), '') as height_text,
    try_cast({number("height_m")} as double) as height_m,
    nullif(trim(district_name), '') as district_name,
    nullif(trim(street), '') as street,
    nullif(trim(status), '') as status,
    nullif(trim({a}), '') as coord_a_text,
    nullif(trim({b}), '') as coord_b_text,
    try_cast({number(a)} as double) as coord_a,
    try_cast({number(b)} as double) as coord_b,
    {geometry_type} as geometry_type{extra}
from {source}
"""


_NUMBER_RULES = [
    # (text column, typed column, reported column, rule, message)
    (
        "planting_year_text",
        "planting_year",
        "planting_year",
        "planting_year_not_numeric",
        "Pflanzjahr ist keine Jahreszahl; bitte vierstellig angeben (z. B. 1998) oder leer lassen.",
    ),
    (
        "trunk_text",
        "trunk_circumference_cm",
        "trunk_circumference_cm",
        "trunk_circumference_not_numeric",
        "Stammumfang ist keine Zahl; bitte in cm angeben oder leer lassen.",
    ),
    (
        "crown_text",
        "crown_diameter_m",
        "crown_diameter_m",
        "crown_diameter_not_numeric",
        "Kronendurchmesser ist keine Zahl; bitte in m angeben oder leer lassen.",
    ),
    (
        "height_text",
        "height_m",
        "height_m",
        "height_not_numeric",
        "Baumhöhe ist keine Zahl; bitte in m angeben oder leer lassen.",
    ),
]


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def register_reject_parts(current_year: int, municipality_name: str) -> list[str]:
    """One ``select ... from checked where <rule>`` per rule (the WHERE is the whole rest of the part).

    ``checked`` holds the typed columns (``typed_sql``), the converted coordinates, ``duplicate_no``,
    ``distance_outside_boundary_m`` and ``located_in`` (``boundaries.locate``)."""
    h0, h1 = HEIGHT_M
    c0, c1 = CROWN_DIAMETER_M
    t0, t1 = TRUNK_CIRCUMFERENCE_CM
    tolerance = boundaries.BOUNDARY_TOLERANCE_M
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
        f"""select _row_number, 'coordinates', concat_ws(' / ', coord_a_text, coord_b_text),
                  'coordinates_inside_municipality',
                  case when axes_swapped then 'Rechts- und Hochwert (bzw. Länge und Breite) scheinen vertauscht: '
                      || 'andersherum gelesen läge der Baum in ' || {_sql_text(municipality_name)}
                      || '; bitte die Reihenfolge der Koordinatenspalten prüfen.' else
                  'Baum liegt ' || case when distance_outside_boundary_m >= 10000
                      then cast(round(distance_outside_boundary_m / 1000) as bigint) || ' km'
                      else cast(round(distance_outside_boundary_m) as bigint) || ' m' end
                  || ' außerhalb der Grenze von ' || {_sql_text(municipality_name)}
                  || coalesce(' (in ' || located_in || ')', ' (außerhalb der Metropole Ruhr)')
                  || '; Koordinaten, Koordinatensystem und Achsenreihenfolge prüfen.' end
           from checked where distance_outside_boundary_m > {tolerance}""",
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


def duplicates_sql(unique_within: tuple[str, ...] = ()) -> str:
    """Row numbers of the repeated tree numbers (within ``unique_within``, e.g. per street): the first
    occurrence is kept, the later ones are rejected."""
    scope = "".join(f", nullif(trim({c}), '') as {c}" for c in unique_within)
    partition = ", ".join(("tree_number", *unique_within))
    return f"""
select _row_number from (
    select _row_number, row_number() over (partition by {partition} order by _row_number) as duplicate_no
    from (select _row_number, nullif(trim(tree_number), '') as tree_number{scope} from src)
    where tree_number is not null
) where duplicate_no > 1
"""


def _tree_key(texts: dict[str, pa.Array], unique_within: tuple[str, ...]) -> pa.Array:
    """What identifies a tree in its file: the tree number, prefixed by the columns it is unique within
    (``Husumer Straße | 20``) where the sender numbers per street."""
    if not unique_within:
        return texts["tree_number"]
    return pc.binary_join_element_wise(
        *(texts[c] for c in unique_within), texts["tree_number"], " | ", null_handling="replace", null_replacement=""
    )


#: String columns of the register loaded as ``nullif(trim(x), '')``.
_REGISTER_TEXT_COLUMNS = ("tree_number", "species_botanical", "species_german", "district_name", "street", "status")


#: Rules that need the converted coordinates or the whole file (duplicates); the others see one row.
def _axes_swapped(municipality_key: str, numbers: pa.Table, crs: str, outside: np.ndarray) -> pa.Array:
    """For each tree outside its municipality: whether it lies inside with its two coordinates read the other way
    round (a register whose columns for easting and northing, or longitude and latitude, are swapped)."""
    swapped = np.zeros(len(outside), dtype=bool)
    far = np.flatnonzero(outside > boundaries.BOUNDARY_TOLERANCE_M)
    if len(far):
        a = numbers.column("coord_a").to_numpy(zero_copy_only=False).astype(float)[far]
        b = numbers.column("coord_b").to_numpy(zero_copy_only=False).astype(float)[far]
        other_way = to_both_crs(b, a, crs)
        again = boundaries.distance_outside(municipality_key, other_way["easting_m"], other_way["northing_m"])
        swapped[far] = again <= boundaries.BOUNDARY_TOLERANCE_M
    return pa.array(swapped)


_LATE_RULE_COLUMNS = ("duplicate_no", "easting_m", "northing_m", "distance_outside_boundary_m")


def check_register(
    table: pa.Table,
    crs: str,
    municipality_key: str,
    source_file: str,
    con: duckdb.DuckDBPyConnection,
    current_year: int | None = None,
    decimal_mark: str = "auto",
    unique_within: tuple[str, ...] = (),
) -> tuple[pa.Table, pa.Table]:
    """Type, convert and check a register's canonical string columns: (good rows, rejections).

    ``crs`` is that of the x/y (or lon/lat) columns; ``decimal_mark`` and ``unique_within`` come from the
    sender's schema. The rules are written once, as SQL over a table ``checked`` (``register_reject_parts``).
    The ~1 M register rows are not copied as strings through DuckDB, which took most of the time: one
    DuckDB pass types the numbers and flags the rows that break a row rule, pyproj converts the
    coordinates, shapely tests them against the municipality's boundary, a narrow query finds repeated tree
    numbers; only the flagged rows (a handful) go through the rule SQL, and the good rows are the delivered
    Arrow columns filtered (strings that need no trimming are taken as they are, see ``text_columns``).
    Rows are taken in file order (``sorted_by_row_number``). tests/test_trees_sources.py checks the result
    against a straightforward all-rows-through-SQL version.
    """
    table = split_species(sorted_by_row_number(table))
    current_year = current_year or dt.date.today().year
    a, b = ("lon", "lat") if crs == EPSG_WGS84 else ("x", "y")
    geometry_type = "geometry_type" if "geometry_type" in table.column_names else "null::varchar"
    parts = register_reject_parts(current_year, municipality_by_key()[municipality_key].name)
    conditions = ["(" + part.split("from checked where", 1)[1] + ")" for part in parts]
    row_rules = " or ".join(c for c in conditions if not any(col in c for col in _LATE_RULE_COLUMNS))
    late_rules = " or ".join(
        c for c in conditions if any(col in c for col in _LATE_RULE_COLUMNS) and "duplicate_no" not in c
    )
    n = table.num_rows
    cur = con.cursor()
    try:
        cur.register("src", table)
        numbers = cur.sql(
            _REGISTER_NUMBERS_SQL.format(any_rule=row_rules, typed=typed_sql(a, b, geometry_type, decimal_mark))
        ).to_arrow_table()
        duplicates = cur.sql(duplicates_sql(unique_within)).to_arrow_table().column("_row_number")
        converted = to_both_crs(
            numbers.column("coord_a").to_numpy(zero_copy_only=False).astype(float),
            numbers.column("coord_b").to_numpy(zero_copy_only=False).astype(float),
            crs,
        )
        outside, located_in = boundaries.locate(municipality_key, converted["easting_m"], converted["northing_m"])
        geo = pa.table(
            {
                **{name: pa.array(values, pa.float64(), mask=np.isnan(values)) for name, values in converted.items()},
                "distance_outside_boundary_m": pa.array(outside, pa.float64(), mask=np.isnan(outside)),
                "located_in": pa.array(located_in, pa.string()),
                "axes_swapped": _axes_swapped(municipality_key, numbers, crs, outside),
            }
        )
        cur.register("geo", geo)
        located = cur.sql(f"select coalesce({late_rules}, false) as flagged from geo").to_arrow_table()
        is_duplicate = pc.is_in(table.column("_row_number"), value_set=duplicates)
        flagged = pc.or_(pc.or_(numbers.column("flagged"), located.column("flagged")), is_duplicate)
        suspects = table
        for name in geo.column_names:
            suspects = suspects.append_column(name, geo.column(name))
        suspects = suspects.append_column("_duplicate", is_duplicate).filter(flagged)
        cur.register("suspects", suspects)
        extra = ", " + ", ".join(geo.column_names) + ", case when _duplicate then 2 else 1 end as duplicate_no"
        cur.execute(
            "create or replace temp table checked as "
            + typed_sql(a, b, geometry_type, decimal_mark, extra, source="suspects")
        )
        rejected = cur.sql("\nunion all\n".join(parts) + " order by 1, 2, 4").to_arrow_table()
        cur.execute("drop table checked")
        texts = text_columns(cur, table, _REGISTER_TEXT_COLUMNS)
    finally:
        cur.close()
    keep = pc.invert(pc.is_in(table.column("_row_number"), value_set=rejected.column("row_number")))
    columns = {
        "municipality_key": constant_column(municipality_key, n),
        **{c: texts[c] for c in _REGISTER_TEXT_COLUMNS[:1]},
        "tree_key": _tree_key(texts, unique_within),
        **{c: texts[c] for c in _REGISTER_TEXT_COLUMNS[1:3]},
        **{c: numbers.column(c) for c in ("planting_year", "trunk_circumference_cm", "crown_diameter_m", "height_m")},
        **{c: texts[c] for c in _REGISTER_TEXT_COLUMNS[3:]},
        "source_crs": constant_column(crs, n),
        **{c: geo.column(c) for c in converted},
        "distance_outside_boundary_m": geo.column("distance_outside_boundary_m"),
        "_source_file": constant_column(source_file, n),
        "_row_number": table.column("_row_number"),
    }
    return pa.table(columns).filter(keep), rejected
