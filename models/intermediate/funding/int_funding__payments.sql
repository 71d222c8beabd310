-- Current state by business key: latest version by updated_at (ties: the later extract); is_deleted when
-- the key is missing from the latest complete key list and was not seen after it (see int_funding__applications).
with occurrences as (
    select * from {{ ref('stg_funding__payments') }}
),

latest as (
    select *
    from occurrences
    qualify row_number() over (
        partition by payment_id order by updated_at desc, extract_as_of desc, _source_file desc
    ) = 1
),

last_seen as (
    select payment_id, max(extract_as_of) as last_seen_as_of
    from occurrences
    group by payment_id
),

key_lists as (
    select business_key, extract_as_of from {{ ref('stg_funding__key_lists') }} where entity = 'payments'
),

latest_list as (
    select max(extract_as_of) as listed_as_of from key_lists
),

listed as (
    select distinct business_key from key_lists where extract_as_of = (select listed_as_of from latest_list)
),

current_payments as (
    select
        latest.payment_id,
        latest.approval_id,
        latest.paid_on,
        latest.amount_eur,
        coalesce(latest_list.listed_as_of > last_seen.last_seen_as_of and listed.business_key is null, false)
            as is_deleted,
        latest.updated_at
    from latest
    inner join last_seen using (payment_id)
    cross join latest_list
    left join listed on listed.business_key = latest.payment_id
),

approvals as (
    select approval_id, project_id, municipality_key from {{ ref('int_funding__approvals') }}
)

select
    p.payment_id,
    p.approval_id,
    approvals.project_id,
    approvals.municipality_key,
    p.paid_on,
    p.amount_eur,
    p.is_deleted,
    p.updated_at
from current_payments as p
left join approvals using (approval_id)
