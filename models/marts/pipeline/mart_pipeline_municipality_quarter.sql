-- Grain: one row per municipality and quarter. Projects by life-cycle status as of the quarter end:
-- the funding database's status where the project has an application valid then
-- (int_funding__application_status_history), otherwise the status the municipality reported in its
-- latest accepted forecast up to that quarter. Volumes: the approved EUR in force at the quarter end (the
-- initial notice or the latest amendment dated by then) once approved, else requested EUR (application, or
-- the forecast's requested funding). A status change counts for the quarter whose last day it happened on:
-- valid_from is a moment, the quarter end a day.
{% set statuses = [
    'idea', 'application_in_preparation', 'application_filed', 'approved', 'in_construction', 'completed',
    'withdrawn', 'rejected',
] %}
with quarters as (
    select * from {{ ref('int_calendar__quarters') }}
),

forecast_status as (
    select
        q.period_index,
        h.municipality_key,
        h.project_id,
        arg_max(h.status_key, {{ period_index('h.reporting_period') }}) as status_key,
        arg_max(h.requested_funding_eur, {{ period_index('h.reporting_period') }}) as requested_eur
    from {{ ref('int_forecasts__submission_history') }} as h
    inner join quarters as q on {{ period_index('h.reporting_period') }} <= q.period_index
    where h.is_current_submission
    group by all
),

approved_at_quarter_end as (
    select
        q.period_index,
        ap.application_id,
        coalesce(
            arg_max(am.approved_eur, am.amendment_no) filter (where am.notice_date <= q.quarter_end_date),
            any_value(ap.initial_approved_eur)
        ) as approved_eur
    from {{ live('int_funding__approvals') }} as ap
    inner join quarters as q on ap.notice_date <= q.quarter_end_date
    left join {{ live('int_funding__amendments') }} as am on am.approval_id = ap.approval_id
    group by q.period_index, ap.application_id
),

funding_status as (
    select
        q.period_index,
        a.municipality_key,
        a.project_id,
        s.status_key,
        coalesce(ap.approved_eur, a.requested_eur) as volume_eur
    from {{ ref('int_funding__application_status_history') }} as s
    inner join {{ ref('int_funding__applications') }} as a using (application_id)
    inner join quarters as q
        on
            s.valid_from < q.quarter_end_date + interval 1 day
            and (s.valid_to is null or s.valid_to >= q.quarter_end_date + interval 1 day)
    left join approved_at_quarter_end as ap
        on ap.application_id = a.application_id and ap.period_index = q.period_index
),

projects as (
    select
        coalesce(f.period_index, p.period_index) as period_index,
        coalesce(f.municipality_key, p.municipality_key) as municipality_key,
        coalesce(f.project_id, p.project_id) as project_id,
        coalesce(f.status_key, p.status_key) as status_key,
        coalesce(f.volume_eur, p.requested_eur) as volume_eur
    from funding_status as f
    full outer join forecast_status as p
        on p.period_index = f.period_index and p.project_id = f.project_id
),

decisions as (
    select
        {{ period_index(period_of('ap.notice_date')) }} as period_index,
        ap.municipality_key,
        median(ap.notice_date - a.application_date) as median_days_application_to_approval
    from {{ live('int_funding__approvals') }} as ap
    inner join {{ ref('int_funding__applications') }} as a using (application_id)
    group by all
)

select
    m.municipality_key,
    m.municipality_name,
    q.period,
    q.year,
    q.quarter,
    q.quarter_end_date,
    {% for s in statuses %}
        count(p.project_id) filter (where p.status_key = '{{ s }}')::bigint as {{ s }}_projects,
        coalesce(sum(p.volume_eur) filter (where p.status_key = '{{ s }}'), 0)::decimal(14, 2) as {{ s }}_eur,
    {% endfor %}
    count(p.project_id)::bigint as total_projects,
    any_value(d.median_days_application_to_approval)::double as median_days_application_to_approval
from {{ ref('municipalities') }} as m
cross join quarters as q
left join projects as p on p.municipality_key = m.municipality_key and p.period_index = q.period_index
left join decisions as d on d.municipality_key = m.municipality_key and d.period_index = q.period_index
group by m.municipality_key, m.municipality_name, q.period, q.year, q.quarter, q.quarter_end_date
order by m.municipality_key, q.period
