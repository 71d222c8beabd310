"""One ingest multi-asset per source family, the ingestion ledger and its row-accounting check.

Each raw table is its own asset key ``["raw_<family>", "<family>__<entity>"]`` — the same key dagster-dbt
gives the dbt source ``raw_<family>.<table>`` — so lineage runs from landing files to marts. The op of a
family is named ``raw_<family>``; select a family with ``AssetSelection.groups("<family>")`` or
``raw_asset_keys("<family>")``. The assets only wire: reading and validation live in
``zi_warehouse/sources/<family>.py``, loading in ``zi_warehouse/ingest.py``.
"""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    asset_check,
    multi_asset,
)

from dagster_zi.constants import WAREHOUSE_POOL
from zi_warehouse import config, warehouse
from zi_warehouse.ingest import ingest
from zi_warehouse.sources import source_module, source_modules

LEDGER_KEY = AssetKey(["raw_ingestion", "ingestion_files"])
REJECTED_ROWS_KEY = AssetKey(["raw_ingestion", "rejected_rows"])


def raw_asset_keys(family: str) -> list[AssetKey]:
    """The asset keys of a family's raw tables, e.g. ``raw_asset_keys("forecasts")``."""
    return [AssetKey([f"raw_{family}", entity]) for entity in source_module(family).RAW_TABLES]


def build_ingest_asset(module):
    family = module.SOURCE_FAMILY
    summary_line = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""
    specs = [
        AssetSpec(
            key=key,
            group_name=family,
            description=f"raw.{key.path[-1]}: {summary_line}",
            kinds={"python", "duckdb"},
        )
        for key in raw_asset_keys(family)
    ]

    @multi_asset(name=f"raw_{family}", specs=specs, pool=WAREHOUSE_POOL)
    def _ingest(context: AssetExecutionContext):
        paths = config.paths().ensure()
        with warehouse.connect(paths.warehouse) as con:
            summary = ingest(con, module, paths.landing, log=context.log.info)
        for name in summary.files_failed:
            context.log.warning(f"Datei abgewiesen: {name}")
        for name in summary.files_blocked:
            context.log.warning(f"Datei zurückgehalten: {name}")
        for spec in specs:
            yield MaterializeResult(asset_key=spec.key, metadata=summary.as_metadata())

    return _ingest


ingest_assets = [build_ingest_asset(module) for module in source_modules()]


@multi_asset(
    name="ingestion_ledger",
    specs=[
        AssetSpec(
            LEDGER_KEY,
            group_name="ingestion",
            kinds={"duckdb"},
            description="raw.ingestion_files: eine Zeile je angelieferter Datei mit Zeilenbilanz.",
            deps=[k for family in config.SOURCE_FAMILIES for k in raw_asset_keys(family)],
        ),
        AssetSpec(
            REJECTED_ROWS_KEY,
            group_name="ingestion",
            kinds={"duckdb"},
            description="raw.rejected_rows: jede abgewiesene Zeile mit Grund.",
            deps=[LEDGER_KEY],
        ),
    ],
    pool=WAREHOUSE_POOL,
)
def ingestion_ledger():
    """The ledger is written by every ingest asset; this asset reports its totals and carries its checks."""
    paths = config.paths()
    with warehouse.connect(paths.warehouse) as con:
        warehouse.ensure_tables(con, {})
        rows = con.execute(
            "select source_family, count(*), sum(rows_read), sum(rows_loaded), sum(rows_rejected) "
            "from raw.ingestion_files group by 1 order by 1"
        ).fetchall()
    metadata = {}
    for family, files, _read, loaded, rejected in rows:
        metadata[f"{family}_files"] = int(files)
        metadata[f"{family}_rows_loaded"] = int(loaded or 0)
        metadata[f"{family}_rows_rejected"] = int(rejected or 0)
    yield MaterializeResult(asset_key=LEDGER_KEY, metadata=metadata)
    yield MaterializeResult(asset_key=REJECTED_ROWS_KEY)


def row_accounting_violations(con) -> list[tuple]:
    """Files whose rows read differ from rows loaded plus rows rejected (failed/blocked files excepted)."""
    return con.execute(
        "select source_family, source_file, rows_read, rows_loaded, rows_rejected "
        "from raw.ingestion_files where outcome not in ('failed', 'blocked') "
        "and rows_read <> rows_loaded + rows_rejected order by 1, 2"
    ).fetchall()


@asset_check(
    asset=LEDGER_KEY,
    blocking=True,
    pool=WAREHOUSE_POOL,
    description="Zeilenbilanz: je Datei gelesen = geladen + abgewiesen (blockierend).",
)
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
