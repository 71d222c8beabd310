"""GeoJSON tree registers read into the register's canonical string columns.

Belongs here: parsing a GeoJSON FeatureCollection of points (RFC 7946: WGS84; a legacy ``crs`` member
naming EPSG:25832 is honoured) into one string column per canonical register column, the point
coordinates as text, the geometry type and the feature number. Typing and the plausibility rules are
``register.py``'s.

Two paths give the same table: a columnar one (pyarrow's JSON reader, ~5x faster) for the documents it
can vouch for, and the exact one (Python's json module, or orjson where it provably agrees) for every
other document; the exact path is also the one that reports unreadable files. Registers reach about a
million trees for the region, so both avoid per-value Python work where they can.
"""

from __future__ import annotations

import gc
import json
import re
from itertools import repeat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from zi_warehouse.trees import FileProblem
from zi_warehouse.trees.coordinates import EPSG_UTM32, EPSG_WGS84
from zi_warehouse.trees.schemas import GEOMETRY_WKT, REGISTER_COLUMNS, RegisterSchema, match_schema

#: Canonical columns a GeoJSON register takes from the geometry, never from the properties.
_COORDINATES = ("x", "y", "lon", "lat", GEOMETRY_WKT)

try:  # a dependency of dagster-dbt; the json module gives the same result without it, only slower
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None


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


def read_register(path: Path) -> tuple[pa.Table, str, RegisterSchema]:
    """A GeoJSON FeatureCollection of points: properties as strings, feature number (1-based) as row number;
    the CRS of the points, and the register schema whose header map fits the property names.

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
        raise FileProblem(
            f"Koordinatensystem {sorted(crs_names)} wird nicht unterstützt; erwartet WGS84 oder EPSG:25832.",
            "crs_unsupported",
        )
    return EPSG_WGS84


def _register_columns_from_geojson(data: bytes) -> tuple[pa.Table, str, RegisterSchema]:
    """The exact path: the whole document as Python objects (``_parse_json``), every value through
    ``_json_text``. Used for every file the columnar path (``_register_columns_columnar``) declines."""
    row_numbers: list[int] = []
    features: list[dict] = []
    crs_names: set[str] = set()
    for doc in _load_feature_collections(data):
        crs = doc.get("crs")
        name = (
            crs.get("properties", {}).get("name")
            if isinstance(crs, dict) and isinstance(crs.get("properties"), dict)
            else None
        )
        if name is not None:
            crs_names.add(name if isinstance(name, str) else _json_text(name))
        items = doc.get("features")
        if items is None:
            continue
        if not isinstance(items, list):
            raise FileProblem("GeoJSON nicht lesbar: 'features' ist keine Liste.", "file_unreadable")
        # The feature's position in the file: with several collections (a top-level array) the count runs
        # on, so every row number is unique (numbering each collection from 1 lost rows: issue 15).
        row_numbers.extend(range(len(row_numbers) + 1, len(row_numbers) + len(items) + 1))
        features.extend([f if type(f) is dict else {} for f in items])  # JSON objects are plain dicts
    empty: dict = {}
    properties = [p if type(p) is dict else empty for p in [f.get("properties") for f in features]]
    keys = sorted(set().union(*properties)) if properties else []
    schema, mapping = match_schema(keys, geojson=True)
    crs = _register_crs(crs_names)
    columns: dict[str, pa.Array] = {"_row_number": pa.array(row_numbers, pa.int64())}
    for original, canon in mapping.items():
        if canon in _COORDINATES:
            continue  # coordinates come from the geometry
        columns[canon] = _text_column(list(map(dict.get, properties, repeat(original))))
    n = len(features)
    for canon in REGISTER_COLUMNS:
        if canon not in mapping.values() and canon not in _COORDINATES:
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
    return pa.table(columns), crs, schema


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


def _register_columns_columnar(data: bytes) -> tuple[pa.Table, str, RegisterSchema] | None:
    """``_register_columns_from_geojson(data)`` through pyarrow's JSON reader, or None where it cannot be
    sure to give the same table (then the caller takes the exact path, which also reports bad files)."""
    import pyarrow.json as pj

    if not data or data.startswith(_BOM) or b"\\u0000" in data:
        return None
    try:
        raw = pa.Array.from_buffers(
            pa.large_binary(), 1, [None, pa.array([0, len(data)], pa.int64()).buffers()[1], pa.py_buffer(data)]
        )  # no copy
        raw.cast(pa.string())  # invalid UTF-8: json refuses the file, the reader would not
        if pc.count_substring_regex(raw, _LEADING_ZERO)[0].as_py():
            return None
        quoted = pc.replace_substring_regex(raw, _NUMBER_LITERAL, r'\1\2"\3"')[0].as_buffer()
        doc = pj.read_json(
            pa.BufferReader(quoted), read_options=pj.ReadOptions(block_size=len(quoted) + 64, use_threads=False)
        )
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


def _columns_from_parsed(doc: pa.Table) -> tuple[pa.Table, str, RegisterSchema]:
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
    schema, mapping = match_schema(keys, geojson=True)
    crs = _register_crs(crs_names)
    if properties is not None:
        for i in range(properties.type.num_fields):
            if properties.type.field(i).type not in _TEXT_TYPES and properties.type.field(i).type != pa.bool_():
                raise _Decline("property type")
    columns: dict[str, pa.Array] = {"_row_number": pa.array(np.arange(1, n + 1, dtype=np.int64))}
    for original, canon in mapping.items():
        if canon in _COORDINATES:
            continue  # coordinates come from the geometry
        columns[canon] = _as_text(_field(properties, original), n)
        _require_canonical(columns[canon])
    for canon in REGISTER_COLUMNS:
        if canon not in mapping.values() and canon not in _COORDINATES:
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
    return pa.table(columns), crs, schema


def _pick(values: pa.Array, positions: np.ndarray, mask: np.ndarray) -> pa.Array:
    """``values[positions]`` where ``mask``, NULL elsewhere."""
    if not mask.any():
        return pa.nulls(len(mask), pa.string())
    taken = pc.take(values, pa.array(np.where(mask, positions, 0), pa.int64()))
    return pc.if_else(pa.array(mask), taken, pa.scalar(None, pa.string()))
