-- Current state of each application: the latest version by updated_at (ties: the later extract).
-- is_deleted: the key is missing from the latest complete key list (full extract or database run)
-- and was not seen after it. A withdrawn application is NOT deleted: it keeps status_key 'withdrawn'.
with occurrences as (
    select * from {{ ref('stg_funding__applications') }}
),

latest as (
    select *
    from occurrences
    qualify row_number() over (
        partition by application_id order by updated_at desc, extract_as_of desc, _source_file desc
    ) = 1
),

last_seen as (
    select application_id, max(extract_as_of) as last_seen_as_of
    from occurrences
    group by application_id
),

key_lists as (
    select business_key, extract_as_of from {{ ref('stg_funding__key_lists') }} where entity = 'applications'
),

latest_list as (
    select max(extract_as_of) as listed_as_of from key_lists
),

listed as (
    select distinct business_key from key_lists where extract_as_of = (select listed_as_of from latest_list)
)

select
    latest.application_id,
    latest.project_id,
    latest.municipality_key,
    latest.municipality_name,
    latest.title,
    latest.measure_type_key,
    latest.owner_type,
    latest.application_date,
    latest.requested_eur,
    latest.total_cost_eur,
    latest.funding_rate,
    latest.status_key,
    coalesce(latest_list.listed_as_of > last_seen.last_seen_as_of and listed.business_key is null, false)
        as is_deleted,
    latest.updated_at,
    latest.extract_id as last_extract_id
from latest
inner join last_seen using (application_id)
cross join latest_list
left join listed on listed.business_key = latest.application_id
