{#- Generic test: the combination of `columns` is unique (no dbt_utils here: the dbt hub is unreachable). -#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as n
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
