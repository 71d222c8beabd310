"""Readers of the source families; each module implements the source contract (docs/architecture.md).

The families themselves are listed once, in ``config.SOURCE_FAMILIES``; family ``<f>`` is read by the module
``zi_warehouse.sources.<f>``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from zi_warehouse.config import SOURCE_FAMILIES


def source_module(family: str) -> ModuleType:
    """The module that reads source family ``family`` (``KeyError`` for a family that is not configured)."""
    if family not in SOURCE_FAMILIES:
        raise KeyError(family)
    return importlib.import_module(f"{__name__}.{family}")


def source_modules() -> list[ModuleType]:
    """Every source module the pipeline ingests, in the order of ``config.SOURCE_FAMILIES``."""
    return [source_module(family) for family in SOURCE_FAMILIES]
