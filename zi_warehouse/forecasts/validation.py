"""The row rules of parsed forecast rows: allowed values, ranges and cross-field rules, run on whole columns.

Runs once per batch of files on the columns of all parsed rows (numpy and pandas column operations, no
Python loop over the rows); the position in the batch attributes every failure to its file and row. Each
rule carries a stable rule name (its German label and explanation are in ``seeds/rule_texts.csv``), the
column reported to the sender and a German message; type errors were caught earlier while parsing
(``parsing.py``). Until issue 20 these rules ran as a Great Expectations suite, whose fixed cost (0.3-1 s
per run plus the import) was most of the ingest's time beyond reading; ``tests/forecast_rules_reference.py``
keeps that suite and ``tests/test_forecast_rules_equivalence.py`` shows both reject the same rows with the
same values and messages. Great Expectations stays on the marts' quality suites (``zi_warehouse/quality/``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa

from zi_warehouse.forecasts.template import SURFACE_TYPES
from zi_warehouse.german import format_date, format_number
from zi_warehouse.reference import measure_types, municipality_by_key, project_statuses

#: Funding rate limits (docs/domain.md#funding-rates): up to 100 % for municipal owners; the workbook does not say who
#: owns a project, so the upper limit is the municipal one (private owners' 90 % is checked on approval).
MAX_FUNDING_RATE = 1.0
#: Planning dates outside this window are typing errors (the programme runs 2020-2030, construction
#: may start a few years before or finish after).
DATE_MIN, DATE_MAX = "2014-01-01", "2040-12-31"
#: A single measure above this is a typing error (the whole programme is 250 Mio EUR).
MAX_TOTAL_COST_EUR = 50_000_000
EMAIL_REGEX = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"


@dataclass(frozen=True)
class Check:
    """What a row must satisfy, on the checked frame's columns. A missing value (None, NaN) passes: whether
    a value is required is decided while parsing (rule ``required``).

    kind: ``in_set`` (``column`` in ``values``), ``equal`` (``column`` = ``other``), ``at_least``
    (``column`` >= ``other``; both pair kinds skip a row missing either value), ``between`` (``min_value`` <=
    ``column`` <= ``max_value``, either bound optional, ``strict_min`` for >), ``matches`` (``regex`` found
    in the value's text).
    """

    kind: str
    column: str
    other: str | None = None
    values: tuple = ()
    min_value: float | None = None
    max_value: float | None = None
    strict_min: bool = False
    regex: str | None = None

    def failing(self, frame: dict) -> np.ndarray:
        """A boolean mask of the rows that break the check."""
        col = frame[self.column]
        if self.kind in ("equal", "at_least"):
            other = frame[self.other]
            present = _present(col) & _present(other)
            ok = (col == other) if self.kind == "equal" else (col >= other)
            return present & ~np.asarray(ok, dtype=bool)
        if self.kind == "between":
            with np.errstate(invalid="ignore"):
                ok = np.ones(len(col), dtype=bool)
                if self.min_value is not None:
                    ok &= (col > self.min_value) if self.strict_min else (col >= self.min_value)
                if self.max_value is not None:
                    ok &= col <= self.max_value
            return ~np.isnan(col) & ~ok
        present = _present(col)
        if self.kind == "in_set":
            return present & ~col.isin(self.values).to_numpy()
        if self.kind == "matches":
            fails = np.zeros(len(col), dtype=bool)
            # the same text conversion and search as pandas' str.contains on the present values
            fails[present] = ~col[present].astype(str).str.contains(self.regex).to_numpy(dtype=bool)
            return fails
        raise ValueError(self.kind)


def _present(col) -> np.ndarray:
    return ~np.isnan(col) if isinstance(col, np.ndarray) else col.notna().to_numpy()


def in_set(column: str, values) -> Check:
    return Check("in_set", column, values=tuple(values))


def between(
    column: str, min_value: float | None = None, max_value: float | None = None, strict_min: bool = False
) -> Check:
    return Check("between", column, min_value=min_value, max_value=max_value, strict_min=strict_min)


@dataclass(frozen=True)
class Rule:
    rule: str
    column: str  # canonical column reported in the rejection
    message_de: str  # may use {value}
    check: Check
    #: Rules whose failure on the same row makes this one a follow-on error, not reported: a comparison with a value
    #: the sender must correct anyway says nothing (and an unknown municipality is no "other municipality").
    unless_failed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failure:
    index: int  # position in the validated batch
    rule: str
    column: str
    value: object
    message_de: str


@lru_cache(maxsize=1)
def rules() -> tuple[Rule, ...]:
    """The rules, built once (the code lists are seeds), in the order a row's failures are listed to its
    sender: the municipality, the rules comparing two columns, then column by column (the order of the
    Great Expectations run before issue 20, which grouped its results by column)."""
    muni = sorted(municipality_by_key())
    measures = [m["measure_type_key"] for m in measure_types()]
    statuses = [s["status_key"] for s in project_statuses()]
    return (
        Rule(
            "known_municipality",
            "municipality",
            "Kommune „{value}“ ist unbekannt; bitte eine der Kommunen aus der Auswahlliste der Vorlage wählen.",
            in_set("municipality_key", muni),
        ),
        Rule(
            "municipality_matches_submission",
            "municipality",
            "Die Zeile nennt eine andere Kommune ({value}) als die Meldung; bitte je Kommune eine eigene Datei senden.",
            Check("equal", "municipality_key", other="submission_municipality_key"),
            unless_failed=("known_municipality",),
        ),
        Rule(
            "requested_le_total_cost",
            "requested_funding_eur",
            "Beantragte Förderung ({value}) ist höher als die Gesamtkosten; bitte Beträge prüfen.",
            Check("at_least", "total_cost_eur", other="requested_funding_eur"),
            unless_failed=("total_cost_range",),
        ),
        # Dates as day numbers (DAY_COLUMNS): whole numeric columns.
        Rule(
            "completion_after_start",
            "planned_completion_date",
            "Geplante Fertigstellung ({value}) liegt vor dem geplanten Baubeginn.",
            Check("at_least", "_completion_day", other="_start_day"),
        ),
        Rule(
            "known_measure_type",
            "measure_type",
            "Maßnahmentyp „{value}“ ist nicht förderfähig bzw. unbekannt. Erlaubt: "
            + _allowed(m["measure_type_label_de"] for m in measure_types())
            + ".",
            in_set("measure_type_key", measures),
        ),
        Rule(
            "known_status",
            "status",
            "Status „{value}“ ist unbekannt. Erlaubt: "
            + _allowed(s["status_label_de"] for s in project_statuses())
            + ".",
            in_set("status_key", statuses),
        ),
        Rule(
            "known_surface_type",
            "affected_surface_type",
            "Oberfläche „{value}“ ist unbekannt. Erlaubt: " + _allowed(SURFACE_TYPES.values()) + ".",
            in_set("affected_surface_type", SURFACE_TYPES),
        ),
        Rule(
            "total_cost_range",
            "total_cost_eur",
            "Gesamtkosten {value} EUR sind nicht plausibel (größer 0 und höchstens 50 Mio. EUR).",
            between("total_cost_eur", 0, MAX_TOTAL_COST_EUR, strict_min=True),
        ),
        Rule(
            "requested_funding_non_negative",
            "requested_funding_eur",
            "Beantragte Förderung {value} EUR darf nicht negativ sein.",
            between("requested_funding_eur", 0),
        ),
        Rule(
            "funding_rate_within_limits",
            "funding_rate",
            "Förderquote {value} liegt außerhalb der Programmgrenzen (über 0 % bis höchstens 100 %).",
            between("funding_rate", 0, MAX_FUNDING_RATE, strict_min=True),
        ),
        Rule(
            "date_plausible",
            "planned_start_date",
            "Geplanter Baubeginn {value} ist nicht plausibel (2014 bis 2040).",
            between("_start_day", _day(DATE_MIN), _day(DATE_MAX)),
        ),
        Rule(
            "date_plausible",
            "planned_completion_date",
            "Geplante Fertigstellung {value} ist nicht plausibel (2014 bis 2040).",
            between("_completion_day", _day(DATE_MIN), _day(DATE_MAX)),
        ),
        Rule(
            "area_non_negative",
            "expected_disconnected_area_m2",
            "Abgekoppelte Fläche {value} m² darf nicht negativ sein.",
            between("expected_disconnected_area_m2", 0),
        ),
        Rule(
            "area_non_negative",
            "surface_change_m2",
            "Veränderte Fläche {value} m² darf nicht negativ sein.",
            between("surface_change_m2", 0),
        ),
        Rule(
            "trees_non_negative",
            "expected_trees",
            "Anzahl Bäume {value} darf nicht negativ sein.",
            between("expected_trees", 0),
        ),
        Rule(
            "trees_whole_number",
            "expected_trees",
            "Anzahl Bäume {value} muss eine ganze Zahl sein.",
            between("_trees_fraction", 0, 0),
        ),
        Rule(
            "payment_non_negative",
            "forecast_payment_eur",
            "Mittelabruf {value} EUR darf nicht negativ sein.",
            between("_min_payment_eur", 0),
        ),
        Rule(
            "contact_email_format",
            "contact_email",
            "E-Mail-Adresse der Ansprechperson ist ungültig.",
            Check("matches", "contact_email", regex=EMAIL_REGEX),
        ),
    )


def _allowed(labels) -> str:
    """The drop-down labels of a code list, for a message ("Erlaubt: Projektidee, Bewilligt, ...")."""
    return ", ".join(labels).replace("{", "{{").replace("}", "}}")  # the message is formatted with {value}


COLUMNS = [
    "municipality_key",
    "submission_municipality_key",
    "measure_type_key",
    "status_key",
    "affected_surface_type",
    "total_cost_eur",
    "requested_funding_eur",
    "funding_rate",
    "planned_start_date",
    "planned_completion_date",
    "expected_disconnected_area_m2",
    "surface_change_m2",
    "expected_trees",
    "contact_email",
]
_TEXT_COLUMNS = (
    "municipality_key",
    "submission_municipality_key",
    "measure_type_key",
    "status_key",
    "affected_surface_type",
    "contact_email",
)
_NUMBER_COLUMNS = (
    "total_cost_eur",
    "requested_funding_eur",
    "funding_rate",
    "expected_disconnected_area_m2",
    "surface_change_m2",
    "expected_trees",
    "_min_payment_eur",
)
#: date column -> the helper column the rules check (days since 1970-01-01).
DAY_COLUMNS = {"planned_start_date": "_start_day", "planned_completion_date": "_completion_day"}
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def _day(value: str | dt.date) -> float:
    day = dt.date.fromisoformat(value) if isinstance(value, str) else value
    return float(day.toordinal() - _EPOCH_ORDINAL)


def to_frame(columns: dict[str, list]) -> dict:
    """The checked columns, built column by column: text as pandas object Series, numbers and dates (as
    day numbers) as float64 arrays with NaN for a missing value, and the trees' fractional part.

    ``columns`` holds one list per name in COLUMNS plus ``_min_payment_eur``, all of the same length (one
    entry per parsed row of the batch).
    """
    frame: dict = {c: pd.Series(columns[c], dtype=object) for c in _TEXT_COLUMNS}
    for c in _NUMBER_COLUMNS:
        frame[c] = np.array(columns[c], dtype=np.float64)  # None becomes NaN
    for c, helper in DAY_COLUMNS.items():
        # Arrow converts date objects in C (numpy's datetime64 conversion took 40x as long); a datetime
        # counts as its day, a missing date becomes NaN.
        days = pa.array(columns[c], pa.date32()).cast(pa.int32())
        frame[helper] = days.to_numpy(zero_copy_only=False).astype(np.float64)
    trees = frame["expected_trees"]
    with np.errstate(invalid="ignore"):
        frame["_trees_fraction"] = trees - np.floor(trees)
    return frame


def validate(columns: dict[str, list]) -> list[Failure]:
    """Check all parsed rows of a batch; every failing (row, rule), rule by rule in ``rules()`` order and
    rows in batch order within a rule."""
    if not columns or not columns["municipality_key"]:
        return []
    frame = to_frame(columns)
    failures = []
    for rule in rules():
        for i in np.flatnonzero(rule.check.failing(frame)).tolist():
            value = display(columns, i, rule)
            failures.append(Failure(i, rule.rule, rule.column, value, rule.message_de.format(value=value)))
    return without_follow_ons(failures)


def without_follow_ons(failures: list[Failure]) -> list[Failure]:
    """``failures`` without those of a rule whose ``unless_failed`` rule failed on the same row (order kept)."""
    follow_on = {r.rule: set(r.unless_failed) for r in rules() if r.unless_failed}
    failed: dict[int, set[str]] = {}
    for f in failures:
        failed.setdefault(f.index, set()).add(f.rule)
    return [f for f in failures if not follow_on.get(f.rule, set()) & failed[f.index]]


def display(columns: dict[str, list], i: int, rule: Rule) -> object:
    """The value to show the sender: the column the rule reports, formatted German-style."""
    column = {
        "municipality": "municipality_key",
        "measure_type": "measure_type_key",
        "status": "status_key",
        "forecast_payment_eur": "_min_payment_eur",
    }.get(rule.column, rule.column)
    value = columns[column][i]
    if column == "municipality_key" and value in municipality_by_key():
        return municipality_by_key()[value].name  # the name, as the sender wrote it in the template
    if isinstance(value, dt.date):
        return format_date(value)
    if isinstance(value, float):
        if rule.rule == "funding_rate_within_limits":
            return f"{value * 100:.4g} %".replace(".", ",")
        if column.endswith("_eur"):
            return format_number(value, 2)  # an amount, with its cents
        # a count or an area with the decimals it was typed with: -3, 2,5 and 12,75, not -3,00 and 2,50
        return format_number(value, next((d for d in range(4) if round(value, d) == value), 4))
    return value
