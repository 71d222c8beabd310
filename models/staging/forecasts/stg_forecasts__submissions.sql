-- Grain: one row per delivered forecast file with at least one accepted row (submission_id).
select
    submission_id,
    municipality_key,
    reporting_period,
    reporting_year::integer as reporting_year,
    reporting_quarter::integer as reporting_quarter,
    template_version,
    submitted_on::date as submitted_on,
    revision::integer as revision,
    file_hash,
    _source_file
from {{ source('raw_forecasts', 'forecasts__submissions') }}
