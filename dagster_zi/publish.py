"""Publishing asset: after the dbt build and its blocking checks succeed, swap in the read-only copy."""


from dagster import AssetExecutionContext, MaterializeResult, asset

from dagster_zi.constants import WAREHOUSE_POOL
from dagster_zi.dbt import zi_dbt_assets
from dagster_zi.quality import zi_quality_dbt_assets
from zi_warehouse import config
from zi_warehouse.publish import publish


@asset(
    name="published_warehouse",
    group_name="publish",
    # The quality mart carries the blocking checks: a failed one withholds publishing.
    deps=[zi_dbt_assets, zi_quality_dbt_assets],
    pool=WAREHOUSE_POOL,
    description="data/published/zi.duckdb (schema marts, DuckDB-1.x-lesbar) und parquet/<mart>.parquet, atomar ersetzt.",
    kinds={"duckdb", "parquet"},
)
def published_warehouse(context: AssetExecutionContext) -> MaterializeResult:
    paths = config.paths().ensure()
    result = publish(paths.warehouse, paths.published)
    context.log.info(f"Veröffentlicht: {result.duckdb_path} ({len(result.tables)} Marts)")
    return MaterializeResult(
        metadata={
            "path": str(result.duckdb_path),
            "marts": len(result.tables),
            **{f"rows_{name}": rows for name, rows in result.tables.items()},
        }
    )


assets = [published_warehouse]
