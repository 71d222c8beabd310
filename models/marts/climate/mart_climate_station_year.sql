-- Grain: one row per DWD station and calendar year (station_id, year). Climate indicators
-- (docs/domain.md#climate-indicators) from the deduplicated daily values; a year with gaps says so
-- (missing_days > 0, is_complete false) and its counts are counts over the observed days only.
select
    y.station_id,
    s.station_name,
    y.year,
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
    y.heat_period_days,
    y.mean_temperature_c,
    y.days_with_temperature_max,
    y.days_with_temperature_min,
    y.days_with_precipitation
from {{ ref('int_climate__station_year') }} as y
left join {{ ref('stg_climate__stations') }} as s using (station_id)
order by y.station_id, y.year
