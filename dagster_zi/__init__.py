"""Dagster wiring of the ZI Warehouse: assets, checks, sensors and schedules. Logic lives in zi_warehouse/."""
