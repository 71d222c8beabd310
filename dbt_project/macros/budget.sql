{#- Budget ratios (one definition for the year and the municipality-year marts). Inputs are the additive
    components of int_budget__municipality_year, summed to the mart's grain, plus cumulative sums. -#}
{% macro budget_ratio_columns() -%}
    round(100.0 * paid_eur_cumulative / nullif(approved_eur_cumulative, 0), 2)::double as utilisation_pct,
    round(100.0 * funding_rate_sum / nullif(funding_rate_count, 0), 2)::double as mean_funding_rate_pct,
    round(approved_eur_disconnecting / nullif(disconnected_area_approved_m2, 0), 2)::double as eur_per_m2_disconnected,
    round(approved_eur_with_trees / nullif(trees_approved, 0), 2)::double as eur_per_tree
{%- endmacro %}
