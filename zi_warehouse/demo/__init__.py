"""Demo data generator: one programme truth (``programme.py``) rendered into what each sender sends.

``generate`` writes the whole demo landing area; each writer module renders one source family in its
real format (forecast workbooks, funding-database extracts, DWD archives, tree records, parcel surfaces).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from zi_warehouse.demo.programme import build_programme

DEFAULT_SCALE = 0.05
DEFAULT_SEED = 7

#: (landing subfolder, writer module); each module has ``write(landing_dir, programme, seed)`` and
#: writes into ``landing_dir/<family>/``.
WRITERS = (
    ("forecasts", "zi_warehouse.demo.forecast_workbooks"),
    ("funding", "zi_warehouse.demo.funding_extracts"),
    ("climate", "zi_warehouse.demo.climate"),
    ("trees", "zi_warehouse.demo.trees"),
    ("surfaces", "zi_warehouse.demo.surfaces"),
)


def generate(
    landing_dir: Path,
    scale: float = DEFAULT_SCALE,
    seed: int = DEFAULT_SEED,
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, list[Path]]:
    programme = build_programme(scale=scale, seed=seed)
    written: dict[str, list[Path]] = {}
    for family, module_name in WRITERS:
        progress(f"Demo-Daten: {family}")
        written[family] = importlib.import_module(module_name).write(landing_dir, programme, seed)
    return written


def landing_is_empty(landing_dir: Path) -> bool:
    return not landing_dir.exists() or not any(p.is_file() for p in landing_dir.rglob("*"))
