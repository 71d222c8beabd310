"""The process's one Great Expectations context and the pandas batch definitions on it.

Both users of GX share it: the forecast workbooks' batch validation (zi_warehouse/forecasts/validation.py)
and the marts' quality suites (zi_warehouse/quality/suites.py). A context is ephemeral (nothing written to
disk), quiet (no progress bars, GX warnings only) and costs about half a second to create, so it is made
once per process; ``zi build`` runs both users in one process.
"""

from __future__ import annotations

import logging
from functools import lru_cache


@lru_cache(maxsize=1)
def context():
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = {"globally": False, "metric_calculations": False}
    return ctx


@lru_cache(maxsize=None)
def pandas_batch_definition(source: str):
    """A whole-dataframe batch definition on the pandas data source ``source`` (one per user)."""
    return context().data_sources.add_pandas(source).add_dataframe_asset("frame").add_batch_definition_whole_dataframe("all")
