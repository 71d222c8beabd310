-- Grain: one row per landed file (source_family, source_file). Rows read = loaded + rejected.
select
    f.source_family,
    f.source_file,
    f.file_name,
    f.file_hash,
    f.file_size_bytes,
    f.municipality_key,
    m.municipality_name,
    f.period,
    f.rows_read,
    f.rows_loaded,
    f.rows_rejected,
    f.outcome,
    f.error_message
from {{ ref('stg_ingestion__files') }} as f
left join {{ ref('municipalities') }} as m using (municipality_key)
order by f.source_family, f.source_file
