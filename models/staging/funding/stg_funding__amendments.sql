-- depends_on: {{ source('raw_funding_db', 'funding_db_extracts') }}
select
    amendment_id,
    approval_id,
    amendment_no,
    notice_date,
    approved_eur,
    {{ funding_extract_columns() }}
from {{ source('raw_funding', 'funding__amendments') }}
