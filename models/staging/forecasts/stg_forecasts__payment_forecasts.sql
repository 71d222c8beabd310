-- Grain: one row per accepted project row and forecast payment quarter (submission_id, project_id, payment_period).
select
    submission_id,
    trim(project_id) as project_id,
    payment_period,
    forecast_payment_eur::decimal(14, 2) as forecast_payment_eur
from {{ source('raw_forecasts', 'forecasts__payment_forecasts') }}
