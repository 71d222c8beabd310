-- Grain: one row per programme year (the years of the budget plan, and any year with activity).
-- project_ideas: projects first reported in an accepted forecast workbook of that year;
-- applications/requested_eur: funding applications filed that year; approvals/approved_eur: initial
-- grant notices issued that year, with their current approved amount (after amendments).
with ideas as (
    select project_id, min(reporting_year) as first_year
    from {{ ref('stg_forecasts__projects') }}
    group by project_id
),
ideas_by_year as (
    select first_year as year, count(*) as project_ideas
    from ideas
    group by first_year
),
applications_by_year as (
    select
        year(application_date) as year,
        count(*) as applications,
        sum(requested_eur) as requested_eur
    from {{ ref('int_funding__applications') }}
    where not is_deleted
    group by 1
),
approvals_by_year as (
    select
        year(notice_date) as year,
        count(*) as approvals,
        sum(approved_eur) as approved_eur
    from {{ ref('int_funding__approvals') }}
    group by 1
),
years as (
    select year from {{ ref('budget_plan') }}
    union select year from ideas_by_year
    union select year from applications_by_year
    union select year from approvals_by_year
)
select
    y.year::integer as year,
    b.envelope_eur::decimal(14, 2) as envelope_eur,
    coalesce(i.project_ideas, 0)::bigint as project_ideas,
    coalesce(a.applications, 0)::bigint as applications,
    coalesce(a.requested_eur, 0)::decimal(14, 2) as requested_eur,
    coalesce(p.approvals, 0)::bigint as approvals,
    coalesce(p.approved_eur, 0)::decimal(14, 2) as approved_eur
from years as y
left join {{ ref('budget_plan') }} as b using (year)
left join ideas_by_year as i using (year)
left join applications_by_year as a using (year)
left join approvals_by_year as p using (year)
order by year
