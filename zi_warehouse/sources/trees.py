"""Source family ``trees``: the RVR tree campaign's distribution records and municipal tree registers.

Belongs here: the family's contract (``SOURCE_FAMILY``, ``RAW_TABLES``, ``read_files``), which kind of file
a delivery is, and the checks over the loaded warehouse that ``dagster_zi/trees_surfaces.py`` wires. The
readers and rules live in ``zi_warehouse/trees/`` (see its ``__init__``):
- **campaign distribution lists** (CSV with a header ``Ausgabestelle``): ``trees/campaign.py``;
- **municipal tree registers** (*Baumkataster*): CSV in the sender's own schema (``trees/schemas.py``,
  read by ``zi_warehouse/delimited.py``) or GeoJSON (``trees/geojson.py``), checked by
  ``trees/register.py``. One file per municipality; the municipality comes from the file name
  (``baumkataster_<kommune>[_...].csv|geojson``) or from the folder it lies in.

A malformed row of a CSV file (a stray byte, a quote left open, too few or too many fields) is rejected as
that row and the rest of the file is read; a file fails as a whole only when it cannot be read at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import duckdb
import pyarrow as pa

from zi_warehouse.accounting import FileResult
from zi_warehouse.columnar import HeaderError, canonical_columns, map_headers, read_concurrently, rejections_from_arrow
from zi_warehouse.delimited import UnreadableFile, read_delimited, read_header
from zi_warehouse.landing import LandedFile
from zi_warehouse.trees import FileProblem, geojson
from zi_warehouse.trees.campaign import CAMPAIGN_HEADERS, CAMPAIGN_REQUIRED, check_campaign, is_campaign_header
from zi_warehouse.trees.register import check_register, register_municipality
from zi_warehouse.trees.schemas import canonical_register, schema_of_file

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
            pa.field("longitude", pa.float64()),  # of the distribution point, WGS84, if the list gives it
            pa.field("latitude", pa.float64()),
        ]
    ),
    REGISTER: pa.schema(
        [
            pa.field("municipality_key", pa.string()),
            pa.field("tree_number", pa.string()),
            pa.field("tree_key", pa.string()),  # unique in the file: the number, with its street if numbered so
            pa.field("species_botanical", pa.string()),
            pa.field("species_german", pa.string()),
            pa.field("planting_year", pa.int32()),
            pa.field("trunk_circumference_cm", pa.float64()),
            pa.field("crown_diameter_m", pa.float64()),
            pa.field("height_m", pa.float64()),
            pa.field("district_name", pa.string()),
            pa.field("street", pa.string()),
            pa.field("status", pa.string()),
            pa.field("source_crs", pa.string()),  # as delivered, e.g. EPSG:25832, EPSG:4326, EPSG:31467
            pa.field("easting_m", pa.float64()),  # EPSG:25832
            pa.field("northing_m", pa.float64()),
            pa.field("longitude", pa.float64()),  # EPSG:4326
            pa.field("latitude", pa.float64()),
            pa.field("distance_outside_boundary_m", pa.float64()),  # 0 inside; up to the boundary tolerance
        ]
    ),
}


# --- dispatch -------------------------------------------------------------------------------------------


def read_file(landed: LandedFile, con: duckdb.DuckDBPyConnection, current_year: int | None = None) -> FileResult:
    result = FileResult(SOURCE_FAMILY, landed.source_file, landed.file_hash, file_size_bytes=landed.size_bytes)
    name = landed.path.name.lower()
    malformed = []
    try:
        if name.endswith((".geojson", ".json")):
            municipality_key = _require_municipality(landed.source_file)
            table, crs, schema = geojson.read_register(landed.path)
            result.rows_read = table.num_rows
            good, rejected = check_register(
                table, crs, municipality_key, landed.source_file, con, current_year, unique_within=schema.unique_within
            )
            result.tables[REGISTER] = good
            result.municipality_key = municipality_key
        elif name.endswith((".csv", ".txt")):
            headers, _ = read_header(landed.path)
            if is_campaign_header(headers):
                text = read_delimited(landed.path)
                mapping = map_headers(text.table.column_names, CAMPAIGN_HEADERS, CAMPAIGN_REQUIRED)
                good, rejected = check_campaign(
                    canonical_columns(text.table, mapping, CAMPAIGN_HEADERS), landed.source_file, con
                )
                result.tables[CAMPAIGN] = good
                dates = good.column("distribution_date").unique().to_pylist()
                result.period = dates[0].isoformat() if len(dates) == 1 else None
            else:
                municipality_key = _require_municipality(landed.source_file)
                schema, mapping = schema_of_file(landed.path)
                text = read_delimited(landed.path, schema.separator, schema.encoding)
                canon, crs = canonical_register(text.table, schema, mapping)
                good, rejected = check_register(
                    canon,
                    crs,
                    municipality_key,
                    landed.source_file,
                    con,
                    current_year,
                    schema.decimal_mark,
                    schema.unique_within,
                )
                result.tables[REGISTER] = good
                result.municipality_key = municipality_key
            result.rows_read = text.rows_read
            malformed = text.malformed
        else:
            raise FileProblem(
                f"Dateiformat '{landed.path.suffix}' wird nicht unterstützt; erwartet CSV oder GeoJSON.",
                "file_format_unsupported",
            )
    except HeaderError as exc:
        return result.fail(str(exc), rule="header_mismatch")
    except UnreadableFile as exc:
        return result.fail(str(exc), rule="file_unreadable")
    except FileProblem as exc:
        return result.fail(str(exc), rule=exc.rule)
    result.rejections = malformed + rejections_from_arrow(rejected)
    return result


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
    return read_concurrently(files, lambda landed, con: read_file(landed, con, current_year))


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
