-- One row per station and day (grain: station_id, measured_on): the overlap of the deliveries resolved.
-- Every raw row stays in raw/staging; here the row of the best delivery wins: a historical archive
-- (quality-controlled) before a bare product file before a recent archive; within one kind the delivery
-- that reaches further (later delivery_period_end) wins, so a newer recent archive corrects the days it
-- shares with an older one and adds its new days, while days only the older one has remain.
select
    station_id,
    measured_on,
    quality_level,
    precipitation_mm,
    temperature_mean_c,
    temperature_max_c,
    temperature_min_c,
    sunshine_h,
    snow_depth_cm,
    delivery_kind,
    source_file,
    source_member,
    source_row_number
from {{ ref('stg_climate__daily') }}
qualify row_number() over (
    partition by station_id, measured_on
    order by delivery_priority asc, delivery_period_end desc, source_file desc, source_row_number asc
) = 1
