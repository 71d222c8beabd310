-- One row per raw daily row (grain: source_file, source_row_number): DWD names translated into names
-- with units; values stay decimal(9,3) so every value is exactly what the file says. Overlaps between
-- deliveries are resolved in int_climate__daily, not here.
select
    station_id,
    measured_on,
    qn_3 as quality_level_wind,
    fx as wind_max_m_s,
    fm as wind_mean_m_s,
    qn_4 as quality_level,
    rsk as precipitation_mm,
    rskf as precipitation_form,
    sdk as sunshine_h,
    shk_tag as snow_depth_cm,
    nm as cloud_cover_eighths,
    vpm as vapour_pressure_hpa,
    pm as air_pressure_hpa,
    tmk as temperature_mean_c,
    upm as relative_humidity_pct,
    txk as temperature_max_c,
    tnk as temperature_min_c,
    tgk as ground_temperature_min_c,
    delivery_kind,
    delivery_period_end,
    -- historical (quality-controlled) before a bare product file before a recent archive
    case delivery_kind when 'historical' then 1 when 'product_file' then 2 else 3 end as delivery_priority,
    _source_file as source_file,
    _sheet as source_member,
    _row_number as source_row_number
from {{ source('raw_climate', 'climate__daily') }}
