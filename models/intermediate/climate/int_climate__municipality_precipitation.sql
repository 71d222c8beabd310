-- One row per municipality (grain: municipality_key): the long-term mean annual precipitation P that the
-- municipality's water-balance factors use (DWA-M 102-4), from its assigned station.
-- Rule: the mean over the complete years 1991-2020 when the station has at least 24 of them (WMO 80 %);
-- otherwise (a station that started later) the mean over all its complete years. NULL only when the
-- station has no complete year at all.
with complete_years as (
    select station_id, year, precipitation_mm  -- DECIMAL: an exact (deterministic) mean
    from {{ ref('int_climate__station_year') }}
    where is_complete
),

per_station as (
    select
        station_id,
        count(*) filter (where year between 1991 and 2020) as years_1991_2020,
        avg(precipitation_mm) filter (where year between 1991 and 2020) as mean_1991_2020,
        min(year) filter (where year between 1991 and 2020) as first_1991_2020,
        max(year) filter (where year between 1991 and 2020) as last_1991_2020,
        count(*) as years_all,
        avg(precipitation_mm) as mean_all,
        min(year) as first_all,
        max(year) as last_all
    from complete_years
    group by station_id
)

select
    ms.municipality_key,
    ms.station_id,
    case when p.years_1991_2020 >= 24 then '1991-2020' else 'all_complete_years' end as reference_period,
    round(case when p.years_1991_2020 >= 24 then p.mean_1991_2020 else p.mean_all end, 1)
        as mean_annual_precipitation_mm,
    coalesce(case when p.years_1991_2020 >= 24 then p.years_1991_2020 else p.years_all end, 0) as years_used,
    case when p.years_1991_2020 >= 24 then p.first_1991_2020 else p.first_all end as first_year_used,
    case when p.years_1991_2020 >= 24 then p.last_1991_2020 else p.last_all end as last_year_used
from {{ ref('int_climate__municipality_station') }} as ms
left join per_station as p using (station_id)
