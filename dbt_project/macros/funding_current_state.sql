{#- Current state of one funding entity, merged from every loaded extract (files and database channel).
    Returns a select (for a CTE) of every column of stg_funding__<entity> for the version in force, plus
    is_deleted:
    - version in force: the latest by updated_at; ties go to the later extract (extract_as_of), then to the
      later file name (_source_file), so the same versions give the same result however they were loaded;
    - is_deleted: the key is missing from the latest complete key list of the entity (a full extract or a
      database run, stg_funding__key_lists) and was not delivered after that list. Without any key list
      nothing is deleted. A withdrawn application is a status, not a deletion.
    entity: the staging entity and key-list entity (e.g. 'applications'); key: its business key column. -#}
{% macro funding_current_state(entity, key) -%}
    with occurrences as (
        select * from {{ ref('stg_funding__' ~ entity) }}
    ),

    latest as (
        select *
        from occurrences
        qualify row_number() over (
            partition by {{ key }} order by updated_at desc, extract_as_of desc, _source_file desc
        ) = 1
    ),

    last_seen as (
        select
            {{ key }},
            max(extract_as_of) as last_seen_as_of
        from occurrences
        group by {{ key }}
    ),

    key_lists as (
        select
            business_key,
            extract_as_of
        from {{ ref('stg_funding__key_lists') }}
        where entity = '{{ entity }}'
    ),

    latest_list as (
        select max(extract_as_of) as listed_as_of from key_lists
    ),

    listed as (
        select distinct business_key
        from key_lists
        where extract_as_of = (select listed_as_of from latest_list)
    )

    select
        latest.*,
        coalesce(latest_list.listed_as_of > last_seen.last_seen_as_of and listed.business_key is null, false)
            as is_deleted
    from latest
    inner join last_seen on latest.{{ key }} = last_seen.{{ key }}
    cross join latest_list
    left join listed on latest.{{ key }} = listed.business_key
{%- endmacro %}
