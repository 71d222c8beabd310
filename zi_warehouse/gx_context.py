"""The process's one Great Expectations context and the pandas batch definitions on it.

Its user is the marts' quality suites (zi_warehouse/quality/suites.py). The forecast workbooks' row rules
no longer run GX (issue 20: vectorised in zi_warehouse/forecasts/validation.py); the former suite is kept
only as the tests' reference (tests/forecast_rules_reference.py, on this context too). A context is
ephemeral (nothing written to disk), quiet (no progress bars, GX warnings only) and costs about half a
second to create, so it is made once per process.
"""

from __future__ import annotations

import logging
from functools import cache, lru_cache


@lru_cache(maxsize=1)
def context():
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = {"globally": False, "metric_calculations": False}
    return ctx


@cache
def pandas_batch_definition(source: str):
    """A whole-dataframe batch definition on the pandas data source ``source`` (one per user)."""
    return (
        context()
        .data_sources.add_pandas(source)
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("all")
    )
