-- Status history of each application from the versions the extracts delivered: one row per period in
-- which a status held. valid_from is the change time in the funding database (updated_at), valid_to the
-- next change (NULL = still valid). Deterministic: rebuilt from all loaded extracts on every run, so a
-- late-loaded delta puts its change at the right time. Status at the end of quarter Q:
--   where valid_from <= <Q end 23:59:59> and (valid_to is null or valid_to > <Q end 23:59:59>)
with versions as (
    select application_id, updated_at, status_key
    from {{ ref('stg_funding__applications') }}
    qualify row_number() over (
        partition by application_id, updated_at order by extract_as_of desc, _source_file desc
    ) = 1
),

changes as (
    select *
    from (
        select
            *,
            lag(status_key) over (partition by application_id order by updated_at) as previous_status_key
        from versions
    ) as versions_with_previous
    where previous_status_key is null or previous_status_key <> status_key
)

select
    application_id,
    status_key,
    updated_at as valid_from,
    lead(updated_at) over (partition by application_id order by updated_at) as valid_to,
    lead(updated_at) over (partition by application_id order by updated_at) is null as is_current
from changes
