-- One row per municipality and year (grain: municipality_key, year): the climate indicators of the
-- municipality's assigned station (int_climate__municipality_station) for every year that station has.
select
    ms.municipality_key,
    y.year,
    ms.station_id,
    ms.distance_km,
    y.days_in_year,
    y.days_observed,
    y.missing_days,
    y.is_complete,
    y.summer_days,
    y.hot_days,
    y.tropical_nights,
    y.frost_days,
    y.ice_days,
    y.precipitation_days_10mm,
    y.precipitation_days_20mm,
    y.precipitation_mm,
    y.max_daily_precipitation_mm,
    y.heat_periods,
    y.mean_temperature_c
from {{ ref('int_climate__municipality_station') }} as ms
inner join {{ ref('int_climate__station_year') }} as y using (station_id)
