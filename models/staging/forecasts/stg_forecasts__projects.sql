-- Grain: one row per accepted project row of a delivered forecast file (submission_id, project_id).
-- Typed and trimmed; contact name and e-mail stay in the raw layer (personal data).
select
    submission_id,
    municipality_key,
    reporting_period,
    reporting_year::integer as reporting_year,
    reporting_quarter::integer as reporting_quarter,
    template_version,
    trim(project_id) as project_id,
    nullif(trim(title), '') as title,
    measure_type_key,
    status_key,
    total_cost_eur::decimal(14, 2) as total_cost_eur,
    requested_funding_eur::decimal(14, 2) as requested_funding_eur,
    funding_rate::double as funding_rate,
    planned_application_period,
    planned_start_date::date as planned_start_date,
    planned_completion_date::date as planned_completion_date,
    expected_disconnected_area_m2::double as expected_disconnected_area_m2,
    affected_surface_type,
    surface_change_m2::double as surface_change_m2,
    expected_trees::integer as expected_trees,
    is_in_designated_area,
    nullif(trim(designated_area_name), '') as designated_area_name,
    _source_file,
    _sheet,
    _row_number
from {{ source('raw_forecasts', 'forecasts__projects') }}
