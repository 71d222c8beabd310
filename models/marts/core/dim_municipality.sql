-- Grain: one row per municipality of the RVR (53). Climate station: the nearest active DWD station;
-- long-term precipitation: that station's mean annual precipitation (the P of the water-balance factors).
-- ags, area_km2 and boundary_area_km2 come from the BKG boundary data (scripts/derive_municipality_boundaries.py).
select
    m.municipality_key,
    m.ags,
    m.municipality_name,
    m.district,
    m.is_zi_member,
    m.population_2020,
    m.area_km2,
    m.boundary_area_km2,
    l.latitude,
    l.longitude,
    s.station_id as climate_station_id,
    s.distance_km as climate_station_distance_km,
    p.mean_annual_precipitation_mm as long_term_precipitation_mm,
    p.reference_period as precipitation_reference_period
from {{ ref('municipalities') }} as m
left join {{ ref('municipality_locations') }} as l using (municipality_key)
left join {{ ref('int_climate__municipality_station') }} as s using (municipality_key)
left join {{ ref('int_climate__municipality_precipitation') }} as p using (municipality_key)
order by m.municipality_key
