"""Reference data shared by every reader: municipalities and their aliases, measure types, statuses.

The CSVs in ``seeds/`` are the single source (dbt loads the same files as seeds); this module reads them
for the Python side, so a spelling a coordinator uses is matched the same way everywhere.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from zi_warehouse.config import SEEDS_DIR


@dataclass(frozen=True)
class Municipality:
    key: str
    name: str
    district: str
    population_2020: int
    area_km2: float
    is_zi_member: bool


def _read(name: str) -> list[dict]:
    with open(SEEDS_DIR / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=None)
def municipalities() -> tuple[Municipality, ...]:
    return tuple(
        Municipality(
            key=r["municipality_key"],
            name=r["municipality_name"],
            district=r["district"],
            population_2020=int(r["population_2020"]),
            area_km2=float(r["area_km2"]),
            is_zi_member=r["is_zi_member"] == "true",
        )
        for r in _read("municipalities.csv")
    )


def municipality_by_key() -> dict[str, Municipality]:
    return {m.key: m for m in municipalities()}


def normalise_name(text: str) -> str:
    """Fold case, umlauts, punctuation and spacing so 'Mülheim a.d. Ruhr ' and 'MUELHEIM A.D. RUHR' agree."""
    text = unicodedata.normalize("NFC", str(text)).strip().casefold()
    text = text.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return " ".join(text.split())


@lru_cache(maxsize=None)
def _alias_index() -> dict[str, str]:
    index = {normalise_name(m.name): m.key for m in municipalities()}
    index.update({normalise_name(m.key): m.key for m in municipalities()})
    for row in _read("municipality_aliases.csv"):
        index[normalise_name(row["alias"])] = row["municipality_key"]
    return index


def match_municipality(text: object) -> str | None:
    """The municipality key for a name as people write it, or None (never a guess)."""
    if text is None:
        return None
    return _alias_index().get(normalise_name(str(text)))


@lru_cache(maxsize=None)
def measure_types() -> tuple[dict, ...]:
    return tuple(_read("measure_types.csv"))


@lru_cache(maxsize=None)
def project_statuses() -> tuple[dict, ...]:
    return tuple(_read("project_statuses.csv"))
