-- One row per station and calendar year (grain: station_id, year), every year from the station's first
-- to its last day with data (a year without any row appears with days_observed 0).
-- A day counts as observed when its maximum and minimum temperature and its precipitation are present
-- (the three values the indicators rest on). The counts are counts over the observed values; a year is
-- complete only when no day is missing (missing_days = 0), otherwise the counts are lower bounds.
with daily as (
    select * from {{ ref('int_climate__daily') }}
),

bounds as (
    select station_id, year(min(measured_on)) as first_year, year(max(measured_on)) as last_year
    from daily
    group by station_id
),

years as (
    select station_id, unnest(generate_series(first_year, last_year)) as year
    from bounds
),

hot_days as (
    -- gaps and islands: consecutive hot days share the same (date - running number)
    select
        station_id,
        measured_on,
        measured_on - cast(row_number() over (partition by station_id order by measured_on) as integer) as run_key
    from daily
    where temperature_max_c >= 30
),

heat_periods as (
    -- a heat period belongs to the year it starts in
    select station_id, year(min(measured_on)) as year, count(*) as period_days
    from hot_days
    group by station_id, run_key
    having count(*) >= 3
),

heat_per_year as (
    select station_id, year, count(*) as heat_periods, cast(sum(period_days) as bigint) as heat_period_days
    from heat_periods
    group by station_id, year
),

per_year as (
    select
        station_id,
        year(measured_on) as year,
        count(*) as days_with_data,
        count(*) filter (
            where temperature_max_c is not null and temperature_min_c is not null and precipitation_mm is not null
        ) as days_observed,
        count(temperature_max_c) as days_with_temperature_max,
        count(temperature_min_c) as days_with_temperature_min,
        count(precipitation_mm) as days_with_precipitation,
        count(*) filter (where temperature_max_c >= 25) as summer_days,
        count(*) filter (where temperature_max_c >= 30) as hot_days,
        count(*) filter (where temperature_min_c >= 20) as tropical_nights,
        count(*) filter (where temperature_min_c < 0) as frost_days,
        count(*) filter (where temperature_max_c < 0) as ice_days,
        count(*) filter (where precipitation_mm >= 10) as precipitation_days_10mm,
        count(*) filter (where precipitation_mm >= 20) as precipitation_days_20mm,
        cast(sum(precipitation_mm) as decimal(9, 1)) as precipitation_mm,
        cast(max(precipitation_mm) as decimal(9, 1)) as max_daily_precipitation_mm,
        round(avg(cast(temperature_mean_c as double)), 2) as mean_temperature_c
    from daily
    group by station_id, year(measured_on)
)

select
    y.station_id,
    y.year,
    cast(make_date(y.year + 1, 1, 1) - make_date(y.year, 1, 1) as integer) as days_in_year,
    coalesce(p.days_with_data, 0) as days_with_data,
    coalesce(p.days_observed, 0) as days_observed,
    cast(make_date(y.year + 1, 1, 1) - make_date(y.year, 1, 1) as integer)
    - coalesce(p.days_observed, 0) as missing_days,
    coalesce(p.days_observed, 0)
    = cast(make_date(y.year + 1, 1, 1) - make_date(y.year, 1, 1) as integer) as is_complete,
    coalesce(p.days_with_temperature_max, 0) as days_with_temperature_max,
    coalesce(p.days_with_temperature_min, 0) as days_with_temperature_min,
    coalesce(p.days_with_precipitation, 0) as days_with_precipitation,
    coalesce(p.summer_days, 0) as summer_days,
    coalesce(p.hot_days, 0) as hot_days,
    coalesce(p.tropical_nights, 0) as tropical_nights,
    coalesce(p.frost_days, 0) as frost_days,
    coalesce(p.ice_days, 0) as ice_days,
    coalesce(p.precipitation_days_10mm, 0) as precipitation_days_10mm,
    coalesce(p.precipitation_days_20mm, 0) as precipitation_days_20mm,
    p.precipitation_mm,
    p.max_daily_precipitation_mm,
    coalesce(h.heat_periods, 0) as heat_periods,
    coalesce(h.heat_period_days, 0) as heat_period_days,
    p.mean_temperature_c
from years as y
left join per_year as p on p.station_id = y.station_id and p.year = y.year
left join heat_per_year as h on h.station_id = y.station_id and h.year = y.year
