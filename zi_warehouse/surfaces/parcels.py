"""Paved-surface records per parcel: header and code maps (data) and the rules.

Belongs here: the header map of the parcel files, the surface-type and sewer-connection codes as the fee
data writes them (``*.csv``, compared after ``reference.normalise_name``), and ``check_parcels``: typing
and checking the canonical string columns. ``zi_warehouse/sources/surfaces.py`` is the family's contract.

Everything is columnar: codes are mapped per *distinct* value, then taken in Arrow; one DuckDB query over
the Arrow table types and flags the rows; only the few bad rows become Python ``Rejection`` objects.
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from zi_warehouse.columnar import constant_column, new_connection, read_spellings, sorted_by_row_number, text_columns
from zi_warehouse.reference import match_municipality, normalise_name
from zi_warehouse.water_balance import element_types

_HERE = Path(__file__).parent
#: Header map (data): canonical column -> header spellings (compared after normalise_name).
HEADERS = read_spellings(_HERE / "header_maps.csv", "column", "header")
REQUIRED = ("parcel_id", "area_m2", "surface_type", "sewer_connection", "municipality")

#: Sewer connection codes as the fee data writes them -> our domain (data).
SEWER_CODES = read_spellings(_HERE / "sewer_codes.csv", "sewer_connection", "spelling")
SEWER_CONNECTIONS = tuple(SEWER_CODES)


def _surface_index() -> dict[str, str]:
    index = {}
    for row in element_types():
        if row["element_kind"] != "surface":
            continue  # facilities (swales, ponds) are not parcel surfaces in the fee data
        index[normalise_name(row["element_type"])] = row["element_type"]
        index[normalise_name(row["element_label_de"])] = row["element_type"]
    # Common spellings in fee data (Gebührenveranlagung) that differ from our labels (data).
    with open(_HERE / "surface_type_spellings.csv", newline="", encoding="utf-8") as fh:
        index.update({normalise_name(r["spelling"]): r["element_type"] for r in csv.DictReader(fh)})
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

    The rules are written once, as SQL over a table ``typed`` (``_REJECT_SQL``). The rows are not copied
    as strings through DuckDB: DuckDB types the area and flags the rows that break a rule in one pass,
    codes are looked up per distinct value and taken in Arrow, only the flagged rows (a handful) go
    through the rule SQL, and the good rows are the delivered Arrow columns filtered. Rows are taken in
    file order (``sorted_by_row_number``). tests/test_surfaces_sources.py checks the result against a
    straightforward all-rows-through-SQL version.
    """
    table = sorted_by_row_number(table)
    own = con is None
    con = new_connection() if own else con.cursor()
    try:
        con.register("src", table)
        surfaces = _surface_index()
        lookups = (lambda v: surfaces.get(normalise_name(v)), _sewer_lookup, match_municipality)
        codes = {}
        for name, column, lookup in zip(
            ("surface_map", "sewer_map", "municipality_map"),
            ("surface_type", "sewer_connection", "municipality"),
            lookups,
        ):
            values = sorted(v for v in pc.unique(table.column(column)).to_pylist() if v is not None)
            mapped = [lookup(v) for v in values]
            con.register(
                name, pa.table({"value": pa.array(values, pa.string()), "code": pa.array(mapped, pa.string())})
            )
            codes[column] = _codes(table.column(column), values, mapped)
        numbers = con.sql(_PARCEL_NUMBERS_SQL).to_arrow_table()
        coded = pc.and_(
            pc.and_(pc.is_valid(codes["surface_type"]), pc.is_valid(codes["sewer_connection"])),
            pc.is_valid(codes["municipality"]),
        )
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
    good = pa.table(
        {
            "municipality_key": codes["municipality"],
            "parcel_id": texts["parcel_id"],
            "area_m2": numbers.column("area_m2"),
            "surface_type": codes["surface_type"],
            "sewer_connection": codes["sewer_connection"],
            "designated_area_name": texts["designated_area"],
            "is_in_designated_area": pc.is_valid(texts["designated_area"]),
            "_source_file": constant_column(source_file, n),
            "_row_number": table.column("_row_number"),
        }
    )
    return good.filter(pc.and_(numbers.column("loadable"), coded)), rejected
