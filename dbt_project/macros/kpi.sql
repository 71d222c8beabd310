{#- The KPI formulas (docs/domain.md#kpis), in one place for the municipality and the region marts.
    Parameters are dbt vars (dbt_project.yml): baseline year, targets and horizons are configuration. -#}

{#- Linear target path from 0 in the baseline year to `target` in `target_year`, capped at the target. -#}
{% macro target_path(year_column, target, target_year) -%}
    least({{ target }}, greatest(0, {{ target }} * ({{ year_column }} - {{ var('kpi_baseline_year') }})
        / ({{ target_year }} - {{ var('kpi_baseline_year') }})))::double
{%- endmacro %}

{#- Rates and flags computed from the additive components of int_kpi__municipality_year. -#}
{% macro kpi_rate_columns() -%}
    100.0 * disconnected_actual_m2 / nullif(baseline_connected_area_m2, 0) as disconnection_rate_actual_pct,
    100.0 * disconnected_planned_m2 / nullif(baseline_connected_area_m2, 0) as disconnection_rate_planned_pct,
    {{ target_path('year', var('disconnection_target_pct'), var('disconnection_target_year_region')) }}
        as disconnection_target_path_pct,
    case when is_actual_year then
        100.0 * disconnected_actual_m2 / nullif(baseline_connected_area_m2, 0)
        >= {{ target_path('year', var('disconnection_target_pct'), var('disconnection_target_year_region')) }}
    end as is_disconnection_on_track,
    100.0 * disconnected_actual_designated_m2 / nullif(baseline_connected_area_designated_m2, 0)
        as disconnection_rate_actual_designated_pct,
    100.0 * disconnected_planned_designated_m2 / nullif(baseline_connected_area_designated_m2, 0)
        as disconnection_rate_planned_designated_pct,
    {{ target_path('year', var('disconnection_target_pct'), var('disconnection_target_year_designated_areas')) }}
        as disconnection_target_path_designated_pct,
    case when is_actual_year then
        100.0 * disconnected_actual_designated_m2 / nullif(baseline_connected_area_designated_m2, 0)
        >= {{ target_path('year', var('disconnection_target_pct'), var('disconnection_target_year_designated_areas')) }}
    end as is_disconnection_designated_on_track,
    {{ evaporation_rate_columns('', var('disconnection_target_year_region')) }},
    {#- The designated areas (Gestaltungsräume, all of a municipality's together) have their own horizon: 2030
        instead of 2040 (docs/domain.md#target-paths-and-horizons gives both horizons for both KPIs). #}
    {{ evaporation_rate_columns('_designated', var('disconnection_target_year_designated_areas')) }}
{%- endmacro %}

{#- Verdunstungsrate and ΔV of one scope: the whole municipality (scope '') or its designated areas
    ('_designated'); the columns are named after the scope, e.g. evaporation_rate_actual_designated_pct. -#}
{% macro evaporation_rate_columns(scope, target_year) -%}
    100.0 * evaporation_weighted_baseline{{ scope }}_m2 / nullif(surface_area{{ scope }}_m2, 0)
        as evaporation_rate_baseline{{ scope }}_pct,
    100.0 * (evaporation_weighted_baseline{{ scope }}_m2 + evaporation_weighted_change_actual{{ scope }}_m2)
        / nullif(surface_area{{ scope }}_m2, 0) as evaporation_rate_actual{{ scope }}_pct,
    100.0 * evaporation_weighted_change_actual{{ scope }}_m2 / nullif(surface_area{{ scope }}_m2, 0)
        as evaporation_change_actual{{ scope }}_pp,
    100.0 * (evaporation_weighted_baseline{{ scope }}_m2 + evaporation_weighted_change_planned{{ scope }}_m2)
        / nullif(surface_area{{ scope }}_m2, 0) as evaporation_rate_planned{{ scope }}_pct,
    100.0 * evaporation_weighted_change_planned{{ scope }}_m2 / nullif(surface_area{{ scope }}_m2, 0)
        as evaporation_change_planned{{ scope }}_pp,
    {{ target_path('year', var('evaporation_target_pp'), target_year) }} as evaporation_target_path{{ scope }}_pp,
    case when is_actual_year then
        100.0 * evaporation_weighted_change_actual{{ scope }}_m2 / nullif(surface_area{{ scope }}_m2, 0)
        >= {{ target_path('year', var('evaporation_target_pp'), target_year) }}
    end as is_evaporation{{ scope }}_on_track
{%- endmacro %}
