"""The RVR tree campaign's distribution lists: header and species maps (data) and the rules.

Belongs here: recognising a campaign list by its header, mapping the species as the distribution points
write them to the species groups (apple, pear, cherry, plum, or ``other`` for non-fruit "Klimabäume") and
``check_campaign``: distribution point, municipality, species group, trees handed over (including the
unclaimed ones, planted later at schools and playgrounds), date, and, where the list gives the
distribution point's position (``Breite``/``Länge``, WGS84), that it lies inside the municipality the row
names (``zi_warehouse/boundaries.py``, vectorised per municipality).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from zi_warehouse import boundaries, config
from zi_warehouse.columnar import code_map, read_spellings
from zi_warehouse.reference import match_municipality, normalise_name
from zi_warehouse.trees.coordinates import to_utm

_HERE = Path(__file__).parent
#: Header map (data): canonical column -> spellings, compared after normalise_name.
CAMPAIGN_HEADERS = read_spellings(_HERE / "campaign_headers.csv", "column", "header")
CAMPAIGN_REQUIRED = ("distribution_point", "municipality", "species", "trees", "distribution_date")

#: The Klimabäume campaign (docs/domain.md#tree-campaign): handed out on this day, this many trees (the dbt
#: var ``campaign_tree_target`` is the one home of the figure; the trees mart reports it), through this many
#: distribution points.
CAMPAIGN_DATE = dt.date(2021, 10, 30)
CAMPAIGN_TREE_TARGET: int = config.dbt_var("campaign_tree_target")
CAMPAIGN_DISTRIBUTION_POINTS = 43

SPECIES_GROUPS = ("apple", "pear", "cherry", "plum", "other")
#: Campaign species as written by the distribution points -> species group (data).
CAMPAIGN_SPECIES = read_spellings(_HERE / "campaign_species.csv", "species_group", "spelling")


def is_campaign_header(headers: Iterable[str]) -> bool:
    spellings = {normalise_name(s) for s in CAMPAIGN_HEADERS["distribution_point"]}
    return any(normalise_name(h) in spellings for h in headers)


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
             try_strptime(trim(distribution_date), '%Y-%m-%d'))::date as distribution_date,
    nullif(trim(latitude), '') as latitude_text,
    nullif(trim(longitude), '') as longitude_text,
    try_cast(replace(trim(latitude), ',', '.') as double) as latitude,
    try_cast(replace(trim(longitude), ',', '.') as double) as longitude
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
union all
select _row_number, 'coordinates', concat_ws(' / ', latitude_text, longitude_text),
       'distribution_point_coordinates_valid',
       'Lage der Ausgabestelle unvollständig oder keine Zahlen; bitte Breite und Länge in Grad (WGS84) '
       || 'angeben, z. B. 51,4818 und 7,2162, oder beide leer lassen.'
from campaign_typed where (latitude_text is not null or longitude_text is not null)
   and (latitude is null or longitude is null or not (latitude between -90 and 90)
        or not (longitude between -180 and 180) or isnan(latitude) or isnan(longitude))
union all
select _row_number, 'coordinates', concat_ws(' / ', latitude_text, longitude_text),
       'distribution_point_inside_municipality',
       'Ausgabestelle liegt ' || case when distance_outside_boundary_m >= 10000
           then cast(round(distance_outside_boundary_m / 1000) as bigint) || ' km'
           else cast(round(distance_outside_boundary_m) as bigint) || ' m' end
       || ' außerhalb der Grenze von ' || municipality_name
       || coalesce(' (in ' || located_in || ')', ' (außerhalb der Metropole Ruhr)')
       || '; Lage oder Kommune prüfen.'
from campaign_typed where distance_outside_boundary_m > {tolerance}
"""


def _locate_points(cur: duckdb.DuckDBPyConnection) -> None:
    """Add to ``campaign_typed`` how far each distribution point lies outside the municipality its row
    names (0 inside, NULL without a position) and where it lies instead: one vectorised test per
    municipality."""
    points = cur.sql(
        "select _row_number, municipality_key, longitude, latitude from campaign_typed "
        "where municipality_key is not null and longitude between -180 and 180 "
        "and latitude between -90 and 90"
    ).to_arrow_table()
    keys = np.array(points.column("municipality_key").to_pylist(), dtype=object)
    east, north = to_utm(points.column("longitude").to_numpy(), points.column("latitude").to_numpy())
    outside = np.full(points.num_rows, np.nan)
    located_in: list[str | None] = [None] * points.num_rows
    for key in sorted(set(keys)):
        rows = np.flatnonzero(keys == key)
        distance, found = boundaries.locate(key, east[rows], north[rows])
        outside[rows] = distance
        for i, name in zip(rows, found):
            located_in[i] = name
    cur.register(
        "campaign_located",
        pa.table(
            {
                "_row_number": points.column("_row_number"),
                "distance_outside_boundary_m": pa.array(outside, pa.float64(), mask=np.isnan(outside)),
                "located_in": pa.array(located_in, pa.string()),
            }
        ),
    )
    cur.execute(
        "create or replace temp table campaign_typed as select t.*, l.distance_outside_boundary_m, "
        "l.located_in from campaign_typed t left join campaign_located l using (_row_number)"
    )


def check_campaign(table: pa.Table, source_file: str, con: duckdb.DuckDBPyConnection) -> tuple[pa.Table, pa.Table]:
    cur = con.cursor()
    try:
        cur.register("src", table)
        municipality_values, species_values = cur.sql(
            "select list(distinct municipality), list(distinct species) from src"
        ).fetchall()[0]
        code_map(cur, "municipality_map", municipality_values or [], match_municipality)
        code_map(cur, "species_map", species_values or [], _species_lookup)
        cur.execute(_CAMPAIGN_SQL)
        _locate_points(cur)
        rejected = cur.sql(
            _CAMPAIGN_REJECT_SQL.format(tolerance=boundaries.BOUNDARY_TOLERANCE_M) + " order by 1, 2"
        ).to_arrow_table()
        cur.register("rejected", rejected)
        good = cur.sql(
            """
            select distribution_point, municipality_name, municipality_key, species_group, species_as_delivered,
                   trees, trees_unclaimed, distribution_date, longitude, latitude,
                   ?::varchar as _source_file, _row_number
            from campaign_typed where _row_number not in (select row_number from rejected)
            order by _row_number
            """,
            params=[source_file],
        ).to_arrow_table()
        cur.execute("drop table campaign_typed")
        return good, rejected
    finally:
        cur.close()
