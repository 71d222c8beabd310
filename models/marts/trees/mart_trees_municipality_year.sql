-- Grain: one row per municipality, year, tree source and species group. Sources: 'campaign' (RVR
-- Klimabäume distributions), 'register' (municipal tree registers, by planting year) and
-- 'funded_measures' (trees of completed funded measures, in their completion year).
with trees as (
    select municipality_key, year, source as tree_source, species_group, trees
    from {{ ref('int_trees__municipality_year') }}
    union all
    select municipality_key, year(completion_date), 'funded_measures', 'mixed', sum(trees)
    from {{ ref('int_measures__funded') }}
    where completion_date is not null and trees > 0
    group by all
)

select
    t.municipality_key,
    m.municipality_name,
    t.year::integer as year,
    t.tree_source,
    coalesce(t.species_group, 'unknown') as species_group,
    sum(t.trees)::bigint as trees,
    {{ var('campaign_tree_target') }}::bigint as campaign_target_trees,
    {{ var('regional_tree_aspiration') }}::bigint as regional_aspiration_trees
from trees as t
inner join {{ ref('municipalities') }} as m using (municipality_key)
group by all
order by t.municipality_key, year, t.tree_source, species_group
