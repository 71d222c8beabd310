-- Grain: one row per municipality and year (baseline year to the region's target year).
-- The additive KPI components: baseline denominators and cumulative measure effects up to the end of
-- each year. Actual = measures completed by then; planned = measures approved by then. Each component
-- also for the municipality's designated areas (Gestaltungsräume) taken together: surfaces with a
-- designated area, measures marked as inside one (docs/marts.md).
with years as (
    select range::integer as year
    from range({{ var('kpi_baseline_year') }}, {{ var('disconnection_target_year_region') }} + 1)
),

last_year as (
    select
        coalesce(max(greatest(year(notice_date), coalesce(year(completion_date), 0))), {{ var('kpi_baseline_year') }})
            as year
    from {{ ref('int_kpi__measure_effects') }}
),

baseline as (
    select
        municipality_key,
        max(connected_area_m2) filter (where scope = 'all') as baseline_connected_area_m2,
        max(connected_area_m2) filter (where scope = 'designated') as baseline_connected_area_designated_m2,
        max(surface_area_m2) filter (where scope = 'all') as surface_area_m2,
        max(evaporation_weighted_m2) filter (where scope = 'all') as evaporation_weighted_baseline_m2,
        max(surface_area_m2) filter (where scope = 'designated') as surface_area_designated_m2,
        max(evaporation_weighted_m2) filter (where scope = 'designated') as evaporation_weighted_baseline_designated_m2
    from {{ ref('int_kpi__municipality_baseline') }}
    group by municipality_key
),

effects as (
    select
        m.municipality_key,
        y.year,
        coalesce({{ exact_sum('e.disconnected_area_m2', where="year(e.completion_date) <= y.year") }}, 0)
            as disconnected_actual_m2,
        coalesce({{ exact_sum('e.disconnected_area_m2', where="year(e.notice_date) <= y.year") }}, 0)
            as disconnected_planned_m2,
        coalesce({{ exact_sum(
            'e.disconnected_area_m2', where="year(e.completion_date) <= y.year and e.is_in_designated_area"
        ) }}, 0) as disconnected_actual_designated_m2,
        coalesce({{ exact_sum(
            'e.disconnected_area_m2', where="year(e.notice_date) <= y.year and e.is_in_designated_area"
        ) }}, 0) as disconnected_planned_designated_m2,
        coalesce({{ exact_sum('e.evaporation_weighted_change_m2', where="year(e.completion_date) <= y.year") }}, 0)
            as evaporation_weighted_change_actual_m2,
        coalesce({{ exact_sum('e.evaporation_weighted_change_m2', where="year(e.notice_date) <= y.year") }}, 0)
            as evaporation_weighted_change_planned_m2,
        coalesce({{ exact_sum(
            'e.evaporation_weighted_change_m2', where="year(e.completion_date) <= y.year and e.is_in_designated_area"
        ) }}, 0) as evaporation_weighted_change_actual_designated_m2,
        coalesce({{ exact_sum(
            'e.evaporation_weighted_change_m2', where="year(e.notice_date) <= y.year and e.is_in_designated_area"
        ) }}, 0) as evaporation_weighted_change_planned_designated_m2
    from {{ ref('municipalities') }} as m
    cross join years as y
    left join {{ ref('int_kpi__measure_effects') }} as e on e.municipality_key = m.municipality_key
    group by m.municipality_key, y.year
)

select
    e.municipality_key,
    e.year,
    e.year <= (select last_year.year from last_year) as is_actual_year,
    coalesce(b.baseline_connected_area_m2, 0)::double as baseline_connected_area_m2,
    coalesce(b.baseline_connected_area_designated_m2, 0)::double as baseline_connected_area_designated_m2,
    e.disconnected_actual_m2::double as disconnected_actual_m2,
    e.disconnected_planned_m2::double as disconnected_planned_m2,
    e.disconnected_actual_designated_m2::double as disconnected_actual_designated_m2,
    e.disconnected_planned_designated_m2::double as disconnected_planned_designated_m2,
    coalesce(b.surface_area_m2, 0)::double as surface_area_m2,
    coalesce(b.evaporation_weighted_baseline_m2, 0)::double as evaporation_weighted_baseline_m2,
    e.evaporation_weighted_change_actual_m2::double as evaporation_weighted_change_actual_m2,
    e.evaporation_weighted_change_planned_m2::double as evaporation_weighted_change_planned_m2,
    coalesce(b.surface_area_designated_m2, 0)::double as surface_area_designated_m2,
    coalesce(b.evaporation_weighted_baseline_designated_m2, 0)::double as evaporation_weighted_baseline_designated_m2,
    e.evaporation_weighted_change_actual_designated_m2::double as evaporation_weighted_change_actual_designated_m2,
    e.evaporation_weighted_change_planned_designated_m2::double as evaporation_weighted_change_planned_designated_m2
from effects as e
left join baseline as b using (municipality_key)
