-- Grain: one row per municipality and year. The climate indicators through the municipality's nearest
-- active DWD station (int_climate__municipality_year), and — for programme years — how many of the
-- approved measures (cumulative to the end of the year) and how much of their disconnected area lie where
-- heat or flooding is worst: a measure counts as in a heat-stressed (flood-prone) area when the RVR
-- statistics of its designated area — or of its municipality, outside designated areas — reach the
-- thresholds in dbt vars heat_stressed_area_threshold_pct / flood_hazard_area_threshold_pct.
with area_context as (
    select
        municipality_key,
        case when area_type = 'municipality' then null else area_name end as designated_area_name,
        heat_stressed_area_pct >= {{ var('heat_stressed_area_threshold_pct') }} as is_heat_stressed,
        heavy_rain_extreme_hazard_area_pct >= {{ var('flood_hazard_area_threshold_pct') }} as is_flood_prone
    from {{ ref('int_climate__area_statistics') }}
),

measures as (
    select
        m.municipality_key,
        year(m.notice_date) as approval_year,
        coalesce(m.disconnected_area_m2, 0) as disconnected_area_m2,
        coalesce(d.is_heat_stressed, t.is_heat_stressed, false) as is_heat_stressed,
        coalesce(d.is_flood_prone, t.is_flood_prone, false) as is_flood_prone
    from {{ ref('int_measures__funded') }} as m
    left join area_context as d
        on d.municipality_key = m.municipality_key and d.designated_area_name = m.designated_area_name
    left join area_context as t
        on t.municipality_key = m.municipality_key and t.designated_area_name is null
    where m.status_key not in ('withdrawn', 'rejected')
),

by_year as (
    select
        c.municipality_key,
        c.year,
        count(m.approval_year) as measures_approved,
        count(m.approval_year) filter (where m.is_heat_stressed) as measures_in_heat_stressed_areas,
        count(m.approval_year) filter (where m.is_flood_prone) as measures_in_flood_prone_areas,
        coalesce({{ exact_sum('m.disconnected_area_m2') }}, 0) as disconnected_area_planned_m2,
        coalesce({{ exact_sum('m.disconnected_area_m2', where="m.is_heat_stressed") }}, 0)
            as disconnected_area_heat_stressed_m2,
        coalesce({{ exact_sum('m.disconnected_area_m2', where="m.is_flood_prone") }}, 0)
            as disconnected_area_flood_prone_m2
    from {{ ref('int_climate__municipality_year') }} as c
    left join measures as m on m.municipality_key = c.municipality_key and m.approval_year <= c.year
    group by c.municipality_key, c.year
)

select
    c.municipality_key,
    mu.municipality_name,
    c.year::integer as year,
    c.station_id,
    c.distance_km as station_distance_km,
    c.days_in_year,
    c.days_observed,
    c.missing_days,
    c.is_complete,
    c.summer_days,
    c.hot_days,
    c.tropical_nights,
    c.frost_days,
    c.ice_days,
    c.precipitation_days_10mm,
    c.precipitation_days_20mm,
    c.precipitation_mm,
    c.max_daily_precipitation_mm,
    c.heat_periods,
    c.mean_temperature_c,
    b.measures_approved::bigint as measures_approved,
    b.measures_in_heat_stressed_areas::bigint as measures_in_heat_stressed_areas,
    round(100.0 * b.measures_in_heat_stressed_areas / nullif(b.measures_approved, 0), 2)::double
        as measures_in_heat_stressed_areas_pct,
    b.measures_in_flood_prone_areas::bigint as measures_in_flood_prone_areas,
    round(100.0 * b.measures_in_flood_prone_areas / nullif(b.measures_approved, 0), 2)::double
        as measures_in_flood_prone_areas_pct,
    b.disconnected_area_planned_m2::double as disconnected_area_planned_m2,
    round(100.0 * b.disconnected_area_heat_stressed_m2 / nullif(b.disconnected_area_planned_m2, 0), 2)::double
        as disconnected_area_heat_stressed_pct,
    round(100.0 * b.disconnected_area_flood_prone_m2 / nullif(b.disconnected_area_planned_m2, 0), 2)::double
        as disconnected_area_flood_prone_pct
from {{ ref('int_climate__municipality_year') }} as c
inner join by_year as b using (municipality_key, year)
inner join {{ ref('municipalities') }} as mu using (municipality_key)
order by c.municipality_key, year
