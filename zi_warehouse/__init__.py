"""ZI Warehouse: plain-Python extraction, validation, demo data and publishing (no Dagster imports here)."""
