"""Demo paved-surface files: one per municipality, as the fee departments export them.

Renders the KPI baseline's raw material: per parcel, its paved surfaces with area, surface type, sewer
connection and designated area. About 1.5 million rows for the region at scale 1, proportional to
``programme.scale`` (at least 20 rows per municipality). The *area* does not shrink with the scale: at small
scales each record stands for a block of parcels, so that every municipality keeps a realistic total of
about 50–70 m² paved area per inhabitant, of which roughly 60–80 % drains to the combined sewer
(the rest mostly to a separate sewer, a little to none). The KPI baseline therefore has the same order of
magnitude at every scale.

Generated with numpy and written by DuckDB's COPY from an Arrow table: no Python object per row.
Most municipalities send a German CSV (``;``, decimal comma, German codes); every tenth sends Parquet with
English column names. A few files contain deliberately broken rows (negative or missing area, unknown
codes, missing parcel id) so the rejection path is exercised.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from zi_warehouse.reference import municipalities
from zi_warehouse.water_balance import element_types

ROWS_AT_SCALE_1 = 1_500_000
MIN_ROWS_PER_MUNICIPALITY = 20
PAVED_M2_PER_INHABITANT = (50.0, 70.0)
COMBINED_SHARE = (0.60, 0.80)

# Surface mix of records (share of rows) and typical size of one surface record at scale 1 (median m²).
SURFACE_MIX = {
    "pitched_roof": (0.28, 110.0),
    "flat_roof": (0.12, 220.0),
    "gravel_roof": (0.03, 400.0),
    "metal_glass_roof": (0.01, 300.0),
    "green_roof_extensive": (0.01, 250.0),
    "asphalt": (0.30, 180.0),
    "tight_paving": (0.06, 90.0),
    "paving": (0.14, 70.0),
    "porous_paving": (0.05, 60.0),
}
SEWER_LABEL_DE = {"combined": "Mischwasser", "separate": "Trennsystem", "none": "kein Anschluss"}
AREA_SUFFIXES = ("Mitte", "Nord", "Süd", "West")


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def municipality_table(key: str, name: str, population: int, n_rows: int, seed: int) -> pa.Table:
    """One municipality's surface records (numeric codes), areas summing to its paved-area target."""
    rng = _rng(seed, key)
    types = list(SURFACE_MIX)
    weights = np.array([SURFACE_MIX[t][0] for t in types])
    medians = np.array([SURFACE_MIX[t][1] for t in types])
    type_idx = rng.choice(len(types), size=n_rows, p=weights / weights.sum())
    area = medians[type_idx] * rng.lognormal(0.0, 0.6, n_rows)
    paved_total = population * rng.uniform(*PAVED_M2_PER_INHABITANT)
    area = np.round(area * paved_total / area.sum(), 2)
    area = np.maximum(area, 0.5)
    # Sewer: the combined share applies to *area*. Records in random order fill it by cumulative area, so
    # the share holds (to one record) even at tiny scales; the rest is 90 % separate, 10 % none.
    combined_share = rng.uniform(*COMBINED_SHARE)
    order = rng.permutation(n_rows)
    cumulative = (np.cumsum(area[order]) - area[order] / 2) / area.sum()  # each record's midpoint
    sewer = np.empty(n_rows, dtype=np.int64)
    sewer[order] = np.where(
        cumulative <= combined_share, 0, np.where(cumulative <= combined_share + (1 - combined_share) * 0.9, 1, 2)
    )
    # Parcels hold 1–3 surface records; designated areas cover about a quarter of the parcels.
    new_parcel = rng.random(n_rows) < 0.55
    new_parcel[0] = True
    parcel_no = np.cumsum(new_parcel) - 1
    n_parcels = int(parcel_no[-1]) + 1
    n_areas = int(rng.integers(1, 5))
    parcel_area = np.where(rng.random(n_parcels) < 0.25, rng.integers(0, n_areas, n_parcels), -1)
    designated = parcel_area[parcel_no]
    gemarkung = int(rng.integers(1000, 9999))
    return pa.table(
        {
            "seq": pa.array(np.arange(n_rows), pa.int64()),
            "parcel_no": pa.array(parcel_no, pa.int64()),
            "gemarkung": pa.array(np.full(n_rows, gemarkung), pa.int64()),
            "type_idx": pa.array(type_idx, pa.int64()),
            "area_m2": pa.array(area, pa.float64()),
            "sewer_idx": pa.array(sewer, pa.int64()),
            "designated_idx": pa.array(designated, pa.int64()),
        }
    )


def rows_per_municipality(scale: float) -> dict[str, int]:
    munis = municipalities()
    total_pop = sum(m.population_2020 for m in munis)
    return {
        m.key: max(MIN_ROWS_PER_MUNICIPALITY, round(ROWS_AT_SCALE_1 * scale * m.population_2020 / total_pop))
        for m in munis
    }


def _lookup_tables(con: duckdb.DuckDBPyConnection, name: str) -> None:
    labels = {r["element_type"]: r["element_label_de"] for r in element_types()}
    types = list(SURFACE_MIX)
    con.register(
        "type_codes",
        pa.table(
            {
                "type_idx": list(range(len(types))),
                "surface_type": types,
                "surface_label_de": [labels[t] for t in types],
            }
        ),
    )
    sewers = list(SEWER_LABEL_DE)
    con.register(
        "sewer_codes",
        pa.table(
            {
                "sewer_idx": list(range(len(sewers))),
                "sewer_connection": sewers,
                "sewer_label_de": [SEWER_LABEL_DE[s] for s in sewers],
            }
        ),
    )
    con.register(
        "area_codes",
        pa.table(
            {
                "designated_idx": list(range(len(AREA_SUFFIXES))),
                "designated_area": [f"Gestaltungsraum {name} {s}" for s in AREA_SUFFIXES],
            }
        ),
    )


def write(landing_dir: Path, programme, seed: int = 7) -> list[Path]:
    """Write one parcel file per municipality below ``landing/surfaces``; returns the paths written."""
    folder = Path(landing_dir) / "surfaces"
    folder.mkdir(parents=True, exist_ok=True)
    counts = rows_per_municipality(programme.scale)
    written = []
    for i, m in enumerate(sorted(municipalities(), key=lambda m: m.key)):
        parcels = municipality_table(m.key, m.name, m.population_2020, counts[m.key], seed)  # noqa: F841
        con = duckdb.connect()
        try:
            con.execute("set enable_progress_bar = false")
            con.execute("set preserve_insertion_order = true")
            _lookup_tables(con, m.name)
            as_parquet = i % 10 == 3
            if as_parquet:
                path = folder / f"versiegelte_flaechen_{m.key}_2020.parquet"
                con.execute(
                    f"""
                    copy (
                        select printf('%d-%03d-%05d', t.gemarkung, t.parcel_no // 500 + 1, t.parcel_no % 500 + 1)
                                   as parcel_id,
                               case when t.parcel_no = 7 then -t.area_m2 else t.area_m2 end as area_m2,
                               c.surface_type, s.sewer_connection, ? as municipality,
                               a.designated_area
                        from parcels t
                        join type_codes c using (type_idx)
                        join sewer_codes s using (sewer_idx)
                        left join area_codes a using (designated_idx)
                        order by t.seq
                    ) to '{_sql_path(path)}' (format parquet)
                    """,
                    [m.name],
                )
            else:
                path = folder / f"versiegelte_flaechen_{m.key}_2020.csv"
                bad = i % 9 == 1  # a few municipalities send a handful of broken rows (seq 1, 11, 21, ...)
                con.execute(
                    f"""
                    copy (
                        select case when {bad} and t.seq = 41 then ''
                                    else printf('%d-%03d-%05d', t.gemarkung, t.parcel_no // 500 + 1,
                                                t.parcel_no % 500 + 1) end as "Flurstück",
                               case when {bad} and t.seq = 1 then '-35,5'
                                    when {bad} and t.seq = 11 then 'k.A.'
                                    else replace(printf('%.2f', t.area_m2), '.', ',') end as "Fläche m2",
                               case when {bad} and t.seq = 31 then 'Sonstiges'
                                    else c.surface_label_de end as "Flächenart",
                               case when {bad} and t.seq = 21 then 'unbekannt'
                                    else s.sewer_label_de end as "Kanalanschluss",
                               ? as "Kommune",
                               coalesce(a.designated_area, '') as "Gestaltungsraum"
                        from parcels t
                        join type_codes c using (type_idx)
                        join sewer_codes s using (sewer_idx)
                        left join area_codes a using (designated_idx)
                        order by t.seq
                    ) to '{_sql_path(path)}' (header, delimiter ';')
                    """,
                    [m.name],
                )
        finally:
            con.close()
        written.append(path)
    return written


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
