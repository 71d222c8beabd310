"""Source family ``surfaces``: paved-surface records per parcel (the data behind the split wastewater fee).

Belongs here: the family's contract (``SOURCE_FAMILY``, ``RAW_TABLES``, ``read_files``), reading the
municipalities' parcel files (CSV through ``zi_warehouse/delimited.py``, a malformed row rejected as that
row, or Parquet; one row = one surface of one parcel: parcel id, area m², surface type, sewer connection,
municipality, designated area), and the checks over the loaded warehouse that
``dagster_zi/trees_surfaces.py`` wires. Header and code maps and the rules are
``zi_warehouse/surfaces/parcels.py``.

Scale: about 1.5 million rows for the whole region. Everything is columnar: files are read with
``pyarrow.csv`` / ``pyarrow.parquet`` into Arrow, typed and checked with one DuckDB query over the Arrow
table, and only the few bad rows become Python ``Rejection`` objects. No Python object per good row.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zi_warehouse.accounting import FileResult, Rejection
from zi_warehouse.columnar import HeaderError, canonical_columns, map_headers, read_concurrently, rejections_from_arrow
from zi_warehouse.delimited import read_delimited
from zi_warehouse.landing import LandedFile
from zi_warehouse.surfaces.parcels import HEADERS, REQUIRED, SEWER_CONNECTIONS, check_parcels
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


def _read_table(path: Path) -> tuple[pa.Table, list[Rejection]]:
    """The file's rows as a table (strings for CSV) with ``_row_number``, and its malformed rows (CSV)."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        table = pq.read_table(path)
        # A Parquet file has no header line: row 1 is the first record.
        return table.append_column("_row_number", pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64))), []
    if name.endswith((".csv", ".txt")):
        text = read_delimited(path)
        return text.table, text.malformed
    raise ValueError(f"Dateiformat '{path.suffix}' wird nicht unterstützt; erwartet CSV oder Parquet.")


def read_file(landed: LandedFile, con: duckdb.DuckDBPyConnection | None = None) -> FileResult:
    """One parcel file. A malformed CSV row (a stray byte, a quote left open, too few or too many fields)
    is rejected as that row and the rest loads; the file fails as a whole only when it cannot be read."""
    result = FileResult(SOURCE_FAMILY, landed.source_file, landed.file_hash, file_size_bytes=landed.size_bytes)
    try:
        table, malformed = _read_table(landed.path)
    except (ValueError, OSError, pa.ArrowException) as exc:  # UnreadableFile is a ValueError
        return result.fail(f"Datei nicht lesbar: {exc}")
    result.rows_read = table.num_rows + len({r.row_number for r in malformed})
    try:
        mapping = map_headers(table.column_names, HEADERS, REQUIRED)
    except HeaderError as exc:
        return result.fail(str(exc), rule="header_mismatch")
    canon = canonical_columns(table, mapping, HEADERS)
    good, rejected = check_parcels(canon, landed.source_file, con)
    result.tables[PARCELS] = good
    result.rejections = malformed + rejections_from_arrow(rejected)
    keys = good.column("municipality_key").unique().to_pylist()
    result.municipality_key = keys[0] if len(keys) == 1 else None
    return result


def read_files(files: list[LandedFile], context) -> Iterable[FileResult]:
    return read_concurrently(files, read_file)


# --- checks over the loaded warehouse (plain functions; dagster_zi/trees_surfaces.py wires them) --------


def non_positive_areas(con: duckdb.DuckDBPyConnection) -> int:
    """Loaded surface records whose area is missing, zero or negative (the reader should make this 0)."""
    return int(
        con.execute(
            f"select count(*) from raw.{PARCELS} where area_m2 is null or not (area_m2 > 0) or isnan(area_m2) or isinf(area_m2)"
        ).fetchall()[0][0]
    )


def out_of_domain_codes(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int]]:
    """(column, value, rows) of loaded sewer connections or surface types outside their domain."""
    surface_types = sorted({r["element_type"] for r in element_types() if r["element_kind"] == "surface"})
    return [
        tuple(r)
        for r in con.execute(
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
        ).fetchall()
    ]


def rejection_share(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(rows read, rows rejected) over all loaded surface files."""
    read, rejected = con.execute(
        "select coalesce(sum(rows_read), 0), coalesce(sum(rows_rejected), 0) from raw.ingestion_files "
        "where source_family = ?",
        [SOURCE_FAMILY],
    ).fetchall()[0]
    return int(read), int(rejected)
