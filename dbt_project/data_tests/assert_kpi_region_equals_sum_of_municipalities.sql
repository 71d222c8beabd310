-- Region rows equal the sum of their municipality rows for every additive KPI component
-- (areas and Σ area·v); rates are derived from these sums, so they follow.
-- An asset check on mart_kpi_region_year in Dagster (dagster-dbt attaches a test that reads several models to
-- the model named here; the other models become the check's additional dependencies).
{{ config(meta={'dagster': {'ref': {'name': 'mart_kpi_region_year'}}}) }}
with municipal as (
    select
        'rvr' as region_key, year,
        sum(baseline_connected_area_m2) as baseline_connected_area_m2,
        sum(disconnected_actual_m2) as disconnected_actual_m2,
        sum(disconnected_planned_m2) as disconnected_planned_m2,
        sum(disconnected_actual_designated_m2) as disconnected_actual_designated_m2,
        sum(surface_area_m2) as surface_area_m2,
        sum(evaporation_weighted_baseline_m2) as evaporation_weighted_baseline_m2,
        sum(evaporation_weighted_change_actual_m2) as evaporation_weighted_change_actual_m2
    from {{ ref('mart_kpi_municipality_year') }}
    group by year
    union all
    select
        'zi_members', year,
        sum(baseline_connected_area_m2), sum(disconnected_actual_m2), sum(disconnected_planned_m2),
        sum(disconnected_actual_designated_m2), sum(surface_area_m2), sum(evaporation_weighted_baseline_m2),
        sum(evaporation_weighted_change_actual_m2)
    from {{ ref('mart_kpi_municipality_year') }}
    where is_zi_member
    group by year
)

select r.region_key, r.year
from {{ ref('mart_kpi_region_year') }} as r
inner join municipal as m using (region_key, year)
where
    abs(r.baseline_connected_area_m2 - m.baseline_connected_area_m2) > 0.01
    or abs(r.disconnected_actual_m2 - m.disconnected_actual_m2) > 0.01
    or abs(r.disconnected_planned_m2 - m.disconnected_planned_m2) > 0.01
    or abs(r.disconnected_actual_designated_m2 - m.disconnected_actual_designated_m2) > 0.01
    or abs(r.surface_area_m2 - m.surface_area_m2) > 0.01
    or abs(r.evaporation_weighted_baseline_m2 - m.evaporation_weighted_baseline_m2) > 0.01
    or abs(r.evaporation_weighted_change_actual_m2 - m.evaporation_weighted_change_actual_m2) > 0.01
union all
-- every region-year has its municipal counterpart and vice versa
select r.region_key, r.year from {{ ref('mart_kpi_region_year') }} as r
left join municipal as m using (region_key, year)
where m.year is null
