"""Demo data generator: one programme truth (``programme.py``) rendered into what each sender sends.

``generate`` writes the whole demo landing area; each writer module renders one source family in its
real format (forecast workbooks, funding-database extracts, DWD archives, tree records, parcel surfaces).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from zi_warehouse.config import SOURCE_FAMILIES
from zi_warehouse.demo import climate, forecast_workbooks, funding_extracts, surfaces, trees
from zi_warehouse.demo.programme import build_programme

DEFAULT_SCALE = 0.05
DEFAULT_SEED = 7

#: The writer of each source family (``config.SOURCE_FAMILIES``); each has ``write(landing_dir, programme, seed)``
#: and writes into ``landing_dir/<family>/``.
WRITERS = {
    "forecasts": forecast_workbooks,
    "funding": funding_extracts,
    "climate": climate,
    "trees": trees,
    "surfaces": surfaces,
}


def generate(
    landing_dir: Path,
    scale: float = DEFAULT_SCALE,
    seed: int = DEFAULT_SEED,
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, list[Path]]:
    programme = build_programme(scale=scale, seed=seed)
    written: dict[str, list[Path]] = {}
    for family in SOURCE_FAMILIES:
        progress(f"Demo-Daten: {family}")
        written[family] = WRITERS[family].write(landing_dir, programme, seed)
    return written
