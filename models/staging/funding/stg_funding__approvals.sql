-- depends_on: {{ source('raw_funding_db', 'funding_db_extracts') }}
select
    approval_id,
    application_id,
    notice_date,
    approved_eur,
    construction_start_date,
    completion_date,
    {{ funding_extract_columns() }}
from {{ source('raw_funding', 'funding__approvals') }}
