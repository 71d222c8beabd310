-- depends_on: {{ source('raw_funding_db', 'funding_db_extracts') }}
-- One row per application version per extract; contact person and e-mail stay in raw (personal data).
select
    application_id,
    project_id,
    municipality_key,
    municipality_name,
    title,
    measure_type_key,
    owner_type,
    application_date,
    total_cost_eur,
    requested_eur,
    cast(funding_rate_pct / 100.0 as double) as funding_rate,
    status_key,
    {{ funding_extract_columns() }}
from {{ source('raw_funding', 'funding__applications') }}
