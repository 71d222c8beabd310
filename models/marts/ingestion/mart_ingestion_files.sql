-- Grain: one row per landed file (source_family, source_file). Rows read = loaded + rejected.
-- The rule of a failed or held-back file keeps its key (error_rule) and gets its German label from the
-- rule texts (the source family's own row first, then the general one).
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
    f.error_message,
    f.error_rule,
    {{ rule_text('label_de') }} as error_label_de,
    f.data_team_note
from {{ ref('stg_ingestion__files') }} as f
left join {{ ref('municipalities') }} as m using (municipality_key)
{{ rule_text_joins('f.error_rule', 'f.source_family') }}
order by f.source_family, f.source_file
