-- Grain: one row per programme year. project_ideas: projects first reported in an accepted forecast
-- workbook that year; applications/requested_eur: applications filed that year; approvals/approved_eur:
-- initial grant notices issued that year with their current amount (after amendments); paid_eur:
-- payments (call-offs) made that year. Ratios: see dbt_project/macros/budget.sql.
with summed as (
    select
        year,
        sum(project_ideas)::bigint as project_ideas,
        sum(applications)::bigint as applications,
        sum(requested_eur)::decimal(14, 2) as requested_eur,
        sum(approvals)::bigint as approvals,
        sum(approved_eur)::decimal(14, 2) as approved_eur,
        sum(paid_eur)::decimal(14, 2) as paid_eur,
        {{ exact_sum('funding_rate_sum') }} as funding_rate_sum,
        sum(funding_rate_count) as funding_rate_count,
        {{ exact_sum('disconnected_area_approved_m2') }} as disconnected_area_approved_m2,
        sum(approved_eur_disconnecting) as approved_eur_disconnecting,
        sum(trees_approved) as trees_approved,
        sum(approved_eur_with_trees) as approved_eur_with_trees
    from {{ ref('int_budget__municipality_year') }}
    group by year
),

cumulative as (
    select
        s.*,
        b.envelope_eur::decimal(14, 2) as envelope_eur,
        sum(s.approved_eur) over (order by s.year)::decimal(14, 2) as approved_eur_cumulative,
        sum(s.paid_eur) over (order by s.year)::decimal(14, 2) as paid_eur_cumulative,
        sum(b.envelope_eur) over (order by s.year)::decimal(14, 2) as envelope_eur_cumulative
    from summed as s
    left join {{ ref('budget_plan') }} as b using (year)
)

select
    year::integer as year,
    envelope_eur,
    project_ideas,
    applications,
    requested_eur,
    approvals,
    approved_eur,
    paid_eur,
    approved_eur_cumulative,
    paid_eur_cumulative,
    envelope_eur_cumulative,
    round(100.0 * approved_eur / nullif(envelope_eur, 0), 2)::double as absorption_pct,
    {{ budget_ratio_columns() }},
    disconnected_area_approved_m2,
    trees_approved::bigint as trees_approved
from cumulative
order by year
