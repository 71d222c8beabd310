-- One row per rejection reason (a row with two broken cells has two rows here).
select
    source_family,
    source_file,
    sheet,
    row_number,
    project_id,
    column_name,
    value_found,
    rule,
    message_de
from {{ source('raw_ingestion', 'rejected_rows') }}
