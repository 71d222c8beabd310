-- Grain: one row per funded measure. Its effect on the two KPIs (docs/domain.md#verdunstungsrate):
-- disconnected area, and the change of Σ area·v: a measure that replaces a surface (green roof,
-- unsealing) changes v on its area from the old element's to the new one's; a measure that routes runoff
-- into a facility (swale, trench, tree trench) lets the facility evaporate its share of that runoff.
with factors as (
    select municipality_key, element_type, runoff_share_a, evaporation_share_v
    from {{ ref('int_water_balance__factors') }}
)
select
    m.measure_id,
    m.municipality_key,
    coalesce(m.is_in_designated_area, false) as is_in_designated_area,
    m.status_key,
    m.notice_date,
    m.completion_date,
    coalesce(m.disconnected_area_m2, 0) as disconnected_area_m2,
    coalesce(
        case
            when e.element_kind = 'facility'
                then m.surface_change_m2 * fb.runoff_share_a * fa.evaporation_share_v
            else m.surface_change_m2 * (fa.evaporation_share_v - fb.evaporation_share_v)
        end,
        0
    ) as evaporation_weighted_change_m2
from {{ ref('int_measures__funded') }} as m
left join {{ ref('surface_types') }} as e on e.element_type = m.surface_after_type
left join factors as fb on fb.municipality_key = m.municipality_key and fb.element_type = m.affected_surface_type
left join factors as fa on fa.municipality_key = m.municipality_key and fa.element_type = m.surface_after_type
where m.status_key not in ('withdrawn', 'rejected')
