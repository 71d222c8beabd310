{#- Use the custom schema name as is (staging, intermediate, marts, reference), not target_custom:
    controllers and BI tools must find the public marts in a schema called exactly `marts`. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
