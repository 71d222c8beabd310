-- Grain: one row per municipality and programme year. Additive components of budget use; the marts
-- mart_budget_year and mart_budget_municipality_year derive their ratios from these sums.
with ideas as (
    select project_id, min(municipality_key) as municipality_key, min(reporting_year) as year
    from {{ ref('stg_forecasts__projects') }}
    group by project_id
),

ideas_by_year as (
    select municipality_key, year, count(*) as project_ideas from ideas
    group by all
),

applications as (
    select
        municipality_key, year(application_date) as year, count(*) as applications,
        sum(requested_eur) as requested_eur, {{ exact_sum('funding_rate') }} as funding_rate_sum,
        count(funding_rate) as funding_rate_count
    from {{ ref('int_funding__applications') }}
    where not is_deleted
    group by all
),

approvals as (
    select municipality_key, year(notice_date) as year, count(*) as approvals, sum(approved_eur) as approved_eur
    from {{ live('int_funding__approvals') }}
    group by all
),

measures as (
    select
        municipality_key, year(notice_date) as year,
        {{ exact_sum('disconnected_area_m2') }} as disconnected_area_approved_m2,
        sum(approved_eur) filter (where disconnected_area_m2 > 0) as approved_eur_disconnecting,
        sum(trees) as trees_approved,
        sum(approved_eur) filter (where trees > 0) as approved_eur_with_trees
    from {{ ref('int_measures__funded') }}
    group by all
),

payments as (
    select municipality_key, year(paid_on) as year, sum(amount_eur) as paid_eur
    from {{ live('int_funding__payments') }}
    group by all
),

years as (
    select year from {{ ref('budget_plan') }}
    union
    select year from ideas
    union
    select year from applications
    union
    select year from approvals
    union
    select year from payments
)

select
    m.municipality_key,
    y.year::integer as year,
    coalesce(i.project_ideas, 0)::bigint as project_ideas,
    coalesce(a.applications, 0)::bigint as applications,
    coalesce(a.requested_eur, 0)::decimal(14, 2) as requested_eur,
    coalesce(a.funding_rate_sum, 0)::double as funding_rate_sum,
    coalesce(a.funding_rate_count, 0)::bigint as funding_rate_count,
    coalesce(p.approvals, 0)::bigint as approvals,
    coalesce(p.approved_eur, 0)::decimal(14, 2) as approved_eur,
    coalesce(z.paid_eur, 0)::decimal(14, 2) as paid_eur,
    coalesce(ms.disconnected_area_approved_m2, 0)::double as disconnected_area_approved_m2,
    coalesce(ms.approved_eur_disconnecting, 0)::decimal(14, 2) as approved_eur_disconnecting,
    coalesce(ms.trees_approved, 0)::bigint as trees_approved,
    coalesce(ms.approved_eur_with_trees, 0)::decimal(14, 2) as approved_eur_with_trees
from {{ ref('municipalities') }} as m
cross join years as y
left join ideas_by_year as i on i.municipality_key = m.municipality_key and i.year = y.year
left join applications as a on a.municipality_key = m.municipality_key and a.year = y.year
left join approvals as p on p.municipality_key = m.municipality_key and p.year = y.year
left join payments as z on z.municipality_key = m.municipality_key and z.year = y.year
left join measures as ms on ms.municipality_key = m.municipality_key and ms.year = y.year
