-- Grain: one row per municipality, designated-area flag, surface type and sewer connection. The KPI
-- baseline "paved area connected to the combined sewer" is sum(area_m2) where sewer_connection = 'combined'
-- (docs/domain.md#abkopplungsgrad); with the water-balance factors it also gives Σ area·v.
select
    municipality_key,
    is_in_designated_area,
    surface_type,
    sewer_connection,
    {{ exact_sum('area_m2', 4) }} as area_m2,  -- exact: identical inputs, identical marts
    count(*) as record_count
from {{ ref('stg_surfaces__parcels') }}
group by all
