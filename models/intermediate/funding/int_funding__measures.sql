-- Current state by business key: latest version by updated_at (ties: the later extract); is_deleted when
-- the key is missing from the latest complete key list and was not seen after it (see int_funding__applications).
with occurrences as (
    select * from {{ ref('stg_funding__measures') }}
),

latest as (
    select *
    from occurrences
    qualify row_number() over (
        partition by measure_id order by updated_at desc, extract_as_of desc, _source_file desc
    ) = 1
),

last_seen as (
    select measure_id, max(extract_as_of) as last_seen_as_of
    from occurrences
    group by measure_id
),

key_lists as (
    select business_key, extract_as_of from {{ ref('stg_funding__key_lists') }} where entity = 'measures'
),

latest_list as (
    select max(extract_as_of) as listed_as_of from key_lists
),

listed as (
    select distinct business_key from key_lists where extract_as_of = (select listed_as_of from latest_list)
),

current_measures as (
    select
        latest.measure_id,
        latest.approval_id,
        latest.measure_type_key,
        latest.is_in_designated_area,
        latest.designated_area_name,
        latest.disconnected_area_m2,
        latest.affected_surface_type,
        latest.surface_change_m2,
        latest.trees,
        coalesce(latest_list.listed_as_of > last_seen.last_seen_as_of and listed.business_key is null, false)
            as is_deleted,
        latest.updated_at,
        latest._source_file,
        latest._row_number
    from latest
    inner join last_seen using (measure_id)
    cross join latest_list
    left join listed on listed.business_key = latest.measure_id
),

approvals as (
    select approval_id, project_id, municipality_key from {{ ref('int_funding__approvals') }}
)

select
    m.measure_id,
    m.approval_id,
    approvals.project_id,
    approvals.municipality_key,
    m.measure_type_key,
    m.is_in_designated_area,
    m.designated_area_name,
    m.disconnected_area_m2,
    m.affected_surface_type,
    m.surface_change_m2,
    m.trees,
    m.is_deleted,
    m.updated_at,
    m._source_file,  -- lineage: the extract file and row of the version in force
    m._row_number
from current_measures as m
left join approvals using (approval_id)
