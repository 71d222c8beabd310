"""Publishing asset: after the dbt build and its blocking checks succeed, publish a new release and make it current."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from dagster_zi.constants import WAREHOUSE_POOL
from dagster_zi.dbt import zi_dbt_assets
from dagster_zi.quality import zi_quality_dbt_assets
from zi_warehouse import config
from zi_warehouse.german import count_of, format_number
from zi_warehouse.publish import publish


@asset(
    name="published_warehouse",
    group_name="publish",
    # The quality mart carries the blocking checks: a failed one withholds publishing.
    deps=[zi_dbt_assets, zi_quality_dbt_assets],
    pool=WAREHOUSE_POOL,
    description=(
        "Ein Release je Lauf unter data/published/releases/<id> (zi.duckdb mit Schema marts, DuckDB-1.x-lesbar, "
        "parquet/<mart>.parquet, die Prüfhistorie je Monat in parquet/mart_data_quality/, manifest.json), atomar "
        "als current gesetzt; data/published/zi.duckdb und parquet/ zeigen darauf. Unveränderte Marts werden "
        "übernommen, von der Prüfhistorie nur die geänderten Läufe neu geschrieben."
    ),
    kinds={"duckdb", "parquet"},
)
def published_warehouse(context: AssetExecutionContext) -> MaterializeResult:
    paths = config.paths().ensure()
    result = publish(paths.warehouse, paths.published, run_id=context.run.run_id)
    context.log.info(
        f"Release {result.release_id} veröffentlicht: {len(result.written)} Marts geschrieben, "
        f"{len(result.reused)} unverändert übernommen ({format_number(result.seconds.get('total', 0), 1, 's')})"
    )
    for name, (written, linked) in result.history_files.items():
        runs = result.runs_replaced.get(name)
        context.log.info(
            f"{name}: "
            + (
                f"{format_number(runs)} von {count_of(result.history_runs[name], 'Lauf', 'Läufen')} neu geschrieben"
                if runs is not None
                else f"ganz geschrieben ({count_of(result.history_runs[name], 'Lauf', 'Läufe')})"
            )
            + f"; Parquet: {', '.join(written) or 'keine Datei'} geschrieben, "
            f"{count_of(linked, 'Monatsdatei', 'Monatsdateien')} übernommen"
        )
    if result.reporting_quarter:
        context.log.info(f"{result.restatements} Änderungen gegenüber dem Berichtsstand {result.reporting_quarter}")
    return MaterializeResult(
        metadata={
            "path": str(result.duckdb_path),
            "release": result.release_id,
            "release_path": MetadataValue.path(str(result.release_dir)),
            "previous_release": result.previous_release or "",
            "marts": len(result.tables),
            "marts_written": MetadataValue.md(", ".join(result.written) or "keine"),
            "marts_reused": len(result.reused),
            **{f"runs_replaced_{name}": runs for name, runs in result.runs_replaced.items()},
            **{f"parquet_files_written_{name}": len(files) for name, (files, _) in result.history_files.items()},
            "reporting_quarter": result.reporting_quarter or "",
            "restatements": result.restatements,
            "removed_releases": len(result.removed_releases),
            **{f"seconds_{phase}": seconds for phase, seconds in result.seconds.items()},
            **{f"rows_{name}": rows for name, rows in result.tables.items()},
        }
    )


assets = [published_warehouse]
