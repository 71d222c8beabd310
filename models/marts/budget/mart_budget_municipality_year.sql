-- Grain: one row per municipality and programme year. As mart_budget_year, without an envelope (the
-- budget plan is regional); share_of_region_approved_pct says what part of the year's approvals went here.
with cumulative as (
    select
        c.*,
        sum(c.approved_eur) over (partition by c.municipality_key order by c.year)::decimal(14, 2)
            as approved_eur_cumulative,
        sum(c.paid_eur) over (partition by c.municipality_key order by c.year)::decimal(14, 2) as paid_eur_cumulative,
        sum(c.approved_eur) over (partition by c.year) as region_approved_eur
    from {{ ref('int_budget__municipality_year') }} as c
)

select
    c.municipality_key,
    m.municipality_name,
    m.is_zi_member,
    c.year,
    c.project_ideas,
    c.applications,
    c.requested_eur,
    c.approvals,
    c.approved_eur,
    c.paid_eur,
    c.approved_eur_cumulative,
    c.paid_eur_cumulative,
    round(100.0 * c.approved_eur / nullif(c.region_approved_eur, 0), 2)::double as share_of_region_approved_pct,
    {{ budget_ratio_columns() }},
    c.disconnected_area_approved_m2,
    c.trees_approved
from cumulative as c
inner join {{ ref('municipalities') }} as m using (municipality_key)
order by c.municipality_key, c.year
