-- Grain: one row per municipality and scope ('all' = whole municipality, 'designated' = inside its
-- designated areas). The KPI denominators in the baseline: paved area connected to the combined sewer,
-- and the evaporation-weighted area Σ area·v over all surface elements (docs/domain.md#kpis).
with surfaces as (
    select
        s.municipality_key,
        s.is_in_designated_area,
        s.sewer_connection,
        s.area_m2,
        s.area_m2 * f.evaporation_share_v as evaporation_weighted_m2
    from {{ ref('int_surfaces__municipality_baseline') }} as s
    left join {{ ref('int_water_balance__factors') }} as f
        on f.municipality_key = s.municipality_key and f.element_type = s.surface_type
),

scoped as (
    select *, 'all' as scope from surfaces
    union all
    select *, 'designated' as scope from surfaces
    where is_in_designated_area
)

select
    m.municipality_key,
    sc.scope,
    coalesce({{ exact_sum('s.area_m2', 4, where="s.sewer_connection = 'combined'") }}, 0) as connected_area_m2,
    coalesce({{ exact_sum('s.area_m2', 4) }}, 0) as surface_area_m2,
    coalesce({{ exact_sum('s.evaporation_weighted_m2') }}, 0) as evaporation_weighted_m2
from {{ ref('municipalities') }} as m
cross join (values ('all'), ('designated')) as sc (scope)
left join scoped as s on s.municipality_key = m.municipality_key and s.scope = sc.scope
group by m.municipality_key, sc.scope
