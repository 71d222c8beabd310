-- Grain: one row per accepted submission and project (submission_id, project_id): every accepted
-- forecast ever made, for forecast accuracy. Several accepted files for the same municipality and
-- quarter are corrections: the one with the highest revision (then the latest 'Stand' date, then the
-- file name) is current, the earlier ones stay as history with is_current_submission = false.
with submissions as (
    select
        *,
        row_number() over (
            partition by municipality_key, reporting_period
            order by revision desc, submitted_on desc nulls last, _source_file desc
        ) as submission_rank
    from {{ ref('stg_forecasts__submissions') }}
)

select
    p.submission_id || '|' || p.project_id as submission_project_key,
    p.*,
    s.submitted_on,
    s.revision,
    s.submission_rank,
    s.submission_rank = 1 as is_current_submission
from {{ ref('stg_forecasts__projects') }} as p
inner join submissions as s using (submission_id)
