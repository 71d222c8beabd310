"""Names shared by the Dagster modules."""

#: Every asset and check that opens the working DuckDB file runs in this pool. Pools count whole runs
#: (``granularity: run`` in dagster.yaml, limit 1): the daemon starts no second run that touches the warehouse
#: while one is in progress (DuckDB allows one writing process per file; see docs/runbook.md).
WAREHOUSE_POOL = "zi_warehouse"

#: The job that builds everything from landing files to the published warehouse.
BUILD_JOB = "build_warehouse"

#: The feedback workbooks of the forecast deliveries: what a coordinator waits for after dropping a workbook.
FEEDBACK_ASSET = "forecast_feedback_workbooks"

#: The job writing the feedback of workbooks dropped while a build holds the warehouse (outside the warehouse).
FEEDBACK_DURING_BUILD_JOB = "forecast_feedback_during_build"

#: Run tags this project sets: who started the run (German, shown to whoever waits for it or gets its alert),
#: and the source families a partial build covers (comma-separated; absent on a full build).
LAUNCHED_BY_TAG = "zi/launched_by"
FAMILIES_TAG = "zi/families"
#: "true" on a whole build: start the working warehouse over first, keeping its histories (zi_warehouse/rebuild.py);
#: ``zi build --rebuild`` sets it, the data team sets it in the UI's launchpad (runbook, "Start over").
REBUILD_TAG = "zi/rebuild"

#: The process and host executing a run (set by the executor of every run): run monitoring asks whether that
#: process is alive, so a run whose process was killed is marked failed and frees the queue.
RUN_PID_TAG = "zi/pid"
RUN_HOST_TAG = "zi/host"
