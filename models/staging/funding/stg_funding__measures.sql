-- depends_on: {{ source('raw_funding_db', 'funding_db_extracts') }}
select
    measure_id,
    approval_id,
    measure_type_key,
    is_in_designated_area,
    designated_area_name,
    disconnected_area_m2,
    affected_surface_type,
    surface_change_m2,
    trees,
    updated_at,
    extract_id,
    extract_channel,
    extract_kind,
    extract_seq,
    extract_as_of,
    _source_file,
    _row_number
from {{ source('raw_funding', 'funding__measures') }}
