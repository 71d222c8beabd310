-- Grain: one row per project_id: the latest accepted forecast of each project (the current submission
-- of the latest reporting quarter that lists it), with the first and latest quarter it was reported in.
with current_rows as (
    select * from {{ ref('int_forecasts__submission_history') }}
    where is_current_submission
),

spans as (
    select
        project_id,
        min(reporting_period) as first_reporting_period,
        min(reporting_year) as first_reporting_year,
        count(distinct reporting_period) as reporting_periods_count
    from {{ ref('int_forecasts__submission_history') }}
    group by project_id
),

latest as (
    select
        *,
        row_number() over (
            partition by project_id order by reporting_year desc, reporting_quarter desc, submission_id desc
        ) as recency
    from current_rows
)

select
    l.project_id,
    l.municipality_key,
    l.reporting_period as latest_reporting_period,
    s.first_reporting_period,
    s.first_reporting_year,
    s.reporting_periods_count,
    l.submission_id,
    l.template_version,
    l.title,
    l.measure_type_key,
    l.status_key,
    l.total_cost_eur,
    l.requested_funding_eur,
    l.funding_rate,
    l.planned_application_period,
    l.planned_start_date,
    l.planned_completion_date,
    l.expected_disconnected_area_m2,
    l.affected_surface_type,
    l.surface_change_m2,
    l.expected_trees,
    l.is_in_designated_area,
    l.designated_area_name,
    l._source_file,
    l._row_number
from latest as l
inner join spans as s using (project_id)
where l.recency = 1
