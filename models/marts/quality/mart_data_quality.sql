-- Grain: one row per quality run, source, municipality and check (result_id), history of all runs.
-- Incremental: each run adds its own records (and replaces them when a step of the same run is retried,
-- by result_id) instead of rebuilding the whole history; the post-hook moves is_latest_run to the newest run.
{{ config(
    tags=["zi_quality"],
    materialized="incremental",
    unique_key="result_id",
    incremental_strategy="delete+insert",
    on_schema_change="fail",
    post_hook="update {{ this }} set is_latest_run = run_id in (
        select run_id from {{ this }} order by run_started_at desc, run_id asc limit 1)"
) }}
with results as (
    select * from {{ ref('stg_quality__data_quality_results') }}
    {% if is_incremental() %}
        -- the newest run already in the mart comes again: its records replace themselves if it was retried
        where run_started_at >= (select coalesce(max(t.run_started_at), '1900-01-01') from {{ this }} as t)
    {% endif %}
),

latest as (
    select run_id from results
    order by run_started_at desc, run_id asc limit 1
)

select
    md5(r.run_id || '|' || r.source || '|' || coalesce(r.municipality_key, '') || '|' || r.check_name) as result_id,
    r.run_id,
    r.run_started_at,
    r.run_id in (select latest.run_id from latest) as is_latest_run,
    r.check_kind,
    r.source,
    r.municipality_key,
    m.municipality_name,
    r.check_name,
    r.description_de,
    r.severity,
    r.rows_evaluated,
    r.rows_failed,
    r.outcome,
    r.example_values,
    r.message_de
from results as r
left join {{ ref('dim_municipality') }} as m using (municipality_key)
