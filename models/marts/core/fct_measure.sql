-- Grain: one row per funded measure. The logic lives in int_measures__funded (the KPI models use it too).
select * from {{ ref('int_measures__funded') }}
