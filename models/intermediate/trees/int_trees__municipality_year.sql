-- Grain: one row per municipality, year, source, campaign and species group.
--   source 'campaign': trees handed out by the RVR "Klimabäume" campaign (incl. unclaimed ones, which were
--     planted at schools and playgrounds), year = distribution year; campaign_key tells campaigns apart.
--   source 'register': trees in municipal tree registers by planting year (year NULL = unknown), the stock
--     on the register's delivery date; campaign_key NULL.
with campaign as (
    select
        municipality_key,
        distribution_year as year,
        'campaign' as source,
        campaign_key,
        species_group,
        sum(trees) as trees,
        sum(trees_unclaimed) as trees_unclaimed
    from {{ ref('stg_trees__campaign_distributions') }}
    group by all
),

register as (
    select
        municipality_key,
        planting_year as year,
        'register' as source,
        cast(null as varchar) as campaign_key,
        species_group,
        count(*) as trees,
        cast(null as bigint) as trees_unclaimed
    from {{ ref('stg_trees__register_trees') }}
    group by all
)

select
    municipality_key, year, source, campaign_key, species_group, cast(trees as bigint) as trees,
    cast(trees_unclaimed as bigint) as trees_unclaimed
from campaign
union all
select municipality_key, year, source, campaign_key, species_group, cast(trees as bigint), trees_unclaimed
from register
