"""Names shared by the Dagster modules."""

#: Every asset and check that opens the working DuckDB file runs in this pool, limited to one at a time
#: (DuckDB allows one writing process per file; see dagster.yaml and DESIGN.md).
WAREHOUSE_POOL = "zi_warehouse"
