"""Grain: one row per municipality and surface/facility element type (municipality_key, element_type).

Long-term water-balance shares a (runoff), g (groundwater recharge) and v (evaporation) from the DWA-M
102-4 regression equations, with each municipality's long-term precipitation P (from its DWD station,
``int_climate__municipality_precipitation``), the configured ETp (dbt var ``etp_mm``) and the equation
edition (dbt var ``water_balance_edition``, also a column).

A Python model on purpose: the equations exist once, in ``zi_warehouse/water_balance.py``, where the
unit tests check them against the worked values in docs/domain.md#worked-values. SQL macros would be a second copy that
could drift. Element types and their standard parameters come from the seed ``surface_types``.
"""

import os
import sys


def _water_balance():
    try:
        from zi_warehouse import water_balance
    except ImportError:  # package not installed: dbt runs from the repository root (dbt_project.yml)
        sys.path.insert(0, os.getcwd())
        from zi_warehouse import water_balance
    return water_balance


def model(dbt, session):
    dbt.config(materialized="table")
    wb = _water_balance()
    # Plain `dbt.config.get("key")` calls: dbt finds the keys a Python model uses by reading its code.
    etp_config = dbt.config.get("etp_mm")
    edition_config = dbt.config.get("water_balance_edition")
    etp_mm = float(etp_config if etp_config not in (None, "") else 590)
    edition = edition_config or wb.DEFAULT_EDITION
    precipitation = dbt.ref("int_climate__municipality_precipitation").to_arrow_table()
    elements = dbt.ref("surface_types").to_arrow_table().to_pylist()

    rows = [
        r
        for r in precipitation.to_pylist()
        if r["municipality_key"] is not None and r["mean_annual_precipitation_mm"] is not None
    ]
    rows.sort(key=lambda r: r["municipality_key"])
    factors = wb.factor_table(
        [r["municipality_key"] for r in rows],
        [float(r["mean_annual_precipitation_mm"]) for r in rows],
        etp_mm,
        edition,
        elements=elements,
    )
    # Where P came from, so a controller can trace each factor to its station and period.
    import pyarrow as pa

    station = {r["municipality_key"]: r for r in rows}
    keys = factors.column("municipality_key").to_pylist()
    factors = factors.append_column(
        "station_id", pa.array([station[k]["station_id"] for k in keys], pa.int64())
    ).append_column("reference_period", pa.array([station[k]["reference_period"] for k in keys], pa.string()))
    labels = {e["element_type"]: e for e in elements}
    element_types = factors.column("element_type").to_pylist()
    factors = factors.append_column(
        "element_label_de", pa.array([labels[t]["element_label_de"] for t in element_types], pa.string())
    ).append_column("element_kind", pa.array([labels[t]["element_kind"] for t in element_types], pa.string()))
    return factors
