-- Grain: one row per eligible measure type (FöRL KRiS). The water-balance effect: which surface element
-- the measure changes and into what; evaporation shares at the region's median long-term precipitation.
with factors as (
    select
        element_type,
        median(evaporation_share_v) as evaporation_share_v,
        median(runoff_share_a) as runoff_share_a
    from {{ ref('int_water_balance__factors') }}
    group by element_type
),

elements as (
    select element_type, element_label_de, element_kind from {{ ref('surface_types') }}
)

select
    t.measure_type_key,
    t.measure_type_label_de,
    t.description_de,
    t.disconnects_runoff,
    t.surface_before as surface_before_type,
    eb.element_label_de as surface_before_label_de,
    t.surface_after as surface_after_type,
    ea.element_label_de as surface_after_label_de,
    case
        when t.surface_after is null then 'none'
        when ea.element_kind = 'facility' then 'route_runoff'
        else 'replace_surface'
    end as water_balance_effect,
    fb.evaporation_share_v as evaporation_share_before_v,
    case
        when ea.element_kind = 'facility' then fb.evaporation_share_v + fb.runoff_share_a * fa.evaporation_share_v
        else fa.evaporation_share_v
    end as evaporation_share_after_v
from {{ ref('measure_types') }} as t
left join elements as eb on eb.element_type = t.surface_before
left join elements as ea on ea.element_type = t.surface_after
left join factors as fb on fb.element_type = t.surface_before
left join factors as fa on fa.element_type = t.surface_after
order by t.measure_type_key
