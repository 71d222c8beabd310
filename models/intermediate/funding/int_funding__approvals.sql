-- Current state by business key: latest version by updated_at (ties: the later extract); is_deleted when
-- the key is missing from the latest complete key list and was not seen after it (see int_funding__applications).
with occurrences as (
    select * from {{ ref('stg_funding__approvals') }}
),

latest as (
    select *
    from occurrences
    qualify row_number() over (
        partition by approval_id order by updated_at desc, extract_as_of desc, _source_file desc
    ) = 1
),

last_seen as (
    select approval_id, max(extract_as_of) as last_seen_as_of
    from occurrences
    group by approval_id
),

key_lists as (
    select business_key, extract_as_of from {{ ref('stg_funding__key_lists') }} where entity = 'approvals'
),

latest_list as (
    select max(extract_as_of) as listed_as_of from key_lists
),

listed as (
    select distinct business_key from key_lists where extract_as_of = (select listed_as_of from latest_list)
),

current_approvals as (
    select
        latest.approval_id,
        latest.application_id,
        latest.notice_date,
        latest.approved_eur,
        latest.construction_start_date,
        latest.completion_date,
        coalesce(latest_list.listed_as_of > last_seen.last_seen_as_of and listed.business_key is null, false)
            as is_deleted,
        latest.updated_at
    from latest
    inner join last_seen using (approval_id)
    cross join latest_list
    left join listed on listed.business_key = latest.approval_id
),

amendments as (
    select
        approval_id,
        count(*) as amendment_count,
        arg_max(approved_eur, amendment_no) as amended_eur,
        max(notice_date) as last_amendment_date,
        max(updated_at) as amendments_updated_at
    from {{ ref('int_funding__amendments') }}
    where not is_deleted
    group by approval_id
),

applications as (
    select application_id, project_id, municipality_key, requested_eur from {{ ref('int_funding__applications') }}
)

select
    a.approval_id,
    a.application_id,
    applications.project_id,
    applications.municipality_key,
    a.notice_date,
    a.approved_eur as initial_approved_eur,
    coalesce(amendments.amended_eur, a.approved_eur) as approved_eur,
    coalesce(amendments.amendment_count, 0) as amendment_count,
    amendments.last_amendment_date,
    -- flagged, not corrected: an amending notice may legitimately grant more than was requested
    coalesce(amendments.amended_eur, a.approved_eur) > applications.requested_eur as is_above_requested,
    a.construction_start_date,
    a.completion_date,
    case
        when a.completion_date is not null then 'completed'
        when a.construction_start_date is not null then 'in_construction'
        else 'approved'
    end as approval_status_key,
    a.is_deleted,
    greatest(a.updated_at, coalesce(amendments.amendments_updated_at, a.updated_at)) as updated_at
from current_approvals as a
left join amendments using (approval_id)
left join applications using (application_id)
