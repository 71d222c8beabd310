-- One row per landed file (grain: source_family, source_file). Ledger columns typed; load time dropped
-- so that identical inputs give identical marts.
select
    source_family,
    source_file,
    file_name,
    file_hash,
    file_size_bytes,
    nullif(trim(municipality_key), '') as municipality_key,
    nullif(trim(period), '') as period,
    rows_read,
    rows_loaded,
    rows_rejected,
    outcome,
    error_message,
    error_rule,
    data_team_note
from {{ source('raw_ingestion', 'ingestion_files') }}
