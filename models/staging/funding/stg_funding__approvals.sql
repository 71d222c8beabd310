-- depends_on: {{ source('raw_funding_db', 'funding_db_extracts') }}
select
    approval_id,
    application_id,
    notice_date,
    approved_eur,
    construction_start_date,
    completion_date,
    updated_at,
    extract_id,
    extract_channel,
    extract_kind,
    extract_seq,
    extract_as_of,
    _source_file,
    _row_number
from {{ source('raw_funding', 'funding__approvals') }}
