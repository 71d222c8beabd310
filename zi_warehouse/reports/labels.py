"""German labels for the internal keys the reports would otherwise show: source families, kinds and
severities of checks, the sources a check looked at, rejection rules and checks.

What belongs here: turning a key of the marts (``forecasts``, ``reconciliation``, ``error``,
``funding×forecasts``, a rule or check name) into the words a controller reads. Both reports (quality and
quarterly) use these functions, so a key is labelled the same way everywhere. Rules and checks are labelled
from the rule texts table (``seeds/rule_texts.csv`` through ``reference.rule_text``).
"""

from __future__ import annotations

from zi_warehouse import reference

FAMILY_LABELS = {
    "forecasts": "Prognosen",
    "funding": "Förderdaten",
    "climate": "Klimadaten",
    "trees": "Bäume",
    "surfaces": "Flächen",
}
CHECK_KIND_LABELS = {
    "suite": "Prüfung einer Mart",
    "reconciliation": "Abgleich zwischen Quellen",
    "freshness": "Aktualität",
}
SEVERITY_LABELS = {"error": "Fehler (blockierend)", "warn": "Warnung"}
SEVERITY_SHORT = {"error": "Fehler", "warn": "Warnung"}
OUTCOME_LABELS = {"passed": "bestanden", "failed": "fehlgeschlagen"}
#: How mart_data_quality writes a pair of sources that a reconciliation compares ("funding×forecasts").
PAIR_SEPARATOR = "×"


def family_label(family: str | None) -> str:
    if not family:
        return "–"
    return FAMILY_LABELS.get(family, family)


def source_label(source: str | None) -> str:
    """What a check looked at: a source family ('Prognosen'), a pair ('Förderdaten × Prognosen') or a mart
    (its public table name, which controllers query)."""
    if not source:
        return "–"
    return f" {PAIR_SEPARATOR} ".join(family_label(part) for part in source.split(PAIR_SEPARATOR))


def check_kind_label(kind: str) -> str:
    return CHECK_KIND_LABELS.get(kind, kind)


def severity_label(severity: str, short: bool = False) -> str:
    return (SEVERITY_SHORT if short else SEVERITY_LABELS).get(severity, severity)


def rule_label(family: str | None, rule: str) -> str:
    """The German label of a rejection rule of ``family`` (the key itself only if the table lacks it, which
    tests/test_rule_texts.py does not let happen)."""
    text = reference.rule_text(rule, "rejection", family)
    return text.label_de if text else rule


def check_label(check_name: str, description_de: str | None = None) -> str:
    """The German label of a check. A check of its own row in the rule texts ("Auszahlung über
    Bewilligung") is named by it; a generated one (a mart suite's ``<mart>.<column>_non_negative`` matches
    a pattern row such as "Negativer Wert") also by its own description, which names the column."""
    text = reference.rule_text(check_name, "quality_check")
    if text is None:
        return description_de or check_name
    if text.is_pattern and description_de:
        return f"{text.label_de}: {description_de}"
    return text.label_de


#: Dagster checks on mart_data_quality named ``<kind>_<rule>`` summarise that one rule of the mart
#: (``<kind>.<rule>``, dagster_zi/quality.py check_groups); they are labelled by the rule's own text.
_RULE_CHECK_KINDS = ("reconciliation", "freshness")


def _asset_check_text(check_name: str) -> reference.RuleText | None:
    kind, _, rule = check_name.partition("_")
    if kind in _RULE_CHECK_KINDS and (text := reference.rule_text(f"{kind}.{rule}", "quality_check")):
        return text
    return reference.rule_text(check_name, "asset_check")


def asset_check_label(check_name: str, description: str | None = None) -> str:
    """The German label of a Dagster asset check (funding, trees, climate, dbt tests, the marts' rules), the
    same words the quality report uses for the rule."""
    text = _asset_check_text(check_name)
    return text.label_de if text else (description or check_name)


def asset_check_explanation(check_name: str) -> str | None:
    text = _asset_check_text(check_name)
    return text.explanation_de if text else None


def check_explanation(check_name: str) -> str | None:
    """What a failed check means and what to do, from the rule texts table."""
    text = reference.rule_text(check_name, "quality_check")
    return text.explanation_de if text else None
