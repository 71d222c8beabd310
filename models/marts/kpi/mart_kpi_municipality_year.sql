-- Grain: one row per municipality and year (baseline year .. 2040). Abkopplungsgrad and
-- Verdunstungsrate with their target paths; formulas in dbt_project/macros/kpi.sql (docs/domain.md#kpis).
select
    k.municipality_key,
    m.municipality_name,
    m.is_zi_member,
    k.* exclude (municipality_key),
    {{ kpi_rate_columns() }}
from {{ ref('int_kpi__municipality_year') }} as k
inner join {{ ref('municipalities') }} as m using (municipality_key)
order by k.municipality_key, k.year
