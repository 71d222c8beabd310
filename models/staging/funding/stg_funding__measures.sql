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
    {{ funding_extract_columns() }}
from {{ source('raw_funding', 'funding__measures') }}
