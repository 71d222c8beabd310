-- Grain: one row per quality run, source, municipality and check (result_id), history of all runs.
{{ config(tags=["zi_quality"]) }}
with results as (
    select * from {{ ref('stg_quality__data_quality_results') }}
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
