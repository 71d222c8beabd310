{#- The German texts of a rejection rule (seeds/rule_texts.csv): the source family's own row first, then the
    general one (a key can mean something else per family). rule_text_joins adds the two joins to a select
    whose rows carry a rule key and a source family; rule_text(column) then gives label_de, explanation_de or
    audience. Used by mart_rejected_rows and mart_ingestion_files. -#}
{% macro rule_text_joins(rule, source_family) -%}
    left join {{ ref('rule_texts') }} as family_text
        on
            family_text.kind = 'rejection' and family_text.rule_key = {{ rule }}
            and family_text.source_family = {{ source_family }}
    left join {{ ref('rule_texts') }} as general_text
        on
            general_text.kind = 'rejection' and general_text.rule_key = {{ rule }}
            and general_text.source_family is null
{%- endmacro %}

{% macro rule_text(column) -%}
    coalesce(family_text.{{ column }}, general_text.{{ column }})
{%- endmacro %}
