{#- Quarter arithmetic on 'YYYY-Qn' periods (the reporting periods of the forecast workbooks). -#}
{% macro period_of(date_expr) -%}
    (year({{ date_expr }})::varchar || '-Q' || quarter({{ date_expr }})::varchar)
{%- endmacro %}

{% macro period_index(period_expr) -%}
    (cast(left({{ period_expr }}, 4) as integer) * 4 + cast(right({{ period_expr }}, 1) as integer) - 1)
{%- endmacro %}

{% macro period_from_index(index_expr) -%}
    ((({{ index_expr }}) // 4)::varchar || '-Q' || ((({{ index_expr }}) % 4) + 1)::varchar)
{%- endmacro %}

{% macro quarter_end_of_index(index_expr) -%}
    last_day(make_date((({{ index_expr }}) // 4)::integer, ((({{ index_expr }}) % 4) * 3 + 3)::integer, 1))
{%- endmacro %}
