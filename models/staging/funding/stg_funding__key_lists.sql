-- depends_on: {{ source('raw_funding_db', 'funding_db_extracts') }}
select
    entity,
    business_key,
    extract_id,
    extract_channel,
    extract_kind,
    extract_as_of,
    _source_file
from {{ source('raw_funding', 'funding__key_lists') }}
