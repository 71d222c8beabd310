-- One row per municipality (grain: municipality_key): its nearest active DWD station (great-circle
-- distance between the municipality's centre in seeds/municipality_locations.csv and the station).
with stations as (
    select * from {{ ref('int_climate__active_stations') }}
    where is_active
),

pairs as (
    select
        m.municipality_key,
        s.station_id,
        s.station_name,
        2 * 6371.0 * asin(sqrt(
            power(sin(radians(s.latitude - m.latitude) / 2), 2)
            + cos(radians(m.latitude))
            * cos(radians(s.latitude))
            * power(sin(radians(s.longitude - m.longitude) / 2), 2)
        )) as distance_km
    from {{ ref('municipality_locations') }} as m
    cross join stations as s
)

select
    municipality_key,
    station_id,
    station_name,
    round(distance_km, 2) as distance_km
from pairs
qualify row_number() over (partition by municipality_key order by distance_km, station_id) = 1
