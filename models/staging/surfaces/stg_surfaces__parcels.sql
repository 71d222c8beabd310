-- Grain: one row per surface record of a parcel (_source_file, _row_number). At demo scales below 1 a
-- record stands for a block of parcels (the area totals stay realistic; see zi_warehouse/demo/surfaces.py).
select
    municipality_key,
    trim(parcel_id) as parcel_id,
    area_m2,
    surface_type,
    sewer_connection,
    nullif(trim(designated_area_name), '') as designated_area_name,
    coalesce(is_in_designated_area, false) as is_in_designated_area,
    _source_file,
    _row_number
from {{ source('raw_surfaces', 'surfaces__parcels') }}
