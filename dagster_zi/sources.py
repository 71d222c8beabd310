"""One ingest asset per source family (``raw_<family>``), the ingestion ledger and its row-accounting check.

The assets only wire: reading and validation live in ``zi_warehouse/sources/<family>.py``, loading in
``zi_warehouse/ingest.py``.
"""

from __future__ import annotations

import importlib

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    asset,
    asset_check,
)

from dagster_zi.constants import WAREHOUSE_POOL
from zi_warehouse import config, warehouse
from zi_warehouse.ingest import ingest
from zi_warehouse.sources import SOURCE_MODULES


def build_ingest_asset(module_name: str):
    module = importlib.import_module(module_name)
    family = module.SOURCE_FAMILY

    @asset(
        name=f"raw_{family}",
        group_name=family,
        pool=WAREHOUSE_POOL,
        description=(module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else None,
        kinds={"python", "duckdb"},
    )
    def _ingest(context: AssetExecutionContext) -> MaterializeResult:
        paths = config.paths().ensure()
        with warehouse.connect(paths.warehouse) as con:
            summary = ingest(con, module, paths.landing, log=context.log.info)
        for name in summary.files_failed:
            context.log.warning(f"Datei abgewiesen: {name}")
        for name in summary.files_blocked:
            context.log.warning(f"Datei zurückgehalten: {name}")
        return MaterializeResult(metadata=summary.as_metadata())

    return _ingest


ingest_assets = [build_ingest_asset(name) for name in SOURCE_MODULES]


@asset(
    name="ingestion_ledger",
    group_name="ingestion",
    deps=[AssetKey(f"raw_{importlib.import_module(m).SOURCE_FAMILY}") for m in SOURCE_MODULES],
    pool=WAREHOUSE_POOL,
    description="raw.ingestion_files and raw.rejected_rows: one ledger row per landed file, every rejection.",
    kinds={"duckdb"},
)
def ingestion_ledger() -> MaterializeResult:
    paths = config.paths()
    with warehouse.connect(paths.warehouse) as con:
        warehouse.ensure_tables(con, {})
        rows = con.execute(
            "select source_family, count(*), sum(rows_read), sum(rows_loaded), sum(rows_rejected) "
            "from raw.ingestion_files group by 1 order by 1"
        ).fetchall()
    metadata = {}
    for family, files, read, loaded, rejected in rows:
        metadata[f"{family}_files"] = int(files)
        metadata[f"{family}_rows_loaded"] = int(loaded or 0)
        metadata[f"{family}_rows_rejected"] = int(rejected or 0)
    return MaterializeResult(metadata=metadata)


def row_accounting_violations(con) -> list[tuple]:
    """Files whose rows read differ from rows loaded plus rows rejected (failed/blocked files excepted)."""
    return con.execute(
        "select source_family, source_file, rows_read, rows_loaded, rows_rejected "
        "from raw.ingestion_files where outcome not in ('failed', 'blocked') "
        "and rows_read <> rows_loaded + rows_rejected order by 1, 2"
    ).fetchall()


@asset_check(asset=ingestion_ledger, blocking=True, pool=WAREHOUSE_POOL,
             description="Zeilenbilanz: je Datei gelesen = geladen + abgewiesen (blockierend).")
def row_accounting() -> AssetCheckResult:
    with warehouse.connect(config.paths().warehouse) as con:
        bad = row_accounting_violations(con)
    return AssetCheckResult(
        passed=not bad,
        severity=AssetCheckSeverity.ERROR,
        metadata={"files_violating": len(bad), "examples": str(bad[:5])},
    )


assets = [*ingest_assets, ingestion_ledger]
asset_checks = [row_accounting]
