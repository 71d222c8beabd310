"""Reference only, for tests: the forecast row rules as the Great Expectations suite that ran at ingest until
issue 20 (one GX validation per batch). Production runs the vectorised rules of
``zi_warehouse/forecasts/validation.py``; ``test_forecast_rules_equivalence.py`` runs both on the same
batches and requires the same failures.

What is kept here is what the vectorised rules replaced: the frame GX validated (built value by value, as
then) and one GX expectation per rule, with the result mapping of the old ``validate``. Rule names, reported
columns, German messages, limits and the displayed value stay in their one home, the production module
(``validation.rules()``, its constants, ``validation.display``); rules are paired by (rule, column).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pandas as pd

from zi_warehouse import gx_context
from zi_warehouse.forecasts import validation as v
from zi_warehouse.forecasts.template import SURFACE_TYPES
from zi_warehouse.reference import measure_types, municipality_by_key, project_statuses


def _expectations() -> dict[tuple[str, str], object]:
    """(rule, reported column) -> the GX expectation that checked it, in the order of the former suite (GX
    reports the results grouped by column: the municipality, the pair expectations, then column by column)."""
    import great_expectations as gx

    E = gx.expectations
    day = v._day
    return {
        ("known_municipality", "municipality"): E.ExpectColumnValuesToBeInSet(
            column="municipality_key", value_set=sorted(municipality_by_key())
        ),
        ("municipality_matches_submission", "municipality"): E.ExpectColumnPairValuesToBeEqual(
            column_A="municipality_key", column_B="submission_municipality_key", ignore_row_if="either_value_is_missing"
        ),
        ("known_measure_type", "measure_type"): E.ExpectColumnValuesToBeInSet(
            column="measure_type_key", value_set=[m["measure_type_key"] for m in measure_types()]
        ),
        ("known_status", "status"): E.ExpectColumnValuesToBeInSet(
            column="status_key", value_set=[s["status_key"] for s in project_statuses()]
        ),
        ("known_surface_type", "affected_surface_type"): E.ExpectColumnValuesToBeInSet(
            column="affected_surface_type", value_set=list(SURFACE_TYPES)
        ),
        ("total_cost_range", "total_cost_eur"): E.ExpectColumnValuesToBeBetween(
            column="total_cost_eur", min_value=0, max_value=v.MAX_TOTAL_COST_EUR, strict_min=True
        ),
        ("requested_funding_non_negative", "requested_funding_eur"): E.ExpectColumnValuesToBeBetween(
            column="requested_funding_eur", min_value=0
        ),
        ("requested_le_total_cost", "requested_funding_eur"): E.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="total_cost_eur",
            column_B="requested_funding_eur",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
        ),
        ("funding_rate_within_limits", "funding_rate"): E.ExpectColumnValuesToBeBetween(
            column="funding_rate", min_value=0, max_value=v.MAX_FUNDING_RATE, strict_min=True
        ),
        ("completion_after_start", "planned_completion_date"): E.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="_completion_day", column_B="_start_day", or_equal=True, ignore_row_if="either_value_is_missing"
        ),
        ("date_plausible", "planned_start_date"): E.ExpectColumnValuesToBeBetween(
            column="_start_day", min_value=day(v.DATE_MIN), max_value=day(v.DATE_MAX)
        ),
        ("date_plausible", "planned_completion_date"): E.ExpectColumnValuesToBeBetween(
            column="_completion_day", min_value=day(v.DATE_MIN), max_value=day(v.DATE_MAX)
        ),
        ("area_non_negative", "expected_disconnected_area_m2"): E.ExpectColumnValuesToBeBetween(
            column="expected_disconnected_area_m2", min_value=0
        ),
        ("area_non_negative", "surface_change_m2"): E.ExpectColumnValuesToBeBetween(
            column="surface_change_m2", min_value=0
        ),
        ("trees_non_negative", "expected_trees"): E.ExpectColumnValuesToBeBetween(column="expected_trees", min_value=0),
        ("trees_whole_number", "expected_trees"): E.ExpectColumnValuesToBeBetween(
            column="_trees_fraction", min_value=0, max_value=0
        ),
        ("payment_non_negative", "forecast_payment_eur"): E.ExpectColumnValuesToBeBetween(
            column="_min_payment_eur", min_value=0
        ),
        ("contact_email_format", "contact_email"): E.ExpectColumnValuesToMatchRegex(
            column="contact_email", regex=v.EMAIL_REGEX
        ),
    }


@lru_cache(maxsize=1)
def _suite():
    """The batch definition, suite and (production rule, expectation) pairs, in the former suite's order."""
    import great_expectations as gx

    expectations = _expectations()
    rules = {(r.rule, r.column): r for r in v.rules()}
    assert rules.keys() == expectations.keys(), "a production rule without its reference expectation, or the reverse"
    pairs = [(rules[key], e) for key, e in expectations.items()]
    context = gx_context.context()
    batch_definition = gx_context.pandas_batch_definition("forecast_rows_reference")
    suite = gx.ExpectationSuite(name="forecast_rows_reference")
    for _, e in pairs:
        suite.add_expectation(e)
    suite = context.suites.add(suite)
    return batch_definition, suite, pairs


def to_frame(columns: dict[str, list]) -> pd.DataFrame:
    """The frame GX validated, as the former validation.py built it (value by value, plus a row key)."""
    frame = {c: pd.Series(columns[c], dtype=object) for c in v._TEXT_COLUMNS}
    for c in v._NUMBER_COLUMNS:
        frame[c] = np.array([np.nan if x is None else x for x in columns[c]], dtype=np.float64)
    epoch = dt.date(1970, 1, 1).toordinal()
    for c, helper in v.DAY_COLUMNS.items():
        frame[helper] = np.array([np.nan if d is None else d.toordinal() - epoch for d in columns[c]], dtype=np.float64)
    df = pd.DataFrame(frame)
    trees = df["expected_trees"].to_numpy()
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, a missing value (as the production rules see it)
        df["_trees_fraction"] = trees - np.floor(trees)
    df["_row_key"] = np.arange(len(df))
    return df


def validate(columns: dict[str, list]) -> list[v.Failure]:
    """The former validate: one GX run over the batch; failures in suite order, rows by row key."""
    if not columns or not columns["municipality_key"]:
        return []
    df = to_frame(columns)
    batch_definition, suite, pairs = _suite()
    batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(
        suite,
        result_format={
            "result_format": "COMPLETE",
            "unexpected_index_column_names": ["_row_key"],
            "return_unique_unexpected_index_list": False,
        },
    )
    failures = []
    for res in result.results:
        cfg = res.expectation_config
        rule = _match_rule(pairs, cfg.type, cfg.kwargs)
        if res.exception_info and res.exception_info.get("raised_exception"):
            raise RuntimeError(f"GX-Erwartung {cfg.type} fehlgeschlagen: {res.exception_info.get('exception_message')}")
        if res.success:
            continue
        for item in res.result.get("unexpected_index_list") or []:
            i = int(item["_row_key"])
            value = v.display(columns, i, rule)
            failures.append(v.Failure(i, rule.rule, rule.column, value, rule.message_de.format(value=value)))
    # Follow-on errors were dropped after GX was replaced; the rule evaluation is what this reference checks.
    return v.without_follow_ons(failures)


def _match_rule(pairs, type_: str, kwargs: dict) -> v.Rule:
    for rule, e in pairs:
        if e.expectation_type != type_:
            continue
        if all(
            kwargs.get(k) == getattr(e, k, None)
            for k in ("column", "column_A", "column_B")
            if kwargs.get(k) is not None
        ):
            return rule
    raise KeyError(type_)
