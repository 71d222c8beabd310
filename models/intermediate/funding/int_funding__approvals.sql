-- Current state of each approval (macro funding_current_state: version in force, is_deleted).
with current_approvals as (
    {{ funding_current_state('approvals', 'approval_id') }}
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
