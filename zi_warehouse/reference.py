"""Reference data shared by every reader: municipalities and their aliases, measure types, statuses, the
accepted spellings of the template's other coded values, and the German texts of every rule the code reports.

The CSVs in ``seeds/`` are the single source (dbt loads the same files as seeds); this module reads them
for the Python side, so a spelling a coordinator uses is matched the same way everywhere.
"""

from __future__ import annotations

import csv
import fnmatch
import re
import unicodedata
from dataclasses import dataclass
from functools import cache

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


@cache
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


@cache
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


@cache
def measure_types() -> tuple[dict, ...]:
    return tuple(_read("measure_types.csv"))


@cache
def project_statuses() -> tuple[dict, ...]:
    return tuple(_read("project_statuses.csv"))


#: The code lists of the forecast template whose values people spell in their own words (the municipality's
#: spellings are ``municipality_aliases.csv``).
CODE_LISTS = ("status", "measure_type", "surface_type", "yes_no")


@cache
def coded_value_spellings() -> dict[str, dict[str, str]]:
    """code list -> {normalised spelling: value key}, from ``seeds/coded_value_spellings.csv``.

    The list's own labels and keys are not in the seed; whoever owns the list adds them (the forecast reader).
    """
    out: dict[str, dict[str, str]] = {c: {} for c in CODE_LISTS}
    for row in _read("coded_value_spellings.csv"):
        out[row["code_list"]][normalise_name(row["spelling"])] = row["value_key"]
    return out


# --- rule texts (seeds/rule_texts.csv, documented in seeds/_reference__seeds.yml) ------------------------------
#: Where a rule key appears: a row's reason in raw.rejected_rows, a check_name of mart_data_quality, or the
#: name of a Dagster asset check.
RULE_KINDS = ("rejection", "quality_check", "asset_check")
#: Who has to act on a rule.
AUDIENCES = ("coordinator", "data_team", "controller")


@dataclass(frozen=True)
class RuleText:
    rule_key: str  # exact key, or a pattern with * (quality_check / asset_check only)
    kind: str
    source_family: str | None  # None: every family
    label_de: str
    explanation_de: str
    audience: str

    @property
    def is_pattern(self) -> bool:
        return "*" in self.rule_key


@cache
def rule_texts() -> tuple[RuleText, ...]:
    return tuple(
        RuleText(
            r["rule_key"], r["kind"], r["source_family"] or None, r["label_de"], r["explanation_de"], r["audience"]
        )
        for r in _read("rule_texts.csv")
    )


def rule_text(rule_key: str, kind: str = "rejection", source_family: str | None = None) -> RuleText | None:
    """The German texts of a rule key as the code emits it, or None if the table has none.

    A row for ``source_family`` wins over the family-independent row. Generated check names (mart suites,
    dbt tests) match pattern rows (``*``); an exact key wins, otherwise the pattern with the most fixed
    characters. Rejection rules are never patterns.
    """
    if kind not in RULE_KINDS:
        raise ValueError(f"kind must be one of {RULE_KINDS}: {kind}")
    rows = [r for r in rule_texts() if r.kind == kind and r.source_family in (source_family, None)]
    exact = [r for r in rows if not r.is_pattern and r.rule_key == rule_key]
    if exact:
        return min(exact, key=lambda r: r.source_family is None)  # the family's own row first
    matches = [r for r in rows if r.is_pattern and fnmatch.fnmatchcase(rule_key, r.rule_key)]
    if not matches:
        return None
    return max(matches, key=lambda r: (len(r.rule_key.replace("*", "")), r.source_family is not None))
