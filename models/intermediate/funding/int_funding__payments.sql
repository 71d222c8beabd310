-- Current state of each payment (macro funding_current_state: version in force, is_deleted).
with current_payments as (
    {{ funding_current_state('payments', 'payment_id') }}
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
