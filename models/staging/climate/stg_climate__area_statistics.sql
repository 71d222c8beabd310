-- One row per delivery, area, topic and class (grain: source_file, municipality_key, area_type,
-- area_name, topic, class_code) of the RVR climate-analysis statistics.
select
    municipality_key,
    area_type,
    trim(area_name) as area_name,
    topic,
    class_code,
    trim(class_label) as class_label,
    area_ha,
    heat_stressed_area_ha,
    _source_file as source_file,
    _row_number as source_row_number
from {{ source('raw_climate', 'climate__area_statistics') }}
