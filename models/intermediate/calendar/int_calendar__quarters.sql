-- Grain: one row per quarter from the programme start to the latest reporting period of any forecast
-- (or the latest funding activity). period_index = year * 4 + quarter - 1, for quarter arithmetic.
with bounds as (
    select
        {{ period_index("'" ~ var('kpi_baseline_year') ~ "-Q1'") }} as first_index,
        greatest(
            coalesce(
                (select max({{ period_index('reporting_period') }}) from {{ ref('stg_forecasts__projects') }}),
                0
            ),
            coalesce(
                (
                    select max({{ period_index(period_of('application_date')) }})
                    from {{ ref('int_funding__applications') }}
                ),
                0
            )
        ) as last_index
)

select
    i.range::integer as period_index,
    {{ period_from_index('i.range') }} as period,
    (i.range // 4)::integer as year,
    (i.range % 4 + 1)::integer as quarter,
    {{ quarter_end_of_index('i.range') }} as quarter_end_date
from range((select first_index from bounds), (select last_index from bounds) + 1) as i
