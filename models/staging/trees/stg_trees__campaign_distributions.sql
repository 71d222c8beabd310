-- Grain: one row per row of a campaign distribution list (_source_file, _row_number): one distribution
-- point and species group. campaign_key names the campaign by month of distribution
-- ('klimabaeume_2021-10' = the 10,000 fruit trees of 30.10.2021; 'klimabaeume_2021-04' = the April pilot).
select
    'klimabaeume_' || strftime(distribution_date, '%Y-%m') as campaign_key,
    trim(distribution_point) as distribution_point,
    municipality_key,
    species_group,
    trim(species_as_delivered) as species_as_delivered,
    cast(trees as bigint) as trees,
    cast(trees_unclaimed as bigint) as trees_unclaimed,
    cast(trees - trees_unclaimed as bigint) as trees_claimed,
    distribution_date,
    year(distribution_date) as distribution_year,
    longitude,
    latitude,
    _source_file,
    _row_number
from {{ source('raw_trees', 'trees__campaign_distributions') }}
