{#- The current, not physically deleted records of a funding current-state model (is_deleted = true means
    the key disappeared from the source; withdrawn projects are a status, not a deletion). -#}
{% macro live(model_name) -%}
    (select * from {{ ref(model_name) }} where not is_deleted)
{%- endmacro %}
