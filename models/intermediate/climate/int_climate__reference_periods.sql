-- One row per station and reference period (grain: station_id, reference_period; periods 1961-1990 and
-- 1991-2020): the mean of each indicator over the period's complete years. years_complete says how many
-- years the means rest on; is_representative follows the WMO rule of at least 80 % (24 of 30) years.
with periods as (
    select '1961-1990' as reference_period, 1961 as first_year, 1990 as last_year
    union all
    select '1991-2020', 1991, 2020
),

stations as (
    select distinct station_id from {{ ref('int_climate__station_year') }}
),

complete_years as (
    select * from {{ ref('int_climate__station_year') }}
    where is_complete
)

select
    s.station_id,
    p.reference_period,
    p.first_year,
    p.last_year,
    count(y.year) as years_complete,
    count(y.year) >= 24 as is_representative,
    round(avg(y.summer_days), 1) as mean_summer_days,
    round(avg(y.hot_days), 1) as mean_hot_days,
    round(avg(y.tropical_nights), 1) as mean_tropical_nights,
    round(avg(y.frost_days), 1) as mean_frost_days,
    round(avg(y.ice_days), 1) as mean_ice_days,
    round(avg(y.precipitation_days_10mm), 1) as mean_precipitation_days_10mm,
    round(avg(y.precipitation_days_20mm), 1) as mean_precipitation_days_20mm,
    round(avg(cast(y.precipitation_mm as double)), 1) as mean_precipitation_mm,
    round(avg(cast(y.max_daily_precipitation_mm as double)), 1) as mean_max_daily_precipitation_mm,
    round(avg(y.heat_periods), 2) as mean_heat_periods,
    round(avg(y.mean_temperature_c), 2) as mean_temperature_c
from stations as s
cross join periods as p
left join complete_years as y
    on y.station_id = s.station_id and y.year between p.first_year and p.last_year
group by s.station_id, p.reference_period, p.first_year, p.last_year
