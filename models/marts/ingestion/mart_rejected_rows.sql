-- Grain: one row per rejection reason. Values of personal columns are masked at ingestion already.
-- The rule keeps its stable key (rule, for machines); its German label, explanation and audience come from
-- the rule texts (seeds/rule_texts.csv): the source family's own row first, then the general one.
-- A copy of a delivery already loaded (outcome 'duplicate') is no rejection: its note stays in raw.rejected_rows
-- for the sender's feedback, the file in mart_ingestion_files.
select
    -- stable key: the file and the position of the rejection within it (in a deterministic order)
    r.source_family || ':' || r.source_file || '#' || row_number() over (
        partition by r.source_family, r.source_file
        order by r.sheet nulls first, r.row_number nulls first, r.column_name, r.rule, r.value_found, r.message_de
    ) as rejection_id,
    r.source_family,
    r.source_file,
    f.file_name,
    f.municipality_key,
    f.period,
    r.sheet,
    r.row_number,
    r.project_id,
    r.column_name,
    r.value_found,
    r.rule,
    {{ rule_text('label_de') }} as rule_label_de,
    {{ rule_text('explanation_de') }} as rule_explanation_de,
    {{ rule_text('audience') }} as rule_audience,
    r.message_de
from {{ ref('stg_ingestion__rejected_rows') }} as r
left join {{ ref('stg_ingestion__files') }} as f using (source_family, source_file)
{{ rule_text_joins('r.rule', 'r.source_family') }}
where f.outcome is distinct from 'duplicate'
order by r.source_family, r.source_file, r.sheet, r.row_number nulls first, r.column_name, r.rule
