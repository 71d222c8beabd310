-- One row per municipality, area type and area (grain: municipality_key, area_type, area_name): the
-- heat-stressed share and the heavy-rain hazard shares from the RVR climate analysis. When several
-- deliveries describe the same area, the latest file (by name, e.g. ..._2024.csv after ..._2020.csv) wins.
-- The area's total is the sum of its climate-zone classes (the climatopes cover the whole area);
-- heavy-rain hazard area = every water-depth class from 0.10 m up.
with latest as (
    select *
    from {{ ref('stg_climate__area_statistics') }}
    qualify dense_rank() over (
        partition by municipality_key, area_type, area_name order by source_file desc
    ) = 1
),

per_area as (
    select
        municipality_key,
        area_type,
        area_name,
        any_value(source_file) as source_file,
        sum(area_ha) filter (where topic = 'climatope') as total_area_ha,
        sum(heat_stressed_area_ha) filter (where topic = 'climatope') as heat_stressed_area_ha,
        sum(area_ha) filter (
            where topic = 'climatope' and class_code in ('city', 'inner_city', 'commercial_industrial')
        ) as urban_climatope_area_ha,
        sum(area_ha) filter (where topic = 'heavy_rain_rare') as heavy_rain_rare_hazard_area_ha,
        sum(area_ha) filter (where topic = 'heavy_rain_extreme') as heavy_rain_extreme_hazard_area_ha,
        sum(area_ha) filter (
            where topic = 'heavy_rain_extreme' and class_code in ('depth_050_100', 'depth_gt_100')
        ) as heavy_rain_extreme_deep_area_ha
    from latest
    group by municipality_key, area_type, area_name
)

select
    municipality_key,
    area_type,
    area_name,
    round(total_area_ha, 2) as total_area_ha,
    round(heat_stressed_area_ha, 2) as heat_stressed_area_ha,
    round(100 * heat_stressed_area_ha / nullif(total_area_ha, 0), 2) as heat_stressed_area_pct,
    round(100 * urban_climatope_area_ha / nullif(total_area_ha, 0), 2) as urban_climatope_area_pct,
    round(heavy_rain_rare_hazard_area_ha, 2) as heavy_rain_rare_hazard_area_ha,
    round(100 * heavy_rain_rare_hazard_area_ha / nullif(total_area_ha, 0), 2) as heavy_rain_rare_hazard_area_pct,
    round(heavy_rain_extreme_hazard_area_ha, 2) as heavy_rain_extreme_hazard_area_ha,
    round(100 * heavy_rain_extreme_hazard_area_ha / nullif(total_area_ha, 0), 2) as heavy_rain_extreme_hazard_area_pct,
    round(100 * heavy_rain_extreme_deep_area_ha / nullif(total_area_ha, 0), 2) as heavy_rain_extreme_deep_area_pct,
    source_file
from per_area
