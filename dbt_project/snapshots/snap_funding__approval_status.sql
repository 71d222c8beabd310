{% snapshot snap_funding__approval_status %}
{#- Timestamp strategy: updated_at of the approval moves with every amendment, construction start and
    proof of use, so each of them opens a new snapshot row valid from the change time. -#}
{{ config(
    target_schema='snapshots',
    unique_key='approval_id',
    strategy='timestamp',
    updated_at='updated_at',
    hard_deletes='invalidate',
    tags=['funding'],
) }}
select approval_id, application_id, project_id, municipality_key, approval_status_key, approved_eur,
    amendment_count, updated_at
from {{ ref('int_funding__approvals') }}
where not is_deleted
{% endsnapshot %}
