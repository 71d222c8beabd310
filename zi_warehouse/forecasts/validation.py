"""The Great Expectations suite for parsed forecast rows: allowed values, ranges and cross-field rules.

Runs once per batch of files on one pandas DataFrame (a GX run has a fixed cost of 0.3-1 s on this
machine, most of it GX building its metric graph for the 18 expectations, so validating file by file
would dominate the ingest); the row key ``_row_key`` attributes every failure to its row. Each expectation carries a stable rule name and a
German message; type errors were caught earlier while parsing (``parsing.py``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from zi_warehouse import gx_context
from zi_warehouse.reference import measure_types, municipality_by_key, project_statuses
from zi_warehouse.forecasts.template import SURFACE_TYPES

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
class Rule:
    rule: str
    column: str  # canonical column reported in the rejection
    message_de: str  # may use {value}
    expectation: object  # a GX expectation


@dataclass(frozen=True)
class Failure:
    index: int  # position in the validated frame
    rule: str
    column: str
    value: object
    message_de: str


def _rules() -> list[Rule]:
    import great_expectations as gx

    E = gx.expectations
    muni = sorted(municipality_by_key())
    measures = [m["measure_type_key"] for m in measure_types()]
    statuses = [s["status_key"] for s in project_statuses()]
    return [
        Rule("known_municipality", "municipality",
             "Kommune '{value}' ist unbekannt; bitte eine der Kommunen aus der Auswahlliste der Vorlage wählen.",
             E.ExpectColumnValuesToBeInSet(column="municipality_key", value_set=muni)),
        Rule("municipality_matches_submission", "municipality",
             "Die Zeile nennt eine andere Kommune ({value}) als die Meldung; bitte je Kommune eine eigene Datei senden.",
             E.ExpectColumnPairValuesToBeEqual(column_A="municipality_key", column_B="submission_municipality_key",
                                               ignore_row_if="either_value_is_missing")),
        Rule("known_measure_type", "measure_type",
             "Maßnahmentyp '{value}' ist nicht förderfähig bzw. unbekannt. Erlaubt: "
             + _allowed(m["measure_type_label_de"] for m in measure_types()) + ".",
             E.ExpectColumnValuesToBeInSet(column="measure_type_key", value_set=measures)),
        Rule("known_status", "status",
             "Status '{value}' ist unbekannt. Erlaubt: "
             + _allowed(s["status_label_de"] for s in project_statuses()) + ".",
             E.ExpectColumnValuesToBeInSet(column="status_key", value_set=statuses)),
        Rule("known_surface_type", "affected_surface_type",
             "Oberfläche '{value}' ist unbekannt. Erlaubt: " + _allowed(SURFACE_TYPES.values()) + ".",
             E.ExpectColumnValuesToBeInSet(column="affected_surface_type", value_set=list(SURFACE_TYPES))),
        Rule("total_cost_range", "total_cost_eur",
             "Gesamtkosten {value} EUR sind nicht plausibel (größer 0 und höchstens 50 Mio. EUR).",
             E.ExpectColumnValuesToBeBetween(column="total_cost_eur", min_value=0, max_value=MAX_TOTAL_COST_EUR,
                                             strict_min=True)),
        Rule("requested_funding_non_negative", "requested_funding_eur",
             "Beantragte Förderung {value} EUR darf nicht negativ sein.",
             E.ExpectColumnValuesToBeBetween(column="requested_funding_eur", min_value=0)),
        Rule("requested_le_total_cost", "requested_funding_eur",
             "Beantragte Förderung ({value}) ist höher als die Gesamtkosten; bitte Beträge prüfen.",
             E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="total_cost_eur", column_B="requested_funding_eur",
                                                       or_equal=True, ignore_row_if="either_value_is_missing")),
        Rule("funding_rate_within_limits", "funding_rate",
             "Förderquote {value} liegt außerhalb der Programmgrenzen (über 0 % bis höchstens 100 %).",
             E.ExpectColumnValuesToBeBetween(column="funding_rate", min_value=0, max_value=MAX_FUNDING_RATE,
                                             strict_min=True)),
        # Dates as day numbers (DAY_COLUMNS): GX compares numbers column-wise, datetimes one value at a time.
        Rule("completion_after_start", "planned_completion_date",
             "Geplante Fertigstellung ({value}) liegt vor dem geplanten Baubeginn.",
             E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="_completion_day", column_B="_start_day",
                                                       or_equal=True, ignore_row_if="either_value_is_missing")),
        Rule("date_plausible", "planned_start_date",
             "Geplanter Baubeginn {value} ist nicht plausibel (2014 bis 2040).",
             E.ExpectColumnValuesToBeBetween(column="_start_day", min_value=_day(DATE_MIN), max_value=_day(DATE_MAX))),
        Rule("date_plausible", "planned_completion_date",
             "Geplante Fertigstellung {value} ist nicht plausibel (2014 bis 2040).",
             E.ExpectColumnValuesToBeBetween(column="_completion_day", min_value=_day(DATE_MIN),
                                             max_value=_day(DATE_MAX))),
        Rule("area_non_negative", "expected_disconnected_area_m2",
             "Abgekoppelte Fläche {value} m² darf nicht negativ sein.",
             E.ExpectColumnValuesToBeBetween(column="expected_disconnected_area_m2", min_value=0)),
        Rule("area_non_negative", "surface_change_m2", "Veränderte Fläche {value} m² darf nicht negativ sein.",
             E.ExpectColumnValuesToBeBetween(column="surface_change_m2", min_value=0)),
        Rule("trees_non_negative", "expected_trees", "Anzahl Bäume {value} darf nicht negativ sein.",
             E.ExpectColumnValuesToBeBetween(column="expected_trees", min_value=0)),
        Rule("trees_whole_number", "expected_trees", "Anzahl Bäume {value} muss eine ganze Zahl sein.",
             E.ExpectColumnValuesToBeBetween(column="_trees_fraction", min_value=0, max_value=0)),
        Rule("payment_non_negative", "forecast_payment_eur", "Mittelabruf {value} EUR darf nicht negativ sein.",
             E.ExpectColumnValuesToBeBetween(column="_min_payment_eur", min_value=0)),
        Rule("contact_email_format", "contact_email", "E-Mail-Adresse der Ansprechperson ist ungültig.",
             E.ExpectColumnValuesToMatchRegex(column="contact_email", regex=EMAIL_REGEX)),
    ]


def _allowed(labels) -> str:
    """The drop-down labels of a code list, for a message ("Erlaubt: Projektidee, Bewilligt, ...")."""
    return ", ".join(labels).replace("{", "{{").replace("}", "}}")  # the message is formatted with {value}


@lru_cache(maxsize=1)
def _suite():
    """The forecast rows' batch definition and suite on the shared GX context; built once per process."""
    import great_expectations as gx

    context = gx_context.context()
    batch_definition = gx_context.pandas_batch_definition("forecast_rows")
    rules = _rules()
    suite = gx.ExpectationSuite(name="forecast_rows")
    for r in rules:
        suite.add_expectation(r.expectation)
    suite = context.suites.add(suite)
    return batch_definition, suite, rules


COLUMNS = [
    "municipality_key", "submission_municipality_key", "measure_type_key", "status_key", "affected_surface_type",
    "total_cost_eur", "requested_funding_eur", "funding_rate", "planned_start_date", "planned_completion_date",
    "expected_disconnected_area_m2", "surface_change_m2", "expected_trees", "contact_email",
]
_TEXT_COLUMNS = ("municipality_key", "submission_municipality_key", "measure_type_key", "status_key",
                 "affected_surface_type", "contact_email")
_NUMBER_COLUMNS = ("total_cost_eur", "requested_funding_eur", "funding_rate", "expected_disconnected_area_m2",
                   "surface_change_m2", "expected_trees", "_min_payment_eur")
#: date column -> the helper column GX checks (days since 1970-01-01).
DAY_COLUMNS = {"planned_start_date": "_start_day", "planned_completion_date": "_completion_day"}
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def _day(value: str | dt.date) -> float:
    day = dt.date.fromisoformat(value) if isinstance(value, str) else value
    return float(day.toordinal() - _EPOCH_ORDINAL)


def to_frame(columns: dict[str, list]) -> pd.DataFrame:
    """The frame GX validates, built column by column: the checked columns, helper columns, a row key.

    ``columns`` holds one list per name in COLUMNS plus ``_min_payment_eur``, all of the same length (one
    entry per parsed row of the batch). Only what the suite reads goes into the frame: GX filters the
    whole frame for every expectation, so every extra column costs in every one of them.
    """
    frame = {c: pd.Series(columns[c], dtype=object) for c in _TEXT_COLUMNS}
    for c in _NUMBER_COLUMNS:
        frame[c] = np.array([np.nan if v is None else v for v in columns[c]], dtype=np.float64)
    for c, helper in DAY_COLUMNS.items():
        frame[helper] = np.array([np.nan if d is None else d.toordinal() - _EPOCH_ORDINAL for d in columns[c]],
                                 dtype=np.float64)
    df = pd.DataFrame(frame)
    trees = df["expected_trees"].to_numpy()
    df["_trees_fraction"] = trees - np.floor(trees)
    df["_row_key"] = np.arange(len(df))
    return df


def validate(columns: dict[str, list]) -> list[Failure]:
    """Run the suite over all parsed rows of a batch (one GX run) and return every failing (row, rule)."""
    if not columns or not columns["municipality_key"]:
        return []
    df = to_frame(columns)
    batch_definition, suite, rules = _suite()
    batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(suite, result_format={
        "result_format": "COMPLETE", "unexpected_index_column_names": ["_row_key"],
        "return_unique_unexpected_index_list": False,
    })
    failures = []
    for res in result.results:
        cfg = res.expectation_config
        kwargs = cfg.kwargs
        rule = _match_rule(rules, cfg.type, kwargs)
        if res.exception_info and res.exception_info.get("raised_exception"):
            raise RuntimeError(f"GX-Erwartung {cfg.type} fehlgeschlagen: {res.exception_info.get('exception_message')}")
        if res.success:
            continue
        for item in res.result.get("unexpected_index_list") or []:
            i = int(item["_row_key"])
            value = _display(columns, i, rule)
            failures.append(Failure(i, rule.rule, rule.column, value, rule.message_de.format(value=value)))
    return failures


def _match_rule(rules: list[Rule], type_: str, kwargs: dict) -> Rule:
    for r in rules:
        e = r.expectation
        if e.expectation_type != type_:
            continue
        if all(kwargs.get(k) == getattr(e, k, None) for k in ("column", "column_A", "column_B") if kwargs.get(k) is not None):
            return r
    raise KeyError(type_)


def _display(columns: dict[str, list], i: int, rule: Rule) -> object:
    """The value to show the sender: the column the rule reports, formatted German-style."""
    column = {
        "municipality": "municipality_key", "measure_type": "measure_type_key", "status": "status_key",
        "forecast_payment_eur": "_min_payment_eur",
    }.get(rule.column, rule.column)
    value = columns[column][i]
    if column == "municipality_key" and value in municipality_by_key():
        return municipality_by_key()[value].name  # the name, as the sender wrote it in the template
    if isinstance(value, dt.date):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, float):
        if rule.rule == "funding_rate_within_limits":
            return f"{value * 100:.4g} %".replace(".", ",")
        return f"{value:,.2f}".replace(",", "\u0001").replace(".", ",").replace("\u0001", ".")
    return value
