-- Current state of each amending notice (macro funding_current_state: version in force, is_deleted).
with current_amendments as (
    {{ funding_current_state('amendments', 'amendment_id') }}
)

select
    amendment_id,
    approval_id,
    amendment_no,
    notice_date,
    approved_eur,
    is_deleted,
    updated_at
from current_amendments
