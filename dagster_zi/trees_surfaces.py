"""Dagster wiring of the trees and surfaces families: their asset checks and severities.

Belongs here: the checks on ``raw_trees`` and ``raw_surfaces`` (the generic ingest assets from
``dagster_zi.sources``) and on the water-balance factor table. Reading lives in
``zi_warehouse.sources.trees`` / ``.surfaces``, the check logic in plain functions there (no Dagster).

Checks and why each has its severity:
- ``trees_register_rejection_share`` (raw_trees, WARN): at most 2 % of a register's trees rejected by the
  plausibility checks. Rejected trees are listed for the municipality to correct; a register with
  implausible trees is still worth loading, so this never blocks publishing.
- ``trees_campaign_total`` (raw_trees, WARN): the 30.10.2021 campaign adds up to 10,000 trees (dbt var
  ``campaign_tree_target``) through 43 distribution points. WARN, not ERROR: 10,000 is the figure the
  programme reported, not an integrity rule of the data; a corrected distribution list may legitimately
  differ, and a missing or partly rejected list must not withhold the budget and KPI marts. The data
  team sees the warning and the rejected rows, and follows up with the RVR.
- ``surfaces_area_positive`` (raw_surfaces, ERROR, blocking): no loaded surface with a missing, zero or
  negative area. The reader rejects such rows, so a failure means a loader defect; published KPI
  baselines would be wrong, hence blocking.
- ``surfaces_codes_in_domain`` (raw_surfaces, ERROR, blocking): every loaded sewer connection is
  combined/separate/none and every surface type is a surface of seeds/surface_types.csv; otherwise the
  "paved area connected to the combined sewer" baseline and the evaporation rate would silently miss area.
- ``surfaces_rejection_share`` (raw_surfaces, WARN): at most 1 % of surface records rejected.
- ``water_balance_precipitation_in_range`` (int_water_balance__factors, WARN): every municipality's P and
  the configured ETp lie in the validity range of the regressions (P 500–1700, ETp 450–700 mm/a);
  outside it the factors are extrapolated, still usable but to be flagged.
"""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, asset_check

from dagster_zi.constants import WAREHOUSE_POOL
from dagster_zi.keys import dbt_model_key
from zi_warehouse import config, warehouse
from zi_warehouse.german import format_date, format_number
from zi_warehouse.sources import surfaces as surfaces_source
from zi_warehouse.sources import trees as trees_source
from zi_warehouse.trees.campaign import CAMPAIGN_DATE, CAMPAIGN_DISTRIBUTION_POINTS, CAMPAIGN_TREE_TARGET

RAW_TREES = AssetKey(["raw_trees", "trees__register_trees"])
RAW_SURFACES = AssetKey(["raw_surfaces", "surfaces__parcels"])

MAX_REGISTER_REJECTION_SHARE = 0.02
MAX_SURFACE_REJECTION_SHARE = 0.01


@asset_check(
    asset=RAW_TREES,
    pool=WAREHOUSE_POOL,
    description="Baumkataster: höchstens 2 % der Bäume je Datei wegen Plausibilität abgewiesen (Warnung).",
)
def trees_register_rejection_share() -> AssetCheckResult:
    with warehouse.connect(config.paths().warehouse) as con:
        shares = (
            trees_source.register_rejection_shares(con) if warehouse.table_exists(con, "raw", "ingestion_files") else []
        )
    too_high = [s for s in shares if s[3] > MAX_REGISTER_REJECTION_SHARE]
    read = sum(s[1] for s in shares)
    rejected = sum(s[2] for s in shares)
    return AssetCheckResult(
        passed=not too_high,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "register_files": len(shares),
            "trees_read": read,
            "trees_rejected": rejected,
            "rejected_share_pct": round(100 * rejected / read, 3) if read else 0.0,
            "files_above_limit": str([(f, round(100 * s, 2)) for f, _, _, s in too_high][:10]),
        },
    )


@asset_check(
    asset=RAW_TREES,
    pool=WAREHOUSE_POOL,
    description=f"Klimabäume-Aktion {format_date(CAMPAIGN_DATE)}: {format_number(CAMPAIGN_TREE_TARGET)} Bäume über "
    f"{CAMPAIGN_DISTRIBUTION_POINTS} Ausgabestellen (Warnung).",
)
def trees_campaign_total() -> AssetCheckResult:
    with warehouse.connect(config.paths().warehouse) as con:
        if warehouse.table_exists(con, "raw", trees_source.CAMPAIGN):
            trees, points = trees_source.campaign_total(con, CAMPAIGN_DATE)
        else:
            trees, points = 0, 0
    return AssetCheckResult(
        passed=trees == CAMPAIGN_TREE_TARGET,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "trees": trees,
            "expected_trees": CAMPAIGN_TREE_TARGET,
            "distribution_points": points,
            "expected_distribution_points": CAMPAIGN_DISTRIBUTION_POINTS,
        },
    )


@asset_check(
    asset=RAW_SURFACES,
    blocking=True,
    pool=WAREHOUSE_POOL,
    description="Versiegelte Flächen: keine fehlende, null oder negative Fläche geladen (blockierend).",
)
def surfaces_area_positive() -> AssetCheckResult:
    with warehouse.connect(config.paths().warehouse) as con:
        bad = (
            surfaces_source.non_positive_areas(con)
            if warehouse.table_exists(con, "raw", surfaces_source.PARCELS)
            else 0
        )
    return AssetCheckResult(
        passed=bad == 0, severity=AssetCheckSeverity.ERROR, metadata={"records_with_non_positive_area": bad}
    )


@asset_check(
    asset=RAW_SURFACES,
    blocking=True,
    pool=WAREHOUSE_POOL,
    description="Kanalanschluss und Flächenart aller geladenen Flächen im Wertebereich (blockierend).",
)
def surfaces_codes_in_domain() -> AssetCheckResult:
    with warehouse.connect(config.paths().warehouse) as con:
        bad = (
            surfaces_source.out_of_domain_codes(con)
            if warehouse.table_exists(con, "raw", surfaces_source.PARCELS)
            else []
        )
    return AssetCheckResult(
        passed=not bad,
        severity=AssetCheckSeverity.ERROR,
        metadata={"values_out_of_domain": len(bad), "examples": str(bad[:10])},
    )


@asset_check(
    asset=RAW_SURFACES,
    pool=WAREHOUSE_POOL,
    description="Versiegelte Flächen: höchstens 1 % der Sätze abgewiesen (Warnung).",
)
def surfaces_rejection_share() -> AssetCheckResult:
    with warehouse.connect(config.paths().warehouse) as con:
        read, rejected = (
            surfaces_source.rejection_share(con) if warehouse.table_exists(con, "raw", "ingestion_files") else (0, 0)
        )
    share = rejected / read if read else 0.0
    return AssetCheckResult(
        passed=share <= MAX_SURFACE_REJECTION_SHARE,
        severity=AssetCheckSeverity.WARN,
        metadata={"records_read": read, "records_rejected": rejected, "rejected_share_pct": round(100 * share, 3)},
    )


@asset_check(
    asset=dbt_model_key("int_water_balance__factors"),
    pool=WAREHOUSE_POOL,
    description="Niederschlag P und ETp im Gültigkeitsbereich der DWA-M-102-4-Regressionen (Warnung).",
)
def water_balance_precipitation_in_range() -> AssetCheckResult:
    with warehouse.connect(config.paths().warehouse) as con:
        rows = (
            con.execute(
                "select distinct municipality_key, precipitation_mm, etp_mm "
                "from intermediate.int_water_balance__factors where not is_in_valid_range order by 1"
            ).fetchall()
            if warehouse.table_exists(con, "intermediate", "int_water_balance__factors")
            else []
        )
    return AssetCheckResult(
        passed=not rows,
        severity=AssetCheckSeverity.WARN,
        metadata={"municipalities_out_of_range": len(rows), "examples": str(rows[:10])},
    )


assets: list = []
asset_checks = [
    trees_register_rejection_share,
    trees_campaign_total,
    surfaces_area_positive,
    surfaces_codes_in_domain,
    surfaces_rejection_share,
    water_balance_precipitation_in_range,
]
sensors: list = []
schedules: list = []
jobs: list = []
