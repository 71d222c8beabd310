"""Source family ``surfaces``: paved-surface records per parcel (the data behind the split wastewater fee).

Belongs here: reading the municipalities' parcel files (CSV or Parquet; one row = one surface of one
parcel: parcel id, area m², surface type, sewer connection, municipality, designated area), mapping their
headers and codes, and validating them. Also the small Arrow helpers (delimited text read as strings,
header maps, rejections from an Arrow table) that ``trees.py`` shares.

Scale: about 1.5 million rows for the whole region. Everything is columnar: files are read with
``pyarrow.csv`` / ``pyarrow.parquet`` into Arrow, typed and checked with one DuckDB query over the Arrow
table, and only the few bad rows become Python ``Rejection`` objects. No Python object per good row.
Codes (surface types, sewer connections, municipality names) are mapped per *distinct* value, then joined.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from zi_warehouse.accounting import FileResult, Rejection
from zi_warehouse.landing import LandedFile
from zi_warehouse.reference import match_municipality, normalise_name
from zi_warehouse.water_balance import element_types

SOURCE_FAMILY = "surfaces"

PARCELS = "surfaces__parcels"
RAW_TABLES = {
    PARCELS: pa.schema(
        [
            pa.field("municipality_key", pa.string()),
            pa.field("parcel_id", pa.string()),
            pa.field("area_m2", pa.float64()),
            pa.field("surface_type", pa.string()),  # element_type of seeds/surface_types.csv
            pa.field("sewer_connection", pa.string()),  # combined | separate | none
            pa.field("designated_area_name", pa.string()),
            pa.field("is_in_designated_area", pa.bool_()),
        ]
    )
}

#: Header map (data, not code): canonical column -> header spellings (compared after normalise_name).
HEADERS = {
    "parcel_id": {"parcel id", "flurstueck", "flurstueck id", "flurstuecks id", "flurstuecksnummer",
                  "flurstueckskennzeichen", "flurstueck nr"},
    "area_m2": {"area m2", "flaeche m2", "flaeche", "versiegelte flaeche m2", "flaeche qm", "befestigte flaeche m2"},
    "surface_type": {"surface type", "flaechenart", "oberflaeche", "oberflaechenart", "befestigungsart"},
    "sewer_connection": {"sewer connection", "kanalanschluss", "entwaesserung", "anschluss", "anschlussart"},
    "municipality": {"municipality", "kommune", "gemeinde", "stadt"},
    "designated_area": {"designated area", "gestaltungsraum", "betrachtungsraum"},
}
REQUIRED = ("parcel_id", "area_m2", "surface_type", "sewer_connection", "municipality")

#: Sewer connection codes as the fee data writes them -> our domain.
SEWER_CODES = {
    "combined": {"combined", "mischwasser", "mischsystem", "mischkanal", "misch", "mw", "mischwasserkanal"},
    "separate": {"separate", "trennsystem", "trennkanal", "trenn", "regenwasser", "regenwasserkanal", "rw"},
    "none": {"none", "kein", "keiner", "keine", "kein anschluss", "ohne", "ohne anschluss", "versickerung"},
}
SEWER_CONNECTIONS = tuple(SEWER_CODES)


class HeaderError(ValueError):
    """Unknown, missing or duplicate headers; the message is German and names the difference."""


# --- shared Arrow helpers (also used by trees.py) -------------------------------------------------------


def sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (";", ",", "\t", "|")}
    return max(counts, key=counts.get) if max(counts.values()) else ","


def read_delimited_as_strings(path: Path) -> tuple[pa.Table, str]:
    """A delimited text file as an Arrow table of strings (header names kept) plus ``_row_number``.

    ``_row_number`` is the line a person sees in an editor (header = line 1). Encoding: UTF-8 (with or
    without BOM), falling back to Windows-1252, which German office software still writes.
    """
    with path.open("rb") as fh:
        header_bytes = fh.readline()
    last_error: Exception | None = None
    # Arrow decodes UTF-8 natively (and skips a BOM); any other encoding goes through a Python codec in
    # large blocks, which is fine for the rare Windows-1252 file.
    for encoding, arrow_encoding in (("utf-8-sig", "utf8"), ("cp1252", "cp1252")):
        try:
            first_line = header_bytes.decode(encoding).strip("\r\n")
            delimiter = sniff_delimiter(first_line)
            headers = next(iter(pacsv.read_csv(
                pa.py_buffer(first_line.encode("utf-8") + b"\n"),
                read_options=pacsv.ReadOptions(autogenerate_column_names=True),
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=pacsv.ConvertOptions(column_types={}, strings_can_be_null=False),
            ).to_batches())).to_pylist()[0].values()
            headers = [str(h).strip() for h in headers]
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(encoding=arrow_encoding, block_size=1 << 24),
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=pacsv.ConvertOptions(
                    column_types={h: pa.string() for h in headers}, strings_can_be_null=False
                ),
            )
            table = table.rename_columns([str(c).strip() for c in table.column_names])
            rows = pa.array(np.arange(2, table.num_rows + 2, dtype=np.int64))
            return table.append_column("_row_number", rows), delimiter
        except (UnicodeDecodeError, pa.ArrowInvalid) as exc:
            last_error = exc
            continue
    raise ValueError(f"Datei nicht als CSV lesbar: {last_error}")


def map_headers(
    headers: Iterable[str], aliases: dict[str, set[str]], required: Iterable[str]
) -> dict[str, str]:
    """{header as delivered: canonical name}; raises HeaderError on unknown, missing or duplicate headers.

    Unknown headers fail loudly: a column we do not map is data we would lose silently.
    """
    index = {normalise_name(a): canon for canon, spellings in aliases.items() for a in spellings | {canon}}
    mapping, unknown, seen = {}, [], {}
    for h in headers:
        if h == "_row_number":
            continue
        canon = index.get(normalise_name(h))
        if canon is None:
            unknown.append(h)
            continue
        if canon in seen:
            raise HeaderError(f"Spalte '{canon}' kommt doppelt vor ('{seen[canon]}' und '{h}').")
        seen[canon] = h
        mapping[h] = canon
    missing = [c for c in required if c not in seen]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append("unbekannte Spalten: " + ", ".join(f"'{u}'" for u in unknown))
        if missing:
            parts.append("fehlende Pflichtspalten: " + ", ".join(missing))
        raise HeaderError("Kopfzeile passt nicht zur Vorlage (" + "; ".join(parts) + ").")
    return mapping


def canonical_columns(table: pa.Table, mapping: dict[str, str], all_columns: Iterable[str]) -> pa.Table:
    """Rename delivered headers to canonical names; absent optional columns become NULL strings."""
    out = {"_row_number": table.column("_row_number")}
    for original, canon in mapping.items():
        col = table.column(original)
        out[canon] = col if col.type == pa.string() else col.cast(pa.string())
    for canon in all_columns:
        if canon not in out:
            out[canon] = pa.nulls(table.num_rows, pa.string())
    return pa.table(out)


def code_map(con: duckdb.DuckDBPyConnection, name: str, values: Iterable, lookup) -> None:
    """Register ``name`` (value, code) for the distinct delivered ``values`` mapped by ``lookup``."""
    distinct = sorted({v for v in values if v is not None})
    con.register(name, pa.table({"value": pa.array(distinct, pa.string()),
                                 "code": pa.array([lookup(v) for v in distinct], pa.string())}))


def constant_column(value: str | None, n: int) -> pa.Array:
    """A string column with the same value in every row (as DuckDB gave for ``?::varchar as name``)."""
    return pa.repeat(pa.scalar(value, pa.string()), n)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


#: A value that starts or ends with a space or a non-ASCII character: the only values DuckDB's ``trim``
#: may change (it removes Unicode space separators, U+0020 being the only ASCII one).
_MAY_NEED_TRIM = r"^[ \x{80}-\x{10FFFF}]|[ \x{80}-\x{10FFFF}]$"


def _may_need_trim(column: pa.ChunkedArray) -> bool:
    if pc.all(pc.string_is_ascii(column)).as_py() is not False:  # the usual case, and much cheaper than a regex
        return pc.any(pc.or_(pc.starts_with(column, " "), pc.ends_with(column, " "))).as_py() is True
    return pc.any(pc.match_substring_regex(column, _MAY_NEED_TRIM)).as_py() is True


def text_columns(con: duckdb.DuckDBPyConnection, table: pa.Table, names: Iterable[str]) -> dict[str, pa.Array]:
    """``nullif(trim(x), '')`` of string columns of ``table``, which is registered as ``src`` on ``con``.

    Exporting strings from DuckDB is the slow part of a check; most delivered values need no trimming.
    A column none of whose values starts or ends with a space or a non-ASCII character cannot change
    under ``trim``; for the others one aggregate asks DuckDB (whose ``trim`` is the rule). Unchanged
    columns are taken from the Arrow table as they are, with empty strings made NULL; only columns with
    values to trim are computed and exported by DuckDB.
    """
    names = list(names)
    suspect = [c for c in names if _may_need_trim(table.column(c))]
    unchanged = dict.fromkeys(names, True)
    if suspect:
        answers = con.sql(
            "select " + ", ".join(f"bool_and(trim({_ident(c)}) = {_ident(c)})" for c in suspect) + " from src"
        ).fetchall()[0]
        unchanged.update({c: same is not False for c, same in zip(suspect, answers)})  # NULL: all values NULL
    out: dict[str, pa.Array] = {}
    null = pa.scalar(None, pa.string())
    for name in names:
        if unchanged[name]:
            column = table.column(name)
            out[name] = pc.if_else(pc.equal(column, ""), null, column)
    trimmed = [c for c in names if not unchanged[c]]
    if trimmed:
        exported = con.sql(
            "select " + ", ".join(f"nullif(trim({_ident(c)}), '') as {_ident(c)}" for c in trimmed) + " from src"
        ).to_arrow_table()
        out.update({c: exported.column(c) for c in trimmed})
    return out


def rejections_from_arrow(table: pa.Table, sheet: str | None = None) -> list[Rejection]:
    """Rejection objects from an Arrow table (row_number, column_name, value_found, rule, message_de)."""
    return [
        Rejection(r["row_number"], r["column_name"], r["value_found"], r["rule"], r["message_de"], sheet)
        for r in table.to_pylist()
    ]


def new_connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")
    return con


# --- surfaces -------------------------------------------------------------------------------------------


def _surface_index() -> dict[str, str]:
    index = {}
    for row in element_types():
        if row["element_kind"] != "surface":
            continue  # facilities (swales, ponds) are not parcel surfaces in the fee data
        index[normalise_name(row["element_type"])] = row["element_type"]
        index[normalise_name(row["element_label_de"])] = row["element_type"]
    # Common spellings in fee data (Gebührenveranlagung) that differ from our labels.
    index.update({
        normalise_name(k): v
        for k, v in {
            "Dachfläche": "pitched_roof", "Schrägdach": "pitched_roof", "Steildach": "pitched_roof",
            "Flachdach": "flat_roof", "Gründach": "green_roof_extensive", "Beton": "asphalt",
            "Pflaster": "paving", "Verbundpflaster": "paving", "Ökopflaster": "porous_paving",
            "Rasengitter": "porous_paving", "Schotterrasen": "porous_paving", "Kies": "porous_paving",
        }.items()
    })
    return index


def _sewer_lookup(value: str) -> str | None:
    n = normalise_name(value)
    for code, spellings in SEWER_CODES.items():
        if n in {normalise_name(s) for s in spellings}:
            return code
    return None


_CHECK_SQL = """
with typed as (
    select
        _row_number,
        nullif(trim(parcel_id), '') as parcel_id,
        nullif(trim(area_m2), '') as area_text,
        try_cast(replace(trim(area_m2), ',', '.') as double) as area_m2,
        nullif(trim(surface_type), '') as surface_text,
        st.code as surface_type,
        nullif(trim(sewer_connection), '') as sewer_text,
        sw.code as sewer_connection,
        nullif(trim(municipality), '') as municipality_text,
        mu.code as municipality_key,
        nullif(trim(designated_area), '') as designated_area_name
    from src
    left join surface_map st on st.value = src.surface_type
    left join sewer_map sw on sw.value = src.sewer_connection
    left join municipality_map mu on mu.value = src.municipality
)
select * from typed
"""

_REJECT_SQL = """
select _row_number as row_number, 'parcel_id' as column_name, parcel_id as value_found,
       'parcel_id_missing' as rule,
       'Flurstückskennzeichen fehlt; bitte jede Fläche einem Flurstück zuordnen.' as message_de
from typed where parcel_id is null
union all
select _row_number, 'area_m2', area_text, 'area_m2_not_numeric',
       'Fläche (m²) ist leer oder keine Zahl; bitte als Zahl in m² angeben (z. B. 125,5).'
from typed where area_m2 is null
union all
select _row_number, 'area_m2', area_text, 'area_m2_positive',
       'Fläche (m²) muss größer als 0 sein; negative oder leere Flächen sind nicht möglich.'
from typed where area_m2 is not null and (area_m2 <= 0 or isnan(area_m2) or isinf(area_m2))
union all
select _row_number, 'surface_type', surface_text, 'surface_type_known',
       'Flächenart unbekannt; zulässig sind die Flächenarten der Referenzliste (z. B. Steildach, Flachdach, Asphalt, Pflaster).'
from typed where surface_type is null
union all
select _row_number, 'sewer_connection', sewer_text, 'sewer_connection_known',
       'Kanalanschluss unbekannt; zulässig sind Mischwasser, Trennsystem oder kein Anschluss.'
from typed where sewer_connection is null
union all
select _row_number, 'municipality', municipality_text, 'municipality_known',
       'Kommune nicht erkannt; bitte den amtlichen Namen einer RVR-Kommune angeben.'
from typed where municipality_key is null
"""


def _check_parcels_reference(
    table: pa.Table, source_file: str | None = None, con: duckdb.DuckDBPyConnection | None = None
) -> tuple[pa.Table, pa.Table]:
    """``check_parcels`` as it was first written (every row typed and copied as strings through a DuckDB
    temp table). Kept as the reference the fast path is tested against, and for a table whose row numbers
    do not increase."""
    own = con is None
    con = new_connection() if own else con.cursor()
    try:
        con.register("src", table)
        distinct = con.execute(
            "select list(distinct surface_type), list(distinct sewer_connection), list(distinct municipality) from src"
        ).fetchall()[0]
        surfaces = _surface_index()
        code_map(con, "surface_map", distinct[0] or [], lambda v: surfaces.get(normalise_name(v)))
        code_map(con, "sewer_map", distinct[1] or [], _sewer_lookup)
        code_map(con, "municipality_map", distinct[2] or [], match_municipality)
        con.execute("create temp table typed as " + _CHECK_SQL)
        rejected = con.sql(_REJECT_SQL + " order by 1, 2").to_arrow_table()
        good = con.sql(
            """
            select municipality_key, parcel_id, area_m2, surface_type, sewer_connection,
                   designated_area_name, designated_area_name is not null as is_in_designated_area,
                   ?::varchar as _source_file, _row_number
            from typed
            where parcel_id is not null and area_m2 > 0 and not isnan(area_m2) and not isinf(area_m2) and surface_type is not null
              and sewer_connection is not null and municipality_key is not null
            order by _row_number
            """,
            params=[source_file],
        ).to_arrow_table()
        con.execute("drop table typed")
        return good, rejected
    finally:
        con.close()


_PARCEL_NUMBERS_SQL = """
select area_m2,
       coalesce(parcel_id is not null and area_m2 > 0 and not isnan(area_m2) and not isinf(area_m2), false) as loadable,
       coalesce(parcel_id is null or area_m2 is null or (area_m2 <= 0 or isnan(area_m2) or isinf(area_m2)), false)
           as flagged
from (
    select nullif(trim(parcel_id), '') as parcel_id, try_cast(replace(trim(area_m2), ',', '.') as double) as area_m2
    from src
)
"""


def _codes(column: pa.ChunkedArray, values: list[str], codes: list[str | None]) -> pa.ChunkedArray:
    """The code of each delivered value (as the left join on ``code_map``'s table gives it; NULL if none)."""
    index = pc.index_in(column, value_set=pa.array(values, pa.string()))
    return pa.array(codes, pa.string()).take(index)


def check_parcels(
    table: pa.Table, source_file: str | None = None, con: duckdb.DuckDBPyConnection | None = None
) -> tuple[pa.Table, pa.Table]:
    """Type and check canonical string columns: (good rows in the raw schema, rejections).

    Same result as ``_check_parcels_reference`` (tests/test_surfaces_sources.py compares them), without
    copying the rows as strings through DuckDB: DuckDB types the area and flags the rows that break a rule
    in one pass, codes are looked up per distinct value and taken in Arrow, only the flagged rows (a
    handful) go through the reference rule SQL, and the good rows are the delivered Arrow columns filtered.
    """
    row_numbers = table.column("_row_number").to_numpy()
    if not bool(np.all(row_numbers[1:] > row_numbers[:-1])):
        return _check_parcels_reference(table, source_file, con)
    own = con is None
    con = new_connection() if own else con.cursor()
    try:
        con.register("src", table)
        surfaces = _surface_index()
        lookups = (lambda v: surfaces.get(normalise_name(v)), _sewer_lookup, match_municipality)
        codes = {}
        for name, column, lookup in zip(("surface_map", "sewer_map", "municipality_map"),
                                        ("surface_type", "sewer_connection", "municipality"), lookups):
            values = sorted(v for v in pc.unique(table.column(column)).to_pylist() if v is not None)
            mapped = [lookup(v) for v in values]
            con.register(name, pa.table({"value": pa.array(values, pa.string()), "code": pa.array(mapped, pa.string())}))
            codes[column] = _codes(table.column(column), values, mapped)
        numbers = con.sql(_PARCEL_NUMBERS_SQL).to_arrow_table()
        coded = pc.and_(pc.and_(pc.is_valid(codes["surface_type"]), pc.is_valid(codes["sewer_connection"])),
                        pc.is_valid(codes["municipality"]))
        flagged = pc.or_(numbers.column("flagged"), pc.invert(coded))
        con.register("src", table.filter(flagged))
        con.execute("create or replace temp table typed as " + _CHECK_SQL)
        rejected = con.sql(_REJECT_SQL + " order by 1, 2").to_arrow_table()
        con.execute("drop table typed")
        con.register("src", table)
        texts = text_columns(con, table, ("parcel_id", "designated_area"))
    finally:
        con.close()
    n = table.num_rows
    good = pa.table({
        "municipality_key": codes["municipality"],
        "parcel_id": texts["parcel_id"],
        "area_m2": numbers.column("area_m2"),
        "surface_type": codes["surface_type"],
        "sewer_connection": codes["sewer_connection"],
        "designated_area_name": texts["designated_area"],
        "is_in_designated_area": pc.is_valid(texts["designated_area"]),
        "_source_file": constant_column(source_file, n),
        "_row_number": table.column("_row_number"),
    })
    return good.filter(pc.and_(numbers.column("loadable"), coded)), rejected


def _read_table(path: Path) -> pa.Table:
    name = path.name.lower()
    if name.endswith(".parquet"):
        table = pq.read_table(path)
        # A Parquet file has no header line: row 1 is the first record.
        return table.append_column("_row_number", pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64)))
    if name.endswith((".csv", ".txt")):
        return read_delimited_as_strings(path)[0]
    raise ValueError(f"Dateiformat '{path.suffix}' wird nicht unterstützt; erwartet CSV oder Parquet.")


def read_file(landed: LandedFile, con: duckdb.DuckDBPyConnection | None = None) -> FileResult:
    result = FileResult(SOURCE_FAMILY, landed.source_file, landed.file_hash, file_size_bytes=landed.size_bytes)
    try:
        table = _read_table(landed.path)
    except (ValueError, OSError, pa.ArrowException) as exc:
        return result.fail(f"Datei nicht lesbar: {exc}")
    result.rows_read = table.num_rows
    try:
        mapping = map_headers(table.column_names, HEADERS, REQUIRED)
    except HeaderError as exc:
        return result.fail(str(exc), rule="header_mismatch")
    canon = canonical_columns(table, mapping, HEADERS)
    good, rejected = check_parcels(canon, landed.source_file, con)
    result.tables[PARCELS] = good
    result.rejections = rejections_from_arrow(rejected)
    keys = good.column("municipality_key").unique().to_pylist()
    result.municipality_key = keys[0] if len(keys) == 1 else None
    return result


def read_files(files: list[LandedFile], context) -> Iterable[FileResult]:
    con = new_connection()  # one in-memory DuckDB for the batch: connecting costs ~30 ms
    try:
        for landed in files:
            yield read_file(landed, con)
    finally:
        con.close()


# --- checks over the loaded warehouse (plain functions; dagster_zi/trees_surfaces.py wires them) --------


def non_positive_areas(con: duckdb.DuckDBPyConnection) -> int:
    """Loaded surface records whose area is missing, zero or negative (the reader should make this 0)."""
    return int(con.execute(
        f"select count(*) from raw.{PARCELS} where area_m2 is null or not (area_m2 > 0) or isnan(area_m2) or isinf(area_m2)"
    ).fetchall()[0][0])


def out_of_domain_codes(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int]]:
    """(column, value, rows) of loaded sewer connections or surface types outside their domain."""
    surface_types = sorted({r["element_type"] for r in element_types() if r["element_kind"] == "surface"})
    return [tuple(r) for r in con.execute(
        f"""
        select 'sewer_connection', coalesce(sewer_connection, 'NULL'), count(*) from raw.{PARCELS}
        where sewer_connection is null or sewer_connection not in (select unnest(?::varchar[]))
        group by 2
        union all
        select 'surface_type', coalesce(surface_type, 'NULL'), count(*) from raw.{PARCELS}
        where surface_type is null or surface_type not in (select unnest(?::varchar[]))
        group by 2
        order by 1, 2
        """,
        [list(SEWER_CONNECTIONS), surface_types],
    ).fetchall()]


def rejection_share(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(rows read, rows rejected) over all loaded surface files."""
    read, rejected = con.execute(
        "select coalesce(sum(rows_read), 0), coalesce(sum(rows_rejected), 0) from raw.ingestion_files "
        "where source_family = ?",
        [SOURCE_FAMILY],
    ).fetchall()[0]
    return int(read), int(rejected)
