-- depends_on: {{ source('raw_funding_db', 'funding_db_extracts') }}
select
    amendment_id,
    approval_id,
    amendment_no,
    notice_date,
    approved_eur,
    updated_at,
    extract_id,
    extract_channel,
    extract_kind,
    extract_seq,
    extract_as_of,
    _source_file,
    _row_number
from {{ source('raw_funding', 'funding__amendments') }}
