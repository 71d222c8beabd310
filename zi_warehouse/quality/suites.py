"""Great Expectations suites for every public mart, defined in code and run on the mart read into pandas.

What belongs here: which expectations each mart must meet (key unique and not null, value ranges,
allowed values), their severity, and running them. GX cannot validate DuckDB through SQLAlchemy, so each
mart is read into a DataFrame and validated there; all suites share one ephemeral GX context built once
per process (building it costs more than a validation). A validation has a fixed cost of roughly
40 ms, so each mart is validated in ONE run with all its expectations (about 15 runs in all).

Severity: ``error`` where a failure means a figure in the mart is wrong (duplicate or missing key,
negative amounts, a share outside 0–100 %, an unknown municipality): it blocks publishing. ``warn`` where
the value is possible in reality and needs a controller's look (e.g. more approved in one year than that
year's envelope).

Failures are attributed to municipalities: every frame gets a row key, GX returns the row keys of
unexpected rows, and a mart with a ``municipality_key`` column yields one result per municipality
(rows of that municipality evaluated, rows failed). Marts without municipalities yield one result.
``mart_data_quality`` itself has no suite: it is built from these results after they ran (its dbt tests
guard its key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import duckdb
import pandas as pd

from zi_warehouse import gx_context, reference
from zi_warehouse.accounting import OUTCOMES
from zi_warehouse.quality.results import CheckResult

MARTS_SCHEMA = "marts"
ROW_KEY = "_row_key"


@dataclass(frozen=True)
class Expect:
    """One expectation of a suite: a stable name, severity, German description and a GX factory."""

    name: str
    severity: str
    description_de: str
    build: Callable  # (gx.expectations module) -> Expectation
    example_columns: tuple[str, ...]
    #: A value that violates the expectation in ``example_columns[0]`` ("duplicate": repeat a key), used by
    #: the tests to build data that breaks every expectation.
    bad_value: object = None


@dataclass(frozen=True)
class MartSuite:
    mart: str
    key: tuple[str, ...]
    expectations: tuple[Expect, ...]


# --- building blocks ------------------------------------------------------------------------------------


def key_unique(cols: tuple[str, ...], nullable: tuple[str, ...] = ()) -> list[Expect]:
    """Key not null (except ``nullable`` parts of a compound key) and unique."""
    label = " × ".join(cols)
    out = [
        Expect(
            f"{c}_not_null",
            "error",
            f"Schlüsselspalte {c} ist nie leer.",
            lambda E, c=c: E.ExpectColumnValuesToNotBeNull(column=c),
            (c,),
        )
        for c in cols
        if c not in nullable
    ]
    if len(cols) == 1:
        c = cols[0]
        out.append(
            Expect(
                f"{c}_unique",
                "error",
                f"Schlüssel {c} ist eindeutig (Grain).",
                lambda E, c=c: E.ExpectColumnValuesToBeUnique(column=c),
                (c,),
                "duplicate",
            )
        )
    else:
        out.append(
            Expect(
                "key_unique",
                "error",
                f"Schlüssel {label} ist eindeutig (Grain).",
                lambda E, cols=cols: E.ExpectCompoundColumnsToBeUnique(column_list=list(cols)),
                cols,
                "duplicate",
            )
        )
    return out


def between(cols, low=None, high=None, severity="error", what="") -> list[Expect]:
    if low is not None and high is not None:
        rng, suffix = f"zwischen {low:g} und {high:g}", "range"
    elif low is not None:
        rng, suffix = f"mindestens {low:g}", "non_negative" if low == 0 else "min"
    else:
        rng, suffix = f"höchstens {high:g}", "max"
    return [
        Expect(
            f"{c}_{suffix}",
            severity,
            f"{what or c} liegt {rng} (leere Werte ausgenommen).",
            lambda E, c=c: E.ExpectColumnValuesToBeBetween(column=c, min_value=low, max_value=high),
            (c,),
            (low - 1) if low is not None else high + 1,
        )
        for c in cols
    ]


def non_negative(*cols, severity="error") -> list[Expect]:
    return between(cols, low=0, severity=severity)


def pct(*cols, severity="error") -> list[Expect]:
    return between(cols, low=0, high=100, severity=severity)


def in_set(col: str, values, severity="error", what="") -> list[Expect]:
    values = sorted(values)
    return [
        Expect(
            f"{col}_allowed",
            severity,
            f"{what or col} ist ein zulässiger Wert ({', '.join(map(str, values[:8]))}"
            f"{' …' if len(values) > 8 else ''}).",
            lambda E: E.ExpectColumnValuesToBeInSet(column=col, value_set=values),
            (col,),
            "__unbekannt__",
        )
    ]


def period_format(col="period") -> list[Expect]:
    return [
        Expect(
            f"{col}_format",
            "error",
            f"{col} hat das Format JJJJ-Qn.",
            lambda E: E.ExpectColumnValuesToMatchRegex(column=col, regex=r"^\d{4}-Q[1-4]$"),
            (col,),
            "2026-Q5",
        )
    ]


def municipality_known(col="municipality_key") -> list[Expect]:
    return in_set(col, reference.municipality_by_key(), what="Kommune")


# --- the suites -----------------------------------------------------------------------------------------


def suites() -> tuple[MartSuite, ...]:
    """One suite per public mart (``mart_data_quality`` excepted, see the module docstring)."""
    measure_types = [m["measure_type_key"] for m in reference.measure_types()]
    statuses = [s["status_key"] for s in reference.project_statuses()]
    return (
        MartSuite(
            "dim_municipality",
            ("municipality_key",),
            (
                *key_unique(("municipality_key",)),
                *municipality_known(),
                *non_negative(
                    "population_2020", "area_km2", "climate_station_distance_km", "long_term_precipitation_mm"
                ),
                *between(("latitude",), 50.5, 52.5, what="Breitengrad (Ruhrgebiet)"),
                *between(("longitude",), 6.0, 8.5, what="Längengrad (Ruhrgebiet)"),
            ),
        ),
        MartSuite(
            "dim_measure_type",
            ("measure_type_key",),
            (
                *key_unique(("measure_type_key",)),
                *in_set("measure_type_key", measure_types, what="Maßnahmentyp"),
                *in_set("water_balance_effect", ["replace_surface", "route_runoff", "none"]),
                *between(("evaporation_share_before_v", "evaporation_share_after_v"), 0, 1),
            ),
        ),
        MartSuite(
            "fct_measure",
            ("measure_id",),
            (
                *key_unique(("measure_id",)),
                *municipality_known(),
                *in_set("measure_type_key", measure_types, what="Maßnahmentyp"),
                *in_set("status_key", statuses, what="Status"),
                *non_negative("disconnected_area_m2", "surface_change_m2", "trees", "approved_eur", "paid_eur"),
            ),
        ),
        MartSuite(
            "mart_kpi_municipality_year",
            ("municipality_key", "year"),
            (
                *key_unique(("municipality_key", "year")),
                *municipality_known(),
                *non_negative(
                    "baseline_connected_area_m2", "disconnected_actual_m2", "disconnected_planned_m2", "surface_area_m2"
                ),
                *pct(
                    "disconnection_rate_actual_pct",
                    "disconnection_rate_planned_pct",
                    "disconnection_rate_actual_designated_pct",
                    "disconnection_rate_planned_designated_pct",
                    "evaporation_rate_baseline_pct",
                    "evaporation_rate_actual_pct",
                    "evaporation_rate_planned_pct",
                ),
            ),
        ),
        MartSuite(
            "mart_kpi_region_year",
            ("region_key", "year"),
            (
                *key_unique(("region_key", "year")),
                *in_set("region_key", ["rvr", "zi_members"], what="Region"),
                *non_negative(
                    "municipalities",
                    "baseline_connected_area_m2",
                    "disconnected_actual_m2",
                    "disconnected_planned_m2",
                    "surface_area_m2",
                ),
                *pct(
                    "disconnection_rate_actual_pct",
                    "disconnection_rate_planned_pct",
                    "evaporation_rate_actual_pct",
                    "evaporation_rate_planned_pct",
                ),
            ),
        ),
        MartSuite(
            "mart_budget_year",
            ("year",),
            (
                *key_unique(("year",)),
                *non_negative(
                    "envelope_eur",
                    "project_ideas",
                    "applications",
                    "requested_eur",
                    "approvals",
                    "approved_eur",
                    "paid_eur",
                    "approved_eur_cumulative",
                    "paid_eur_cumulative",
                ),
                *pct("mean_funding_rate_pct"),
                *pct("utilisation_pct", severity="warn"),
                *non_negative("absorption_pct", severity="warn"),
            ),
        ),
        MartSuite(
            "mart_budget_municipality_year",
            ("municipality_key", "year"),
            (
                *key_unique(("municipality_key", "year")),
                *municipality_known(),
                *non_negative(
                    "project_ideas",
                    "applications",
                    "requested_eur",
                    "approvals",
                    "approved_eur",
                    "paid_eur",
                    "approved_eur_cumulative",
                    "paid_eur_cumulative",
                ),
                *pct("share_of_region_approved_pct", "mean_funding_rate_pct"),
                *pct("utilisation_pct", severity="warn"),
            ),
        ),
        MartSuite(
            "mart_trees_municipality_year",
            ("municipality_key", "year", "tree_source", "species_group"),
            (
                *key_unique(("municipality_key", "year", "tree_source", "species_group"), nullable=("year",)),
                *municipality_known(),
                *in_set("tree_source", ["campaign", "register", "funded_measures"], what="Herkunft"),
                *non_negative("trees"),
            ),
        ),
        MartSuite(
            "mart_pipeline_municipality_quarter",
            ("municipality_key", "period"),
            (
                *key_unique(("municipality_key", "period")),
                *municipality_known(),
                *period_format(),
                *between(("quarter",), 1, 4),
                *non_negative(
                    "total_projects",
                    "approved_projects",
                    "approved_eur",
                    "completed_eur",
                    "median_days_application_to_approval",
                ),
            ),
        ),
        MartSuite(
            "mart_forecast_accuracy_municipality_quarter",
            ("municipality_key", "period"),
            (
                *key_unique(("municipality_key", "period")),
                *municipality_known(),
                *period_format(),
                *between(("quarter",), 1, 4),
                *non_negative(
                    "forecast_applications",
                    "actual_applications",
                    "forecast_payments_eur",
                    "actual_payments_eur",
                    "applications_ape_pct",
                    "approvals_ape_pct",
                    "payments_eur_ape_pct",
                    "completions_ape_pct",
                ),
            ),
        ),
        MartSuite(
            "mart_climate_station_year",
            ("station_id", "year"),
            (
                *key_unique(("station_id", "year")),
                *between(("days_in_year",), 365, 366),
                *non_negative("days_observed", "missing_days", "summer_days", "hot_days", "precipitation_mm"),
                *between(("mean_temperature_c",), -5, 25, severity="warn", what="Jahresmitteltemperatur (°C)"),
            ),
        ),
        MartSuite(
            "mart_climate_municipality_year",
            ("municipality_key", "year"),
            (
                *key_unique(("municipality_key", "year")),
                *municipality_known(),
                *non_negative(
                    "days_observed",
                    "missing_days",
                    "precipitation_mm",
                    "measures_approved",
                    "disconnected_area_planned_m2",
                ),
                *pct(
                    "measures_in_heat_stressed_areas_pct",
                    "measures_in_flood_prone_areas_pct",
                    "disconnected_area_heat_stressed_pct",
                    "disconnected_area_flood_prone_pct",
                ),
            ),
        ),
        MartSuite(
            "mart_ingestion_files",
            ("source_family", "source_file"),
            (
                *key_unique(("source_family", "source_file")),
                *in_set(
                    "source_family",
                    ["forecasts", "funding", "funding_db", "climate", "trees", "surfaces"],
                    what="Quelle",
                ),
                *in_set("outcome", OUTCOMES, what="Ergebnis"),
                *non_negative("rows_read", "rows_loaded", "rows_rejected", "file_size_bytes"),
            ),
        ),
        MartSuite(
            "mart_rejected_rows",
            ("rejection_id",),
            (
                *key_unique(("rejection_id",)),
                *[e for e in key_unique(("source_family", "source_file")) if e.name.endswith("_not_null")],
                *[
                    Expect(
                        f"{c}_not_null",
                        "error",
                        f"{c} ist bei jeder abgewiesenen Zeile angegeben.",
                        lambda E, c=c: E.ExpectColumnValuesToNotBeNull(column=c),
                        (c,),
                    )
                    for c in ("rule", "message_de")
                ],
                *between(("row_number",), 1, None),
            ),
        ),
    )


# --- running --------------------------------------------------------------------------------------------


def _context():
    """The shared GX context and this step's pandas batch definition (zi_warehouse/gx_context.py)."""
    return gx_context.context(), gx_context.pandas_batch_definition("marts")


class _ExpectationSpec:
    """Stands in for ``great_expectations.expectations`` when an expectation's factory is called to learn its
    type and options: ``E.ExpectColumnValuesToBeUnique(column="x")`` gives ``("ExpectColumnValuesToBeUnique",
    {"column": "x"})``, options set to None left out as GX leaves them out of its configuration. The pre-screen
    needs no more, so a run whose rules it all clears never imports GX (about 2 s in a fresh process)."""

    def __getattr__(self, kind: str) -> Callable[..., tuple[str, dict]]:
        return lambda **kwargs: (kind, {k: v for k, v in kwargs.items() if v is not None})


@cache
def expectation_spec(expect: Expect) -> tuple[str, dict]:
    """The GX expectation type and options of ``expect``, without importing GX."""
    return expect.build(_ExpectationSpec())


@cache
def gx_expectation(expect: Expect):
    """``expect`` as a GX object (imports GX on first use). Validated one by one against the batch, so no
    suite is registered."""
    import great_expectations as gx

    return expect.build(gx.expectations)


def existing_marts(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = ? and table_catalog = current_database()",
        [MARTS_SCHEMA],
    ).fetchall()
    return {r[0] for r in rows}


def read_mart(con: duckdb.DuckDBPyConnection, mart: str) -> pd.DataFrame:
    df = con.execute(f'select * from {MARTS_SCHEMA}."{mart}"').df()
    df[ROW_KEY] = range(len(df))
    return df


_COMPLETE = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": [ROW_KEY],
    "return_unique_unexpected_index_list": False,
}
#: kwargs each expectation type may carry for the pre-screen to judge it (anything else: GX judges).
_PRESCREEN_KWARGS = {
    "ExpectColumnValuesToNotBeNull": {"column"},
    "ExpectColumnValuesToBeUnique": {"column"},
    "ExpectCompoundColumnsToBeUnique": {"column_list"},
    "ExpectColumnValuesToBeBetween": {"column", "min_value", "max_value"},
    "ExpectColumnValuesToBeInSet": {"column", "value_set"},
    "ExpectColumnValuesToMatchRegex": {"column", "regex"},
}


def certainly_met(kind: str, kwargs: dict, df: pd.DataFrame) -> bool:
    """True only if no row of ``df`` can violate the expectation (vectorised pandas, a few ms).

    A pre-screen, deliberately cautious: it answers True only for the expectation types and options it knows,
    with the test GX's pandas engine applies, and only when that test finds no violating row at all (nulls are
    counted as violations where GX would skip them, duplicates of nulls as duplicates, a non-numeric column
    in a range check as a violation). Whatever it cannot clear, GX validates. So it may send GX an
    expectation that GX then passes, but it never passes one GX would fail.
    """
    if kind not in _PRESCREEN_KWARGS or set(kwargs) - _PRESCREEN_KWARGS[kind] or not len(df):
        return False
    try:
        if kind == "ExpectCompoundColumnsToBeUnique":
            columns = list(kwargs["column_list"])
            return set(columns) <= set(df.columns) and not df.duplicated(subset=columns, keep=False).any()
        column = kwargs["column"]
        if column not in df.columns:
            return False
        values = df[column]
        if kind == "ExpectColumnValuesToNotBeNull":
            return not values.isna().any()
        if kind == "ExpectColumnValuesToBeUnique":
            return not values.duplicated(keep=False).any()
        present = values.dropna()
        if kind == "ExpectColumnValuesToBeInSet":
            return bool(present.isin(list(kwargs["value_set"])).all())
        if kind == "ExpectColumnValuesToMatchRegex":
            return bool(present.astype(str).str.contains(kwargs["regex"]).all())
        # ExpectColumnValuesToBeBetween: inclusive bounds, numeric columns only.
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            return False
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if low is None and high is None:
            return False
        if low is not None and (present < low).any():
            return False
        return not (high is not None and (present > high).any())
    except Exception:  # noqa: BLE001 - anything unexpected: let GX judge
        return False


def validate_frame(spec: MartSuite, df: pd.DataFrame) -> list[CheckResult]:
    """Validate one mart's frame; one result per expectation and municipality.

    GX validates every expectation that the pre-screen (:func:`certainly_met`) cannot clear, with
    ``result_format=COMPLETE`` to get the keys of the violating rows; an expectation the pre-screen clears
    has no violating row, which is exactly what GX would report. On clean data GX thus has next to nothing
    to do: a GX run costs ~15 ms of fixed overhead plus ~20 ms per expectation in pure Python, which made
    the 153 expectations the slowest part of the quality step (docs/performance.md).
    """
    batch = None
    results_ = []
    for expect in spec.expectations:
        kind, kwargs = expectation_spec(expect)
        if certainly_met(kind, kwargs, df):
            results_.append((expect, True, None))
            continue
        if batch is None:
            _, batch_definition = _context()
            batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
        res = batch.validate(gx_expectation(expect), result_format=_COMPLETE)
        results_.append((expect, res.success, res))
    by_municipality = "municipality_key" in df.columns
    if by_municipality:
        munis = df["municipality_key"].astype(object).where(df["municipality_key"].notna(), None)
        evaluated = munis.value_counts(dropna=False).to_dict()
    out: list[CheckResult] = []
    no_examples = []
    for expect, success, res in results_:
        info = (res.exception_info if res is not None else None) or {}
        if info.get("raised_exception"):
            raise RuntimeError(
                f"GX-Erwartung {spec.mart}.{expect.name} nicht auswertbar: {info.get('exception_message')}"
            )
        failed_keys = [int(item[ROW_KEY]) for item in (res.result.get("unexpected_index_list") or [])] if res else []
        if not success and not failed_keys:
            failed_keys = list(range(len(df)))  # table-level failure: every row counts
        failed = df.iloc[sorted(failed_keys)] if failed_keys else df.iloc[0:0]
        common = dict(
            check_kind="suite",
            source=spec.mart,
            check_name=f"{spec.mart}.{expect.name}",
            severity=expect.severity,
            description_de=expect.description_de,
        )
        if by_municipality and len(df):
            failed_munis = munis.iloc[sorted(failed_keys)] if failed_keys else munis.iloc[0:0]
            # Computed once per expectation, not once per municipality (153 expectations × 53 municipalities).
            failed_set = set(failed_munis.dropna()) if failed_keys else set()
            failed_none = bool(failed_keys) and bool(failed_munis.isna().any())
            for muni, n in evaluated.items():
                muni = None if (muni is None or pd.isna(muni)) else muni
                if muni in failed_set or (muni is None and failed_none):
                    mask = failed_munis.isna() if muni is None else failed_munis == muni
                    rows = failed[mask.to_numpy()]
                else:
                    rows = None
                n_failed = 0 if rows is None else len(rows)
                out.append(
                    CheckResult(
                        **common,
                        municipality_key=muni,
                        rows_evaluated=int(n),
                        rows_failed=n_failed,
                        examples=[] if rows is None else _examples(rows, expect, spec),
                        message_de=_message(expect, n_failed),
                    )
                )
        else:
            out.append(
                CheckResult(
                    **common,
                    rows_evaluated=len(df),
                    rows_failed=len(failed),
                    examples=_examples(failed, expect, spec) if len(failed) else no_examples[:],
                    message_de=_message(expect, len(failed)),
                )
            )
    return out


def _examples(rows: pd.DataFrame, expect: Expect, spec: MartSuite) -> list:
    cols = list(dict.fromkeys([*spec.key, *expect.example_columns]))
    cols = [c for c in cols if c in rows.columns and not c.startswith("contact_")]
    return [{c: (None if pd.isna(v) else v) for c, v in rec.items()} for rec in rows[cols].head(5).to_dict("records")]


def _message(expect: Expect, failed: int) -> str:
    if not failed:
        return "Erfüllt."
    return f"{failed} Zeile(n) verletzen: {expect.description_de}"


def run_suites(con: duckdb.DuckDBPyConnection, specs: tuple[MartSuite, ...] | None = None) -> list[CheckResult]:
    """Run every mart's suite (or ``specs``); a public mart missing from the warehouse is itself an error."""
    present = existing_marts(con)
    out: list[CheckResult] = []
    for spec in suites() if specs is None else specs:
        if spec.mart not in present:
            out.append(
                CheckResult(
                    "suite",
                    spec.mart,
                    f"{spec.mart}.exists",
                    "error",
                    f"Die Mart {spec.mart} ist im Warehouse vorhanden.",
                    1,
                    1,
                    message_de=f"Die Mart marts.{spec.mart} fehlt im Warehouse.",
                )
            )
            continue
        out.extend(validate_frame(spec, read_mart(con, spec.mart)))
    return out
