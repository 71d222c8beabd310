-- Grain: one row per run_id, source, municipality_key and check_name (the history as appended).
-- The pre-hook creates the raw table when no check has run yet (a plain `dbt build` on a fresh
-- warehouse); its columns must equal zi_warehouse.quality.results.RESULTS_SCHEMA (a test compares them).
{{ config(
    tags=["zi_quality"],
    pre_hook="create schema if not exists raw; create table if not exists raw.data_quality_results (
        run_id varchar, run_started_at timestamp with time zone, check_kind varchar, source varchar,
        municipality_key varchar, check_name varchar, description_de varchar, severity varchar,
        rows_evaluated bigint, rows_failed bigint, outcome varchar, example_values varchar, message_de varchar)"
) }}
select
    run_id,
    run_started_at,
    check_kind,
    source,
    nullif(trim(municipality_key), '') as municipality_key,
    check_name,
    description_de,
    severity,
    rows_evaluated,
    rows_failed,
    outcome,
    example_values,
    message_de
from {{ source('raw_quality', 'data_quality_results') }}
