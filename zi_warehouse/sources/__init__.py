"""Readers of the source families; each module implements the source contract (docs/architecture.md)."""

#: Every source module the pipeline ingests, in the order the ingest assets are listed.
SOURCE_MODULES = (
    "zi_warehouse.sources.forecasts",
    "zi_warehouse.sources.funding",
    "zi_warehouse.sources.climate",
    "zi_warehouse.sources.trees",
    "zi_warehouse.sources.surfaces",
)
