"""Serving for BI over the network: the public marts published into PostgreSQL after the DuckDB publish.

The asset reads the *published* DuckDB file (``published/zi.duckdb``), never the working warehouse, so it
runs outside the ``zi_warehouse`` pool and never waits for or blocks the pipeline's writer. Without a
PostgreSQL configuration (``ZI_POSTGRES_DSN`` or PG* variables) it is a no-op that says so; an unreachable
server fails this asset only, after bounded retries, and leaves the DuckDB publish as it is.
"""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from zi_warehouse import config
from zi_warehouse.config import POSTGRES_DSN_ENV, postgres_dsn
from zi_warehouse.publish_postgres import describe_dsn, publish_to_postgres


@asset(
    name="published_postgres",
    group_name="publish",
    deps=[AssetKey(["published_warehouse"])],
    description=(
        "Alle Marts des aktuellen Release im PostgreSQL-Schema marts (nur geänderte kopiert, atomar und für "
        "Leser jeder Isolationsstufe sicher getauscht), "
        "lesbar für die Leserolle (Standard zi_reader). Ohne ZI_POSTGRES_DSN/PGHOST: nichts zu tun."
    ),
    kinds={"postgres"},
)
def published_postgres(context: AssetExecutionContext) -> MaterializeResult:
    dsn = postgres_dsn()
    if dsn is None:
        message = (
            f"Kein PostgreSQL konfiguriert ({POSTGRES_DSN_ENV} oder PGHOST/PGDATABASE nicht gesetzt): übersprungen."
        )
        context.log.info(message)
        return MaterializeResult(metadata={"status": "übersprungen", "reason": message})
    result = publish_to_postgres(config.paths().published_duckdb, dsn, progress=context.log.info)
    for finding in result.findings:
        context.log.warning(finding)
    return MaterializeResult(
        metadata={
            "status": "veröffentlicht",
            "server": describe_dsn(dsn),
            "schema": result.schema,
            "reader_role": result.reader_role,
            "marts": len(result.tables),
            "release": result.release_id or "",
            "marts_written": MetadataValue.md(", ".join(result.written) or "keine"),
            "marts_unchanged": len(result.unchanged),
            "seconds": round(result.seconds, 2),
            "swap_attempts": result.swap_attempts,
            "findings": MetadataValue.md("\n".join(f"- {f}" for f in result.findings) or "keine"),
            **{f"rows_{name}": rows for name, rows in result.tables.items()},
        }
    )


assets = [published_postgres]
asset_checks: list = []
sensors: list = []
schedules: list = []
jobs: list = []

__all__ = ["assets", "asset_checks", "sensors", "schedules", "jobs", "published_postgres"]
