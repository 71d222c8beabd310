-- Current state of each application (macro funding_current_state: version in force, is_deleted).
-- A withdrawn application is NOT deleted: it keeps status_key 'withdrawn'.
with current_applications as (
    {{ funding_current_state('applications', 'application_id') }}
)

select
    application_id,
    project_id,
    municipality_key,
    municipality_name,
    title,
    measure_type_key,
    owner_type,
    application_date,
    requested_eur,
    total_cost_eur,
    funding_rate,
    status_key,
    is_deleted,
    updated_at,
    extract_id as last_extract_id
from current_applications
