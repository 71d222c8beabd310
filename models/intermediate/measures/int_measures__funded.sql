-- Grain: one row per funded measure (a measure of a grant notice in the funding database); fct_measure publishes it.
-- Approved and paid EUR are the approval's amounts allocated to its measures by changed surface area
-- (equally when no area is given); lineage columns name the extract file and row the measure came from.
with measures as (
    select * from {{ ref('int_funding__measures') }}
    where not is_deleted
),

weights as (
    select
        measure_id,
        case
            when sum(coalesce(surface_change_m2, 0)) over (partition by approval_id) > 0
                then
                    coalesce(surface_change_m2, 0) / sum(coalesce(surface_change_m2, 0)) over (partition by approval_id)
            else 1.0 / count(*) over (partition by approval_id)
        end as allocation_share
    from measures
),

paid as (
    select approval_id, sum(amount_eur) as paid_eur, max(paid_on) as last_paid_on
    from {{ live('int_funding__payments') }}
    group by approval_id
)

select
    m.measure_id,
    m.approval_id,
    ap.application_id,
    m.project_id,
    m.municipality_key,
    mu.municipality_name,
    m.measure_type_key,
    m.is_in_designated_area,
    m.designated_area_name,
    app.status_key,
    app.application_date,
    ap.notice_date,
    ap.construction_start_date,
    ap.completion_date,
    ap.completion_date is not null as is_completed,
    m.disconnected_area_m2,
    m.affected_surface_type,
    t.surface_after as surface_after_type,
    m.surface_change_m2,
    m.trees,
    round(ap.approved_eur * w.allocation_share, 2)::decimal(14, 2) as approved_eur,
    round(coalesce(p.paid_eur, 0) * w.allocation_share, 2)::decimal(14, 2) as paid_eur,
    p.last_paid_on,
    m._source_file as source_file,
    m._row_number as source_row_number
from measures as m
inner join weights as w using (measure_id)
inner join {{ live('int_funding__approvals') }} as ap using (approval_id)
left join {{ ref('int_funding__applications') }} as app on app.application_id = ap.application_id
left join paid as p on p.approval_id = m.approval_id
left join {{ ref('measure_types') }} as t on t.measure_type_key = m.measure_type_key
left join {{ ref('municipalities') }} as mu on mu.municipality_key = m.municipality_key
order by m.measure_id
