-- Grain: one row per municipality and quarter (from the second programme quarter on). Forecast = what
-- the municipality's accepted workbook for the PREVIOUS quarter said about this quarter (one quarter
-- ahead); actual = the funding database. Metrics:
--   applications: projects with planned_application_period = this quarter / applications filed;
--   approvals:    projects with status application_filed in the previous workbook (assumption: a decision
--                 follows within one quarter) / initial grant notices issued;
--   payments_eur: forecast payments for this quarter / payments made;
--   completions:  projects with planned_completion_date in this quarter / proofs of use (completion).
-- The actual of a quarter is complete once the quarter has ended by the Stichtag of the newest funding data
-- (is_actual_complete); before that, bias and error would compare a forecast with a quarter still running.
-- bias_pct = 100·(forecast − actual)/actual, ape_pct = |bias_pct|; NULL where actual = 0 or incomplete.
{% set metrics = ['applications', 'approvals', 'payments_eur', 'completions'] %}
with quarters as (
    select *
    from {{ ref('int_calendar__quarters') }}
    where period_index > (select min(q.period_index) from {{ ref('int_calendar__quarters') }} as q)
),

submitted as (
    select distinct municipality_key, {{ period_index('reporting_period') }} as period_index
    from {{ ref('int_forecasts__submission_history') }}
),

first_submission as (
    select municipality_key, min(period_index) as first_index from submitted
    group by all
),

previous as (  -- the current accepted submission of the previous quarter
    select h.*, {{ period_index('h.reporting_period') }} + 1 as target_index
    from {{ ref('int_forecasts__submission_history') }} as h
    where h.is_current_submission
),

forecast as (
    select
        p.municipality_key,
        p.target_index as period_index,
        count(*) filter (
            where p.planned_application_period = {{ period_from_index('p.target_index') }}
        ) as forecast_applications,
        count(*) filter (where p.status_key = 'application_filed') as forecast_approvals,
        count(*) filter (
            where {{ period_index(period_of('p.planned_completion_date')) }} = p.target_index
        ) as forecast_completions
    from previous as p
    group by all
),

forecast_payments as (
    select
        p.municipality_key,
        p.target_index as period_index,
        {{ exact_sum('f.forecast_payment_eur', 2) }} as forecast_payments_eur
    from previous as p
    inner join {{ ref('stg_forecasts__payment_forecasts') }} as f
        on f.submission_id = p.submission_id and f.project_id = p.project_id
    where {{ period_index('f.payment_period') }} = p.target_index
    group by all
),

actual as (
    select
        municipality_key, period_index, sum(applications) as actual_applications, sum(approvals) as actual_approvals,
        {{ exact_sum('payments_eur', 2) }} as actual_payments_eur, sum(completions) as actual_completions
    from (
        select
            municipality_key, {{ period_index(period_of('application_date')) }} as period_index,
            1 as applications, 0 as approvals, 0 as payments_eur, 0 as completions
        from {{ ref('int_funding__applications') }}
        where not is_deleted
        union all
        select municipality_key, {{ period_index(period_of('notice_date')) }}, 0, 1, 0, 0
        from {{ live('int_funding__approvals') }}
        union all
        select municipality_key, {{ period_index(period_of('paid_on')) }}, 0, 0, amount_eur, 0
        from {{ live('int_funding__payments') }}
        union all
        select municipality_key, {{ period_index(period_of('completion_date')) }}, 0, 0, 0, 1
        from {{ live('int_funding__approvals') }}
        where completion_date is not null
    )
    group by all
),

funding_as_of as (  -- the Stichtag of the newest funding data, from files or the database
    select max(extract_as_of)::date as actual_as_of_date
    from (
        {% for entity in ['applications', 'approvals', 'amendments', 'payments', 'measures'] %}
            select extract_as_of from {{ ref('stg_funding__' ~ entity) }}
            {{ "union all" if not loop.last }}
        {% endfor %}
    )
),

joined as (
    select
        m.municipality_key,
        m.municipality_name,
        q.period,
        q.year,
        q.quarter,
        (s.municipality_key is not null) as has_submitted,
        (fs.first_index is not null and q.period_index >= fs.first_index) as is_reporting_municipality,
        coalesce(f.forecast_applications, 0)::double as forecast_applications,
        coalesce(a.actual_applications, 0)::double as actual_applications,
        coalesce(f.forecast_approvals, 0)::double as forecast_approvals,
        coalesce(a.actual_approvals, 0)::double as actual_approvals,
        coalesce(fp.forecast_payments_eur, 0)::double as forecast_payments_eur,
        coalesce(a.actual_payments_eur, 0)::double as actual_payments_eur,
        coalesce(f.forecast_completions, 0)::double as forecast_completions,
        coalesce(a.actual_completions, 0)::double as actual_completions,
        (f.municipality_key is not null) as has_forecast,
        fa.actual_as_of_date,
        coalesce(q.quarter_end_date <= fa.actual_as_of_date, false) as is_actual_complete
    from {{ ref('municipalities') }} as m
    cross join quarters as q
    cross join funding_as_of as fa
    left join submitted as s on s.municipality_key = m.municipality_key and s.period_index = q.period_index
    left join first_submission as fs on fs.municipality_key = m.municipality_key
    left join forecast as f on f.municipality_key = m.municipality_key and f.period_index = q.period_index
    left join forecast_payments as fp on fp.municipality_key = m.municipality_key and fp.period_index = q.period_index
    left join actual as a on a.municipality_key = m.municipality_key and a.period_index = q.period_index
)

select
    *,
{% for metric in metrics %}
    case
        when has_forecast and is_actual_complete
            then round(100.0 * (forecast_{{ metric }} - actual_{{ metric }}) / nullif(actual_{{ metric }}, 0), 2)
    end as {{ metric }}_bias_pct,
    case
        when has_forecast and is_actual_complete
            then round(abs(100.0 * (forecast_{{ metric }} - actual_{{ metric }}) / nullif(actual_{{ metric }}, 0)), 2)
    end as {{ metric }}_ape_pct{{ "," if not loop.last }}
{% endfor %}
from joined
order by municipality_key, period
