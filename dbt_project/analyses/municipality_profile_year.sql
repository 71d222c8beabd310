-- Kommunen-Steckbrief für ein Berichtsjahr (eine Zeile je Kommune): Abkopplung und Verdunstung gegen den
-- Zielpfad, Mittel bewilligt und ausgezahlt (kumuliert), fehlgeschlagene Qualitätsprüfungen des letzten
-- Prüflaufs. Liest nur Marts, läuft also auf der veröffentlichten Kopie. Erzeugen (Jahr wählbar) und abfragen:
--   .venv/bin/zi-dbt compile --quiet --select municipality_profile_year --vars '{report_year: 2024}'
--   .venv/bin/zi sql --file target/compiled/zi_warehouse/dbt_project/analyses/municipality_profile_year.sql \
--       --out steckbrief_2024.xlsx
{% set report_year = var('report_year', 2025) %}

with quality_findings as (
    select
        municipality_key,
        count(*) filter (where severity = 'error') as failed_error_checks,
        count(*) filter (where severity = 'warn') as failed_warn_checks
    from {{ ref('mart_data_quality') }}
    where is_latest_run and outcome = 'failed' and municipality_key is not null
    group by municipality_key
)

select
    municipality.municipality_name,
    municipality.district,
    municipality.is_zi_member,
    kpi.year,
    round(kpi.disconnection_rate_actual_pct, 2) as disconnection_rate_actual_pct,
    round(kpi.disconnection_target_path_pct, 2) as disconnection_target_path_pct,
    kpi.is_disconnection_on_track,
    round(kpi.evaporation_change_actual_pp, 3) as evaporation_change_actual_pp,
    round(kpi.evaporation_target_path_pp, 3) as evaporation_target_path_pp,
    kpi.is_evaporation_on_track,
    budget.approved_eur_cumulative,
    budget.paid_eur_cumulative,
    budget.utilisation_pct,
    coalesce(quality_findings.failed_error_checks, 0) as failed_error_checks,
    coalesce(quality_findings.failed_warn_checks, 0) as failed_warn_checks
from {{ ref('dim_municipality') }} as municipality
inner join {{ ref('mart_kpi_municipality_year') }} as kpi
    on municipality.municipality_key = kpi.municipality_key and kpi.year = {{ report_year }}
left join {{ ref('mart_budget_municipality_year') }} as budget
    on kpi.municipality_key = budget.municipality_key and kpi.year = budget.year
left join quality_findings on municipality.municipality_key = quality_findings.municipality_key
order by
    municipality.is_zi_member desc, kpi.is_disconnection_on_track asc nulls first, municipality.municipality_name asc
