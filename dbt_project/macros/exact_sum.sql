{#- Sum doubles exactly and deterministically: DuckDB aggregates in parallel, and a floating-point sum
    depends on the order, so identical inputs could give marts differing in the last bits. Summing as
    DECIMAL is exact; the result is returned as DOUBLE. `where` is an optional FILTER condition. -#}
{% macro exact_sum(expression, scale=6, where=none) -%}
    cast(sum(({{ expression }})::decimal(38, {{ scale }})){% if where %} filter (where {{ where }}){% endif %} as double)
{%- endmacro %}
