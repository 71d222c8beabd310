"""Source family ``trees``: the RVR tree campaign's distribution records and municipal tree registers.

Belongs here: reading and validating
- **campaign distribution lists** (CSV with a header ``Ausgabestelle``): distribution point, municipality,
  species group (apple/pear/cherry/plum, or ``other`` for non-fruit "Klimabäume"), trees handed over,
  date, of which unclaimed (planted later at schools and playgrounds);
- **municipal tree registers** (*Baumkataster*): CSV with coordinates in EPSG:25832 (Rechtswert/Hochwert)
  or WGS84 (Länge/Breite), or GeoJSON (WGS84 by RFC 7946; a legacy ``crs`` member naming EPSG:25832 is
  honoured). One file per municipality; the municipality comes from the file name
  (``baumkataster_<kommune>[_...].csv|geojson``) or from the folder it lies in.

Every register tree is converted with pyproj to both CRSs and checked for plausibility (docs/domain.md#tree-registers):
height 1–45 m, crown diameter 0.5–30 m, planting year not in the future, coordinates inside the
municipality. "Inside" is an **approximation** (no municipal polygons are available offline): the tree must
lie within ``INSIDE_RADIUS_FACTOR`` × the radius of a circle with the municipality's area
(seeds/municipalities.csv), plus ``INSIDE_RADIUS_MARGIN_M``, around its reference point
(seeds/municipality_locations.csv). Generous on purpose: it catches swapped axes, wrong CRS and trees of
another city, not trees a few hundred metres over the border.

Registers reach about a million trees for the region: reading (pyarrow.csv, DuckDB ``read_json``),
typing and checking (one DuckDB query) and the coordinate transformation (numpy arrays through pyproj)
are columnar; only rejected rows become Python objects.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import math
import re
from functools import lru_cache
from itertools import repeat
from pathlib import Path
from typing import Iterable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyproj import Transformer

from zi_warehouse.accounting import FileResult
from zi_warehouse.landing import LandedFile
from zi_warehouse.reference import match_municipality, municipality_by_key, normalise_name
from zi_warehouse.sources.surfaces import (
    HeaderError,
    canonical_columns,
    code_map,
    constant_column,
    map_headers,
    new_connection,
    read_delimited_as_strings,
    rejections_from_arrow,
    text_columns,
)

try:  # a dependency of dagster-dbt; the json module gives the same result without it, only slower
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None

SOURCE_FAMILY = "trees"

CAMPAIGN = "trees__campaign_distributions"
REGISTER = "trees__register_trees"

RAW_TABLES = {
    CAMPAIGN: pa.schema(
        [
            pa.field("distribution_point", pa.string()),
            pa.field("municipality_name", pa.string()),  # as delivered
            pa.field("municipality_key", pa.string()),
            pa.field("species_group", pa.string()),  # apple | pear | cherry | plum | other
            pa.field("species_as_delivered", pa.string()),
            pa.field("trees", pa.int64()),  # handed over at the point, including the unclaimed ones
            pa.field("trees_unclaimed", pa.int64()),  # of which not picked up (planted at schools etc.)
            pa.field("distribution_date", pa.date32()),
        ]
    ),
    REGISTER: pa.schema(
        [
            pa.field("municipality_key", pa.string()),
            pa.field("tree_number", pa.string()),
            pa.field("species_botanical", pa.string()),
            pa.field("species_german", pa.string()),
            pa.field("planting_year", pa.int32()),
            pa.field("trunk_circumference_cm", pa.float64()),
            pa.field("crown_diameter_m", pa.float64()),
            pa.field("height_m", pa.float64()),
            pa.field("district_name", pa.string()),
            pa.field("street", pa.string()),
            pa.field("status", pa.string()),
            pa.field("source_crs", pa.string()),  # EPSG:25832 or EPSG:4326, as delivered
            pa.field("easting_m", pa.float64()),  # EPSG:25832
            pa.field("northing_m", pa.float64()),
            pa.field("longitude", pa.float64()),  # EPSG:4326
            pa.field("latitude", pa.float64()),
            pa.field("distance_to_reference_point_m", pa.float64()),
        ]
    ),
}

EPSG_UTM32 = "EPSG:25832"
EPSG_WGS84 = "EPSG:4326"

#: Plausibility ranges (docs/domain.md#tree-registers). Trunk circumference has no published range: 1–1,500 cm is our
#: generous assumption (Germany's thickest trees measure about 1,000–1,300 cm).
HEIGHT_M = (1.0, 45.0)
CROWN_DIAMETER_M = (0.5, 30.0)
TRUNK_CIRCUMFERENCE_CM = (1.0, 1500.0)
#: "Inside the municipality" approximation: radius = factor · sqrt(area / π) + margin.
INSIDE_RADIUS_FACTOR = 2.0
INSIDE_RADIUS_MARGIN_M = 1000.0

# --- header maps (data, not code): canonical -> spellings compared after normalise_name -------------------
CAMPAIGN_HEADERS = {
    "distribution_point": {"ausgabestelle", "verteilstelle", "ausgabeort", "distribution point"},
    "municipality": {"kommune", "stadt", "gemeinde", "municipality"},
    "species": {"obstart", "artengruppe", "baumart", "species group"},
    "trees": {"anzahl", "anzahl baeume", "baeume", "trees"},
    "distribution_date": {"ausgabedatum", "datum", "distribution date"},
    "trees_unclaimed": {"davon nicht abgeholt", "nicht abgeholt", "unclaimed", "trees unclaimed"},
}
CAMPAIGN_REQUIRED = ("distribution_point", "municipality", "species", "trees", "distribution_date")

REGISTER_HEADERS = {
    "tree_number": {"baumnummer", "baum nr", "baumnr", "baum id", "tree number", "tree id"},
    "species_botanical": {"art botanisch", "botanischer name", "baumart botanisch", "gattung art", "art lat",
                          "species botanical"},
    "species_german": {"art deutsch", "deutscher name", "baumart deutsch", "species german", "baumart"},
    "planting_year": {"pflanzjahr", "planting year"},
    "trunk_circumference_cm": {"stammumfang cm", "stammumfang", "trunk circumference cm"},
    "crown_diameter_m": {"kronendurchmesser m", "kronendurchmesser", "krone m", "crown diameter m"},
    "height_m": {"baumhoehe m", "baumhoehe", "hoehe m", "hoehe", "height m"},
    "district_name": {"stadtbezirk", "bezirk", "ortsteil", "district"},
    "street": {"strasse", "standort", "street"},
    "status": {"status", "zustand"},
    "x": {"rechtswert", "x", "ostwert", "easting", "x utm32"},
    "y": {"hochwert", "y", "nordwert", "northing", "y utm32"},
    "lon": {"laenge", "lon", "longitude", "geo laenge"},
    "lat": {"breite", "lat", "latitude", "geo breite"},
}
REGISTER_COLUMNS = tuple(REGISTER_HEADERS)

SPECIES_GROUPS = ("apple", "pear", "cherry", "plum", "other")
#: Campaign species as written by the distribution points -> species group.
CAMPAIGN_SPECIES = {
    "apple": {"apfel", "apfelbaum", "aepfel", "apple"},
    "pear": {"birne", "birnbaum", "birnen", "pear"},
    "cherry": {"kirsche", "kirschbaum", "suesskirsche", "sauerkirsche", "kirschen", "cherry"},
    "plum": {"pflaume", "pflaumenbaum", "zwetschge", "zwetsche", "zwetschke", "mirabelle", "reneklode", "plum"},
    "other": {"klimabaum", "sonstige", "sonstiges", "other"},
}


class FileProblem(ValueError):
    """A whole-file problem; the message is German and tells the sender what to fix."""

    def __init__(self, message_de: str, rule: str):
        super().__init__(message_de)
        self.rule = rule


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
    import csv

    from zi_warehouse.config import SEEDS_DIR

    with open(SEEDS_DIR / "municipality_locations.csv", newline="", encoding="utf-8") as fh:
        locations = {r["municipality_key"]: (float(r["longitude"]), float(r["latitude"])) for r in csv.DictReader(fh)}
    keys = sorted(locations)
    lon = np.array([locations[k][0] for k in keys])
    lat = np.array([locations[k][1] for k in keys])
    east, north = _to_utm.transform(lon, lat)
    areas = municipality_by_key()
    radius = np.array([
        INSIDE_RADIUS_FACTOR * math.sqrt(areas[k].area_km2 * 1e6 / math.pi) + INSIDE_RADIUS_MARGIN_M for k in keys
    ])
    return pa.table({"municipality_key": keys, "ref_easting_m": east, "ref_northing_m": north,
                     "inside_radius_m": radius})


_to_utm = Transformer.from_crs(EPSG_WGS84, EPSG_UTM32, always_xy=True)
_to_wgs = Transformer.from_crs(EPSG_UTM32, EPSG_WGS84, always_xy=True)


def to_both_crs(a: np.ndarray, b: np.ndarray, source_crs: str) -> dict[str, np.ndarray]:
    """Coordinates (x/y or lon/lat, NaN where missing) in EPSG:25832 and EPSG:4326, vectorised."""
    if source_crs == EPSG_UTM32:
        lon, lat = _to_wgs.transform(a, b)
        return {"easting_m": a, "northing_m": b, "longitude": np.asarray(lon), "latitude": np.asarray(lat)}
    if source_crs == EPSG_WGS84:
        east, north = _to_utm.transform(a, b)
        return {"easting_m": np.asarray(east), "northing_m": np.asarray(north), "longitude": a, "latitude": b}
    raise ValueError(f"unsupported CRS {source_crs}")


# --- register reading -----------------------------------------------------------------------------------


def _sql_str(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _json_text(value) -> str | None:
    """A GeoJSON property value as text, as DuckDB casts JSON to VARCHAR: numbers as Python prints them
    (the same text as DuckDB's: 12.50 -> 12.5, 1e2 -> 100.0, 1e20 -> 1e+20), booleans ``true``/``false``,
    objects and arrays as compact JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


#: Bytes with every ASCII digit as b"0" and everything else as b".": a run of 19 digits is then a plain
#: substring search (a regex over a 40 MB file took a second).
_DIGITS_AS_ZERO = bytes(48 if 48 <= i <= 57 else 46 for i in range(256))
_LONG_DIGIT_RUN = b"0" * 19
_STR_OR_NONE = frozenset({str, type(None)})
_NUMBERS = frozenset({int, float})
_NUMBERS_OR_NONE = _NUMBERS | {type(None)}


def _reject_constant(name: str):
    raise ValueError(f"ungültiger JSON-Wert {name}")


def _parse_json(data: bytes):
    """Parse JSON bytes exactly as ``json.loads(data, parse_constant=_reject_constant)`` does.

    orjson (when installed) is tried first: it builds the same objects ~1.5x faster. It is only trusted
    where it provably agrees with the json module: it refuses NaN/Infinity, a BOM, lone surrogates and
    numbers out of float range (then the json module reads the file and reports the error, or reads what
    orjson refused), and it silently turns integers beyond 64 bits into floats, so a file with a run of
    19 or more digits goes to the json module straight away.
    """
    if _orjson is not None and _LONG_DIGIT_RUN not in data.translate(_DIGITS_AS_ZERO):
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(data, parse_constant=_reject_constant)


def _load_feature_collections(data: bytes) -> list[dict]:
    """The document(s) of a GeoJSON file; NaN/Infinity are invalid JSON (DuckDB refused them too)."""
    try:
        doc = _parse_json(data)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise FileProblem(f"GeoJSON nicht lesbar: {str(exc).splitlines()[0]}", "file_unreadable") from exc
    docs = doc if isinstance(doc, list) else [doc]  # a top-level array: one collection per element
    if not all(isinstance(d, dict) for d in docs):
        raise FileProblem("GeoJSON nicht lesbar: erwartet ein Objekt (FeatureCollection).", "file_unreadable")
    return docs


def _text_column(values: list) -> pa.Array:
    """``[_json_text(v) for v in values]`` as an Arrow string array, without a Python call per value
    in the usual cases (all strings, or all numbers)."""
    kinds = set(map(type, values))
    if kinds <= _STR_OR_NONE:
        return pa.array(values, pa.string())
    if kinds <= _NUMBERS:  # int and float print as str() prints them (bool is neither)
        return pa.array(list(map(str, values)), pa.string())
    if kinds <= _NUMBERS_OR_NONE:
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.array([_json_text(v) for v in values], pa.string())


def _register_from_geojson(path: Path, con: duckdb.DuckDBPyConnection) -> tuple[pa.Table, str]:
    """A GeoJSON FeatureCollection of points: properties as strings, feature index as row number.

    Parsed with Python's json module (or orjson, see ``_parse_json``) and turned into columns directly.
    DuckDB's ``read_json`` reads a FeatureCollection (one JSON object) on one thread and took about 5x as
    long (``make bench``: ~100 s for the registers at scale 1); the result is the same table, column for
    column. The cyclic garbage collector is paused while the document's millions of small objects exist:
    it would otherwise traverse them again and again for nothing (they hold no cycles), which cost more
    than the parsing itself.
    """
    data = path.read_bytes()
    fast = _register_columns_columnar(data)
    if fast is not None:
        return fast
    collect = gc.isenabled()
    gc.disable()
    try:
        return _register_columns_from_geojson(data)
    finally:
        if collect:
            gc.enable()


def _register_crs(crs_names: set[str]) -> str:
    if any("25832" in c for c in crs_names):
        return EPSG_UTM32
    if crs_names and not any(re.search(r"CRS84|4326", c) for c in crs_names):
        raise FileProblem(f"Koordinatensystem {sorted(crs_names)} wird nicht unterstützt; erwartet WGS84 "
                          "oder EPSG:25832.", "crs_unsupported")
    return EPSG_WGS84


def _register_columns_from_geojson(data: bytes) -> tuple[pa.Table, str]:
    """The exact path: the whole document as Python objects (``_parse_json``), every value through
    ``_json_text``. Used for every file the columnar path (``_register_columns_columnar``) declines."""
    row_numbers: list[int] = []
    features: list[dict] = []
    crs_names: set[str] = set()
    for doc in _load_feature_collections(data):
        crs = doc.get("crs")
        name = crs.get("properties", {}).get("name") if isinstance(crs, dict) and isinstance(crs.get("properties"), dict) else None
        if name is not None:
            crs_names.add(name if isinstance(name, str) else _json_text(name))
        items = doc.get("features")
        if items is None:
            continue
        if not isinstance(items, list):
            raise FileProblem("GeoJSON nicht lesbar: 'features' ist keine Liste.", "file_unreadable")
        row_numbers.extend(range(1, len(items) + 1))
        features.extend([f if type(f) is dict else {} for f in items])  # JSON objects are plain dicts
    empty: dict = {}
    properties = [p if type(p) is dict else empty for p in [f.get("properties") for f in features]]
    keys = sorted(set().union(*properties)) if properties else []
    mapping = map_headers(keys, REGISTER_HEADERS, ("tree_number",))
    crs = _register_crs(crs_names)
    columns: dict[str, pa.Array] = {"_row_number": pa.array(row_numbers, pa.int64())}
    for original, canon in mapping.items():
        if canon in ("x", "y", "lon", "lat"):
            continue  # coordinates come from the geometry
        columns[canon] = _text_column(list(map(dict.get, properties, repeat(original))))
    n = len(features)
    for canon in REGISTER_COLUMNS:
        if canon not in mapping.values() and canon not in ("x", "y", "lon", "lat"):
            columns[canon] = pa.nulls(n, pa.string())
    first_values: list = []
    second_values: list = []
    types: list = []
    add_first, add_second, add_type = first_values.append, second_values.append, types.append
    for feature in features:
        geometry = feature.get("geometry")
        if type(geometry) is dict:
            gtype = geometry.get("type")
            add_type(gtype)
            if gtype == "Point":  # _json_text of anything but this string never reads "Point"
                coords = geometry.get("coordinates")
                if type(coords) is list:
                    add_first(coords[0] if len(coords) > 0 else None)
                    add_second(coords[1] if len(coords) > 1 else None)
                    continue
        else:
            add_type(None)
        add_first(None)
        add_second(None)
    first, second = ("x", "y") if crs == EPSG_UTM32 else ("lon", "lat")
    other = ("lon", "lat") if crs == EPSG_UTM32 else ("x", "y")
    columns[first] = _text_column(first_values)
    columns[second] = _text_column(second_values)
    columns[other[0]] = pa.nulls(n, pa.string())
    columns[other[1]] = pa.nulls(n, pa.string())
    columns["geometry_type"] = _text_column(types)
    return pa.table(columns), crs


# --- GeoJSON, columnar path ------------------------------------------------------------------------------
#
# pyarrow's JSON reader parses a register ~5x faster than building Python objects, but types numbers: it
# would read 118 and 118.0 alike and print 12.50 as 12.5 only after a slow float-to-text pass. So every
# number literal outside strings is first put in quotes (one RE2 pass over the bytes) and the reader sees
# only strings, booleans and nulls: a value's text is then the literal as written. That text equals what
# the exact path stores (``str()`` of the value json/orjson gives) exactly when the literal is canonical
# (``1998``, ``118.0``, ``6.9713282``: no exponent, no trailing zeros, at most 15 digits, not below 1e-4,
# not ``-0``); the used columns are checked for that, and any other literal, any structure the columnar
# path does not know and any reader error send the file to the exact path. Quotes put inside a string
# (``"Weg 1,2"``) always end it before a digit, which no valid JSON has: such a file fails the reader
# and goes to the exact path too.

#: A number literal after a key's colon or inside an array (JSON grammar, plus leading zeros, checked apart).
_NUMBER_LITERAL = r'(":|[\[,])([ \t\n\r]*)(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)'
#: Leading zeros are invalid JSON (json refuses the file); quoted, they would read as a valid string.
_LEADING_ZERO = r'(":|[\[,])[ \t\n\r]*-?0\d'
_NUMBERISH = r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$"
#: Literals whose text is ``str()`` of the parsed value: integers of up to 18 digits (not -0); decimals
#: in fixed notation without trailing zeros (but ``.0``), not below 1e-4 (``repr`` switches to exponent
#: notation there) and, checked by length, of at most 15 digits, so they are the shortest repr.
_CANONICAL = r"^(0|-?[1-9]\d{0,17})$|^-?[1-9]\d*\.(0|\d*[1-9])$|^-?0\.(0|0{0,3}[1-9]\d*)$"
_MAX_DECIMAL_CHARS = 16  # 15 digits and the point (a sign not counted)
_BOM = b"\xef\xbb\xbf"
_TEXT_TYPES = (pa.string(), pa.null())


def _register_columns_columnar(data: bytes) -> tuple[pa.Table, str] | None:
    """``_register_columns_from_geojson(data)`` through pyarrow's JSON reader, or None where it cannot be
    sure to give the same table (then the caller takes the exact path, which also reports bad files)."""
    import pyarrow.json as pj

    if not data or data.startswith(_BOM) or b"\\u0000" in data:
        return None
    try:
        raw = pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.array([0, len(data)], pa.int64()).buffers()[1],
                                                             pa.py_buffer(data)])  # no copy
        raw.cast(pa.string())  # invalid UTF-8: json refuses the file, the reader would not
        if pc.count_substring_regex(raw, _LEADING_ZERO)[0].as_py():
            return None
        quoted = pc.replace_substring_regex(raw, _NUMBER_LITERAL, r'\1\2"\3"')[0].as_buffer()
        doc = pj.read_json(pa.BufferReader(quoted),
                           read_options=pj.ReadOptions(block_size=len(quoted) + 64, use_threads=False))
    except (pa.ArrowException, ValueError, SystemError, OverflowError):
        return None
    try:
        return _columns_from_parsed(doc)
    except _Decline:
        return None


class _Decline(Exception):
    """The columnar path cannot vouch for this document."""


def _field(array: pa.Array, name: str) -> pa.Array | None:
    """A struct child with the parent's nulls applied (``StructArray.field`` ignores them)."""
    if not pa.types.is_struct(array.type):
        raise _Decline(name)
    if array.type.get_field_index(name) < 0:
        return None
    return pc.struct_field(array, name)


def _as_text(array: pa.Array | None, n: int) -> pa.Array:
    if array is None or array.type == pa.null():
        return pa.nulls(n, pa.string())
    if array.type == pa.string():
        return array
    if array.type == pa.bool_():  # _json_text prints true / false, as Arrow does
        return pc.cast(array, pa.string())
    raise _Decline(str(array.type))


def _require_canonical(column: pa.Array) -> None:
    """Decline unless every number-looking value is a literal whose text the exact path keeps as is."""
    if column.null_count == len(column):
        return
    numberish = pc.match_substring_regex(column, _NUMBERISH)
    if not pc.any(numberish).as_py():
        return
    values = column.filter(numberish)
    canonical = pc.match_substring_regex(values, _CANONICAL)
    chars = pc.subtract(pc.binary_length(values), pc.cast(pc.starts_with(values, "-"), pa.int32()))
    short = pc.or_(pc.less_equal(chars, _MAX_DECIMAL_CHARS), pc.invert(pc.match_substring(values, ".")))
    if not pc.all(pc.and_(canonical, short)).as_py():
        raise _Decline("number literal")


def _columns_from_parsed(doc: pa.Table) -> tuple[pa.Table, str]:
    if doc.num_rows != 1 or "features" not in doc.column_names:
        raise _Decline("not one document with features")
    crs_names: set[str] = set()
    if "crs" in doc.column_names:
        crs = doc.column("crs").combine_chunks()
        if crs.type != pa.null():
            props = _field(crs, "properties")
            if props is not None and props.type != pa.null():
                name = _field(props, "name")
                if name is not None and name.type != pa.null():
                    if name.type != pa.string():
                        raise _Decline("crs name")
                    crs_names.update(v for v in name.to_pylist() if v is not None)
    feature_lists = doc.column("features").combine_chunks()
    if not pa.types.is_list(feature_lists.type) or feature_lists.null_count:
        raise _Decline("features")
    features = feature_lists.flatten()
    n = len(features)
    if n == 0 or not pa.types.is_struct(features.type) or features.null_count:
        raise _Decline("features")
    properties = _field(features, "properties")
    if properties is not None and properties.type == pa.null():
        properties = None
    keys = sorted(properties.type.field(i).name for i in range(properties.type.num_fields)) if properties else []
    mapping = map_headers(keys, REGISTER_HEADERS, ("tree_number",))
    crs = _register_crs(crs_names)
    if properties is not None:
        for i in range(properties.type.num_fields):
            if properties.type.field(i).type not in _TEXT_TYPES and properties.type.field(i).type != pa.bool_():
                raise _Decline("property type")
    columns: dict[str, pa.Array] = {"_row_number": pa.array(np.arange(1, n + 1, dtype=np.int64))}
    for original, canon in mapping.items():
        if canon in ("x", "y", "lon", "lat"):
            continue  # coordinates come from the geometry
        columns[canon] = _as_text(_field(properties, original), n)
        _require_canonical(columns[canon])
    for canon in REGISTER_COLUMNS:
        if canon not in mapping.values() and canon not in ("x", "y", "lon", "lat"):
            columns[canon] = pa.nulls(n, pa.string())
    geometry = _field(features, "geometry")
    if geometry is None or geometry.type == pa.null():
        gtype = pa.nulls(n, pa.string())
        coords = None
    else:
        gtype = _as_text(_field(geometry, "type"), n)
        coords = _field(geometry, "coordinates")
        if gtype.type != pa.string():
            raise _Decline("geometry type")
    first = second = pa.nulls(n, pa.string())
    if coords is not None and coords.type != pa.null():
        if not pa.types.is_list(coords.type) or coords.type.value_type not in _TEXT_TYPES:
            raise _Decline("coordinates")
        values = _as_text(coords.values, len(coords.values))
        offsets = coords.offsets.to_numpy()
        lengths = np.diff(offsets)
        is_point = pc.fill_null(pc.equal(gtype, "Point"), False).to_numpy(zero_copy_only=False)
        valid = is_point & coords.is_valid().to_numpy(zero_copy_only=False)
        starts = offsets[:-1]
        first = _pick(values, starts, valid & (lengths > 0))
        second = _pick(values, starts + 1, valid & (lengths > 1))
        _require_canonical(first)
        _require_canonical(second)
    a, b = ("x", "y") if crs == EPSG_UTM32 else ("lon", "lat")
    other = ("lon", "lat") if crs == EPSG_UTM32 else ("x", "y")
    columns[a] = first
    columns[b] = second
    columns[other[0]] = pa.nulls(n, pa.string())
    columns[other[1]] = pa.nulls(n, pa.string())
    columns["geometry_type"] = gtype
    return pa.table(columns), crs


def _pick(values: pa.Array, positions: np.ndarray, mask: np.ndarray) -> pa.Array:
    """``values[positions]`` where ``mask``, NULL elsewhere."""
    if not mask.any():
        return pa.nulls(len(mask), pa.string())
    taken = pc.take(values, pa.array(np.where(mask, positions, 0), pa.int64()))
    return pc.if_else(pa.array(mask), taken, pa.scalar(None, pa.string()))


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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


def _register_reject_sql(current_year: int) -> str:
    return "\nunion all\n".join(_register_reject_parts(current_year))


def _register_reject_parts(current_year: int) -> list[str]:
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


def _check_register_reference(
    table: pa.Table,
    crs: str,
    municipality_key: str,
    source_file: str,
    con: duckdb.DuckDBPyConnection,
    current_year: int | None = None,
) -> tuple[pa.Table, pa.Table]:
    """``check_register`` as it was first written: every typed column materialised twice (a temp table, then
    the good rows). Kept as the reference the fast path is tested against, and used for the rare file whose
    row numbers do not increase (several feature collections in one GeoJSON file)."""
    current_year = current_year or dt.date.today().year
    cur = con.cursor()
    try:
        cur.register("src", table)
        a, b = ("x", "y") if crs == EPSG_UTM32 else ("lon", "lat")
        geometry_type = "geometry_type" if "geometry_type" in table.column_names else "null::varchar"
        typed = cur.sql(_REGISTER_TYPED_SQL.format(a=a, b=b, geometry_type=geometry_type, extra="")).to_arrow_table()
        coord_a = typed.column("coord_a").to_numpy(zero_copy_only=False).astype(float)
        coord_b = typed.column("coord_b").to_numpy(zero_copy_only=False).astype(float)
        converted = to_both_crs(coord_a, coord_b, crs)
        for name, values in converted.items():
            typed = typed.append_column(name, pa.array(values, pa.float64(), mask=np.isnan(values)))
        cur.register("typed", typed)
        cur.register("refs", _reference_points())
        cur.execute(
            """
            create or replace temp table checked as
            select t.*,
                   sqrt(power(t.easting_m - r.ref_easting_m, 2) + power(t.northing_m - r.ref_northing_m, 2))
                       as distance_to_reference_point_m,
                   r.inside_radius_m,
                   case when t.tree_number is null then 1
                        else row_number() over (partition by t.tree_number order by t._row_number) end
                       as duplicate_no
            from typed t
            cross join (select * from refs where municipality_key = ?) r
            """,
            [municipality_key],
        )
        rejected = cur.sql(_register_reject_sql(current_year) + " order by 1, 2, 4").to_arrow_table()
        cur.register("rejected", rejected)
        good = cur.sql(
            """
            select ?::varchar as municipality_key, tree_number, species_botanical, species_german,
                   planting_year, trunk_circumference_cm, crown_diameter_m, height_m, district_name, street,
                   status, ?::varchar as source_crs, easting_m, northing_m, longitude, latitude,
                   distance_to_reference_point_m, ?::varchar as _source_file, _row_number
            from checked
            where _row_number not in (select row_number from rejected)
            order by _row_number
            """,
            params=[municipality_key, crs, source_file],
        ).to_arrow_table()
        cur.execute("drop table checked")
        return good, rejected
    finally:
        cur.close()


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

    Same result as ``_check_register_reference`` (tests/test_trees_sources.py compares them on the demo
    registers and on bad rows), without copying the ~1 M register rows as strings through DuckDB, which
    took most of the time: one DuckDB pass types the numbers and flags the rows that break a row rule,
    pyproj converts the coordinates, a narrow query finds repeated tree numbers; only the flagged rows (a
    handful) go through the reference rule SQL, and the good rows are the delivered Arrow columns filtered
    (strings that need no trimming are taken as they are, see ``text_columns``).
    """
    refs = _reference_points()
    ref_index = refs.column("municipality_key").to_pylist()
    if municipality_key not in ref_index or not _increasing(table.column("_row_number")):
        return _check_register_reference(table, crs, municipality_key, source_file, con, current_year)
    current_year = current_year or dt.date.today().year
    ref = refs.slice(ref_index.index(municipality_key), 1).to_pylist()[0]
    a, b = ("x", "y") if crs == EPSG_UTM32 else ("lon", "lat")
    geometry_type = "geometry_type" if "geometry_type" in table.column_names else "null::varchar"
    parts = _register_reject_parts(current_year)
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


def _increasing(values: pa.ChunkedArray) -> bool:
    array = values.to_numpy()
    return bool(np.all(array[1:] > array[:-1]))


# --- campaign -------------------------------------------------------------------------------------------


def _species_lookup(value: str) -> str | None:
    n = normalise_name(value)
    for group, spellings in CAMPAIGN_SPECIES.items():
        if n in spellings:
            return group
    return None


_CAMPAIGN_SQL = """
create or replace temp table campaign_typed as
select
    _row_number,
    nullif(trim(distribution_point), '') as distribution_point,
    nullif(trim(municipality), '') as municipality_name,
    mu.code as municipality_key,
    nullif(trim(species), '') as species_as_delivered,
    sp.code as species_group,
    nullif(trim(trees), '') as trees_text,
    try_cast(trim(trees) as bigint) as trees,
    nullif(trim(trees_unclaimed), '') as unclaimed_text,
    coalesce(try_cast(nullif(trim(trees_unclaimed), '') as bigint), case when nullif(trim(trees_unclaimed), '')
        is null then 0 end) as trees_unclaimed,
    nullif(trim(distribution_date), '') as date_text,
    coalesce(try_strptime(trim(distribution_date), '%d.%m.%Y'),
             try_strptime(trim(distribution_date), '%Y-%m-%d'))::date as distribution_date
from src
left join municipality_map mu on mu.value = src.municipality
left join species_map sp on sp.value = src.species
"""

_CAMPAIGN_REJECT_SQL = """
select _row_number as row_number, 'distribution_point' as column_name, distribution_point as value_found,
       'distribution_point_missing' as rule, 'Ausgabestelle fehlt.' as message_de
from campaign_typed where distribution_point is null
union all
select _row_number, 'municipality', municipality_name, 'municipality_known',
       'Kommune nicht erkannt; bitte den amtlichen Namen einer RVR-Kommune angeben.'
from campaign_typed where municipality_key is null
union all
select _row_number, 'species', species_as_delivered, 'species_group_known',
       'Obstart unbekannt; zulässig sind Apfel, Birne, Kirsche, Pflaume (oder Klimabaum/Sonstige).'
from campaign_typed where species_group is null
union all
select _row_number, 'trees', trees_text, 'trees_positive_integer',
       'Anzahl Bäume muss eine ganze Zahl größer als 0 sein.'
from campaign_typed where trees is null or trees <= 0
union all
select _row_number, 'trees_unclaimed', unclaimed_text, 'trees_unclaimed_valid',
       'Anzahl nicht abgeholter Bäume muss eine ganze Zahl zwischen 0 und der ausgegebenen Anzahl sein.'
from campaign_typed where trees_unclaimed is null or trees_unclaimed < 0
   or (trees > 0 and trees_unclaimed > trees)
union all
select _row_number, 'distribution_date', date_text, 'distribution_date_valid',
       'Ausgabedatum fehlt oder ist kein Datum; bitte als TT.MM.JJJJ angeben.'
from campaign_typed where distribution_date is null
"""


def check_campaign(table: pa.Table, source_file: str, con: duckdb.DuckDBPyConnection) -> tuple[pa.Table, pa.Table]:
    cur = con.cursor()
    try:
        cur.register("src", table)
        municipality_values, species_values = cur.sql(
            "select list(distinct municipality), list(distinct species) from src").fetchall()[0]
        code_map(cur, "municipality_map", municipality_values or [], match_municipality)
        code_map(cur, "species_map", species_values or [], _species_lookup)
        cur.execute(_CAMPAIGN_SQL)
        rejected = cur.sql(_CAMPAIGN_REJECT_SQL + " order by 1, 2").to_arrow_table()
        cur.register("rejected", rejected)
        good = cur.sql(
            """
            select distribution_point, municipality_name, municipality_key, species_group, species_as_delivered,
                   trees, trees_unclaimed, distribution_date, ?::varchar as _source_file, _row_number
            from campaign_typed where _row_number not in (select row_number from rejected)
            order by _row_number
            """,
            params=[source_file],
        ).to_arrow_table()
        cur.execute("drop table campaign_typed")
        return good, rejected
    finally:
        cur.close()


# --- dispatch -------------------------------------------------------------------------------------------


def _is_campaign_header(headers: Iterable[str]) -> bool:
    spellings = {normalise_name(s) for s in CAMPAIGN_HEADERS["distribution_point"]}
    return any(normalise_name(h) in spellings for h in headers)


def read_file(landed: LandedFile, con: duckdb.DuckDBPyConnection, current_year: int | None = None) -> FileResult:
    result = FileResult(SOURCE_FAMILY, landed.source_file, landed.file_hash, file_size_bytes=landed.size_bytes)
    name = landed.path.name.lower()
    try:
        if name.endswith((".geojson", ".json")):
            municipality_key = _require_municipality(landed.source_file)
            table, crs = _register_from_geojson(landed.path, con)
            result.rows_read = table.num_rows
            good, rejected = check_register(table, crs, municipality_key, landed.source_file, con, current_year)
            result.tables[REGISTER] = good
            result.municipality_key = municipality_key
        elif name.endswith((".csv", ".txt")):
            try:
                table, _ = read_delimited_as_strings(landed.path)
            except ValueError as exc:
                raise FileProblem(str(exc), "file_unreadable") from exc
            result.rows_read = table.num_rows
            if _is_campaign_header(table.column_names):
                mapping = map_headers(table.column_names, CAMPAIGN_HEADERS, CAMPAIGN_REQUIRED)
                good, rejected = check_campaign(
                    canonical_columns(table, mapping, CAMPAIGN_HEADERS), landed.source_file, con)
                result.tables[CAMPAIGN] = good
                dates = good.column("distribution_date").unique().to_pylist()
                result.period = dates[0].isoformat() if len(dates) == 1 else None
            else:
                municipality_key = _require_municipality(landed.source_file)
                canon, crs = _register_table(table)
                good, rejected = check_register(canon, crs, municipality_key, landed.source_file, con, current_year)
                result.tables[REGISTER] = good
                result.municipality_key = municipality_key
        else:
            raise FileProblem(
                f"Dateiformat '{landed.path.suffix}' wird nicht unterstützt; erwartet CSV oder GeoJSON.",
                "file_format_unsupported",
            )
    except HeaderError as exc:
        return result.fail(str(exc), rule="header_mismatch")
    except FileProblem as exc:
        return result.fail(str(exc), rule=exc.rule)
    result.rejections = rejections_from_arrow(rejected)
    return result


def _register_table(table: pa.Table) -> tuple[pa.Table, str]:
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


def _require_municipality(source_file: str) -> str:
    key = register_municipality(source_file)
    if key is None:
        raise FileProblem(
            "Kommune des Baumkatasters nicht erkennbar: Dateiname oder Ordner muss die Kommune nennen, "
            "z. B. baumkataster_dortmund.csv.",
            "register_municipality_unknown",
        )
    return key


def read_files(files: list[LandedFile], context, current_year: int | None = None) -> Iterable[FileResult]:
    con = new_connection()  # one in-memory DuckDB for the batch
    try:
        for landed in files:
            yield read_file(landed, con, current_year)
    finally:
        con.close()


# --- checks over the loaded warehouse (plain functions; dagster_zi/trees_surfaces.py wires them) --------


def campaign_total(con: duckdb.DuckDBPyConnection, distribution_date: dt.date) -> tuple[int, int]:
    """(trees, distribution points) loaded for the campaign of ``distribution_date``."""
    trees, points = con.execute(
        f"select coalesce(sum(trees), 0), count(distinct distribution_point) from raw.{CAMPAIGN} "
        "where distribution_date = ?",
        [distribution_date],
    ).fetchall()[0]
    return int(trees), int(points)


def register_rejection_shares(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, int, float]]:
    """Per register file (ledger rows of this family with a municipality): (file, read, rejected, share)."""
    rows = con.execute(
        "select source_file, rows_read, rows_rejected from raw.ingestion_files "
        "where source_family = ? and municipality_key is not null and rows_read > 0 order by source_file",
        [SOURCE_FAMILY],
    ).fetchall()
    return [(f, int(r), int(j), j / r) for f, r, j in rows]
