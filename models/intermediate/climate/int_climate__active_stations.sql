-- One row per station with daily data and a location (grain: station_id), with whether it is active.
-- Active: its data or its station-list entry (bis_datum) reaches into the last 365 days before the
-- reference date, the latest day known anywhere (newest observation of any station, or the newest
-- bis_datum in the station list). Stations closed for years (Bochum 2018, Dortmund 1999) are not active.
with data as (
    select station_id, min(measured_on) as first_observed_on, max(measured_on) as last_observed_on
    from {{ ref('int_climate__daily') }}
    group by station_id
),

stations as (
    select * from {{ ref('stg_climate__stations') }}
),

reference_date as (
    select greatest(
        (select max(last_observed_on) from data),
        coalesce((select max(valid_to) from stations), date '1900-01-01')
    ) as reference_date
)

select
    s.station_id,
    s.station_name,
    s.latitude,
    s.longitude,
    s.valid_from,
    s.valid_to,
    d.first_observed_on,
    d.last_observed_on,
    r.reference_date,
    greatest(d.last_observed_on, s.valid_to) >= r.reference_date - interval 365 day as is_active
from data as d
inner join stations as s using (station_id)
cross join reference_date as r
