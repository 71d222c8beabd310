-- The programme-year budget equals the sum of its municipality rows for every additive figure.
-- An asset check on mart_budget_year in Dagster (dagster-dbt attaches a test that reads several models to
-- the model named here; the other models become the check's additional dependencies).
{{ config(meta={'dagster': {'ref': {'name': 'mart_budget_year'}}}) }}
with municipal as (
    select
        year, sum(project_ideas) as project_ideas, sum(applications) as applications,
        sum(requested_eur) as requested_eur, sum(approvals) as approvals,
        sum(approved_eur) as approved_eur, sum(paid_eur) as paid_eur
    from {{ ref('mart_budget_municipality_year') }}
    group by year
)

select y.year
from {{ ref('mart_budget_year') }} as y
full outer join municipal as m using (year)
where
    y.year is null or m.year is null
    or y.project_ideas <> m.project_ideas or y.applications <> m.applications
    or y.requested_eur <> m.requested_eur or y.approvals <> m.approvals
    or y.approved_eur <> m.approved_eur or y.paid_eur <> m.paid_eur
