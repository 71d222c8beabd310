{% snapshot snap_funding__application_status %}
{#- Timestamp strategy on updated_at: dbt_valid_from is the change time in the funding database, not the
    time of the dbt run. Deleted applications leave the select, hard_deletes invalidates them. -#}
{{ config(
    target_schema='snapshots',
    unique_key='application_id',
    strategy='timestamp',
    updated_at='updated_at',
    hard_deletes='invalidate',
    tags=['funding'],
) }}
select application_id, project_id, municipality_key, status_key, updated_at
from {{ ref('int_funding__applications') }}
where not is_deleted
{% endsnapshot %}
