-- Grain: one row per tree of a municipal tree register (_source_file, _row_number); only trees that
-- passed the plausibility checks (docs/domain.md#tree-registers; inside the municipality's boundary) reach the raw
-- table. species_group maps the species to
-- the campaign's groups (apple, pear, cherry, plum) or 'other'; the botanical name decides when present.
with trees as (
    select
        *,
        lower(trim(species_botanical)) as botanical,
        lower(trim(species_german)) as german
    from {{ source('raw_trees', 'trees__register_trees') }}
)

select
    municipality_key,
    trim(tree_number) as tree_number,
    tree_key,
    trim(species_botanical) as species_botanical,
    trim(species_german) as species_german,
    nullif(split_part(trim(species_botanical), ' ', 1), '') as genus,
    case
        when botanical is not null
            then
                case
                    when botanical like 'malus%' then 'apple'
                    when botanical like 'pyrus%' then 'pear'
                    when botanical like 'prunus avium%' or botanical like 'prunus cerasus%' then 'cherry'
                    when botanical like 'prunus domestica%' or botanical like 'prunus cerasifera%' then 'plum'
                    else 'other'
                end
        when german like '%apfel%' then 'apple'
        when german like '%birne%' then 'pear'
        when german like '%kirsche%' and german not like '%lorbeer%' then 'cherry'
        when german like '%pflaume%' or german like '%zwetsch%' or german like '%mirabelle%' then 'plum'
        else 'other'
    end as species_group,
    cast(planting_year as integer) as planting_year,
    trunk_circumference_cm,
    crown_diameter_m,
    height_m,
    nullif(trim(district_name), '') as district_name,
    nullif(trim(street), '') as street,
    nullif(trim(status), '') as status,
    source_crs,
    easting_m,
    northing_m,
    longitude,
    latitude,
    distance_outside_boundary_m,
    _source_file,
    _row_number
from trees
