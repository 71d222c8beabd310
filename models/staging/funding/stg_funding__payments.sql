-- depends_on: {{ source('raw_funding_db', 'funding_db_extracts') }}
select
    payment_id,
    approval_id,
    paid_on,
    amount_eur,
    {{ funding_extract_columns() }}
from {{ source('raw_funding', 'funding__payments') }}
