{#- The columns every funding staging model carries: which extract a row version came from (for the merge by
    updated_at and the deletion rules) and its lineage. -#}
{% macro funding_extract_columns() -%}
    updated_at,
    extract_id,
    extract_channel,
    extract_kind,
    extract_seq,
    extract_as_of,
    _source_file,
    _row_number
{%- endmacro %}
