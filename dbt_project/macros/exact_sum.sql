{#- Sum doubles exactly and deterministically: DuckDB aggregates in parallel, and a floating-point sum
    depends on the order, so identical inputs could give marts differing in the last bits. Summing as
    DECIMAL is exact; the result is returned as DOUBLE. -#}
{% macro exact_sum(expression, scale=6) -%}
    sum(({{ expression }})::decimal(38, {{ scale }}))::double
{%- endmacro %}
