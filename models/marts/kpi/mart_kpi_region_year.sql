-- Grain: one row per region and year. Regions: 'rvr' (all 53 municipalities) and 'zi_members' (the
-- founding members of 2014). Components are sums of the municipality rows; rates are recomputed from
-- the sums (a rate of sums, not a mean of rates).
with components as (
    select k.*, m.is_zi_member
    from {{ ref('int_kpi__municipality_year') }} as k
    inner join {{ ref('municipalities') }} as m using (municipality_key)
),

regions as (
    select 'rvr' as region_key, 'Metropole Ruhr (alle 53 Kommunen)' as region_name, * from components
    union all
    select 'zi_members', 'Zukunftsinitiative (Gründungsmitglieder)', * from components
    where is_zi_member
),

summed as (
    select
        region_key,
        region_name,
        year,
        bool_or(is_actual_year) as is_actual_year,
        count(distinct municipality_key) as municipalities,
        {{ exact_sum('baseline_connected_area_m2') }} as baseline_connected_area_m2,
        {{ exact_sum('baseline_connected_area_designated_m2') }} as baseline_connected_area_designated_m2,
        {{ exact_sum('disconnected_actual_m2') }} as disconnected_actual_m2,
        {{ exact_sum('disconnected_planned_m2') }} as disconnected_planned_m2,
        {{ exact_sum('disconnected_actual_designated_m2') }} as disconnected_actual_designated_m2,
        {{ exact_sum('disconnected_planned_designated_m2') }} as disconnected_planned_designated_m2,
        {{ exact_sum('surface_area_m2') }} as surface_area_m2,
        {{ exact_sum('evaporation_weighted_baseline_m2') }} as evaporation_weighted_baseline_m2,
        {{ exact_sum('evaporation_weighted_change_actual_m2') }} as evaporation_weighted_change_actual_m2,
        {{ exact_sum('evaporation_weighted_change_planned_m2') }} as evaporation_weighted_change_planned_m2,
        {{ exact_sum('surface_area_designated_m2') }} as surface_area_designated_m2,
        {{ exact_sum('evaporation_weighted_baseline_designated_m2') }} as evaporation_weighted_baseline_designated_m2,
        {{ exact_sum('evaporation_weighted_change_actual_designated_m2') }}
            as evaporation_weighted_change_actual_designated_m2,
        {{ exact_sum('evaporation_weighted_change_planned_designated_m2') }}
            as evaporation_weighted_change_planned_designated_m2
    from regions
    group by region_key, region_name, year
)

select
    *,
    {{ kpi_rate_columns() }}
from summed
order by region_key, year
