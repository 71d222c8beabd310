-- Current state of each measure (macro funding_current_state: version in force, is_deleted).
with current_measures as (
    {{ funding_current_state('measures', 'measure_id') }}
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
