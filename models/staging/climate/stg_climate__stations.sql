-- One row per station (grain: station_id). Several station lists may have landed (e.g. an older and a
-- newer download): the entry that runs longest (latest bis_datum) wins, then the later file name.
select
    station_id,
    trim(station_name) as station_name,
    trim(federal_state) as federal_state,
    valid_from,
    valid_to,
    station_height_m,
    latitude,
    longitude,
    _source_file as source_file,
    _row_number as source_row_number
from {{ source('raw_climate', 'climate__stations') }}
qualify row_number() over (partition by station_id order by valid_to desc, _source_file desc) = 1
