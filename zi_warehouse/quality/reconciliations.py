"""Cross-source reconciliations: SQL over the working warehouse, one result per check and municipality.

What belongs here: checks that compare figures from different sources or different levels of
aggregation and that no single source can check on its own. Each function takes an open DuckDB
connection (after ``dbt build``) and returns ``CheckResult`` records; the SQL selects keys and amounts
only (never personal data).

Severities (why):
- ``region_equals_sum_of_municipalities`` (error): a regional figure that is not the sum of its
  municipalities means a model lost or doubled rows; every published figure is then suspect.
- ``paid_within_approved`` (error): money paid beyond the approved amount has no legal basis; the data
  must be wrong (per measure, and per year cumulatively for the region).
- ``approved_within_envelope`` (warn): more approved than the budget envelope up to a year is possible
  (reallocation) but needs the controllers' attention.
- ``disconnected_within_connected_area`` (error): a municipality cannot disconnect more paved area than
  is connected to its combined sewer; the KPI would exceed 100 %.
- ``funding_projects_in_forecasts`` / ``forecast_projects_in_funding`` (warn): the two sources are
  maintained by different people and drift in reality (late forecast, project number typo); a
  controller follows up, the figures stay publishable.

The campaign's tree total is checked once, on the loaded distribution lists (asset check
``trees_campaign_total``, dagster_zi/trees_surfaces.py); payments within the approved amount once, here.
"""

from __future__ import annotations

from collections import defaultdict

from zi_warehouse.quality.results import CheckResult
from zi_warehouse.warehouse import rows as _rows

#: Cent rounding tolerance when comparing sums of amounts (EUR).
TOLERANCE_EUR = 0.005
#: Relative tolerance for sums of floating-point areas (m²): 1e-9 of the value, at least 0.01 m².
TOLERANCE_M2 = 0.01
#: Forecast statuses at which the project must exist in the funding database (an application was filed).
FILED_STATUSES = ("application_filed", "approved", "in_construction", "completed", "rejected")

#: Every reconciliation: severity and what it demands (German, shown in Dagster, the mart and the report).
CATALOGUE = {
    "funding_projects_in_forecasts": ("warn", "Jedes Projekt der Förderdatenbank steht in der Prognose der Kommune."),
    "forecast_projects_in_funding": (
        "warn",
        "Jedes Projekt, für das die Prognose einen gestellten Antrag meldet, steht in der Förderdatenbank.",
    ),
    "region_equals_sum_of_municipalities": (
        "error",
        "Regionale Jahreswerte (KPI-Flächen, Fördermittel) sind die Summe der Kommunen.",
    ),
    "paid_within_approved": ("error", "Ausgezahlt ≤ bewilligt: je Maßnahme und kumuliert je Jahr für die Region."),
    "approved_within_envelope": ("warn", "Bewilligt ≤ Plafond, kumuliert bis zum Jahresende."),
    "disconnected_within_connected_area": (
        "error",
        "Abgekoppelte Fläche abgeschlossener Maßnahmen ≤ angeschlossene befestigte Fläche der Kommune.",
    ),
}


def _per_municipality(
    rows: list[dict],
    check_name: str,
    source: str,
    severity: str,
    description_de: str,
    bad_de: str,
    example_keys: tuple[str, ...],
    municipalities: list[str] | None = None,
) -> list[CheckResult]:
    """Group evaluated rows (with a boolean ``is_failed``) into one result per municipality."""
    groups: dict[str | None, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["municipality_key"]].append(r)
    for m in municipalities or []:
        groups.setdefault(m, [])
    out = []
    for muni in sorted(groups, key=lambda k: (k is None, k or "")):
        evaluated = groups[muni]
        failed = [r for r in evaluated if r["is_failed"]]
        out.append(
            CheckResult(
                "reconciliation",
                source,
                check_name,
                severity,
                description_de,
                len(evaluated),
                len(failed),
                municipality_key=muni,
                examples=[{k: r[k] for k in example_keys} for r in failed[:5]],
                message_de=bad_de.format(n=len(failed)) if failed else "Erfüllt.",
            )
        )
    return out


def _municipalities(con) -> list[str]:
    return [r[0] for r in con.execute("select municipality_key from marts.dim_municipality order by 1").fetchall()]


def funding_projects_in_forecasts(con) -> list[CheckResult]:
    rows = _rows(
        con,
        """
        select ap.municipality_key, ap.project_id, ap.application_id,
               fc.project_id is null as is_failed
        from intermediate.int_funding__applications ap
        left join intermediate.int_forecasts__current_projects fc on fc.project_id = ap.project_id
        where not ap.is_deleted""",
    )
    return _per_municipality(
        rows,
        "reconciliation.funding_projects_in_forecasts",
        "funding×forecasts",
        *CATALOGUE["funding_projects_in_forecasts"],
        "{n} Projekt(e) der Förderdatenbank fehlen in der Prognose der Kommune.",
        ("project_id", "application_id"),
    )


def forecast_projects_in_funding(con) -> list[CheckResult]:
    statuses = ", ".join(f"'{s}'" for s in FILED_STATUSES)
    rows = _rows(
        con,
        f"""
        select fc.municipality_key, fc.project_id, fc.status_key,
               not exists (select 1 from intermediate.int_funding__applications ap
                           where ap.project_id = fc.project_id and not ap.is_deleted) as is_failed
        from intermediate.int_forecasts__current_projects fc
        where fc.status_key in ({statuses})""",
    )
    return _per_municipality(
        rows,
        "reconciliation.forecast_projects_in_funding",
        "forecasts×funding",
        *CATALOGUE["forecast_projects_in_funding"],
        "{n} Projekt(e) melden laut Prognose einen Antrag, fehlen aber in der Förderdatenbank.",
        ("project_id", "status_key"),
    )


def region_equals_sum_of_municipalities(con) -> list[CheckResult]:
    """KPI areas (rvr = all municipalities) and budget amounts: region row = sum of municipality rows."""
    kpi = _rows(
        con,
        f"""
        with m as (
            select year, sum(baseline_connected_area_m2) as baseline, sum(disconnected_actual_m2) as actual,
                   sum(disconnected_planned_m2) as planned, sum(surface_area_m2) as surface
            from marts.mart_kpi_municipality_year group by year)
        select 'mart_kpi_region_year' as mart, r.year,
               abs(coalesce(r.baseline_connected_area_m2, 0) - coalesce(m.baseline, 0))
             + abs(coalesce(r.disconnected_actual_m2, 0) - coalesce(m.actual, 0))
             + abs(coalesce(r.disconnected_planned_m2, 0) - coalesce(m.planned, 0))
             + abs(coalesce(r.surface_area_m2, 0) - coalesce(m.surface, 0)) as difference,
               greatest({TOLERANCE_M2}, 1e-9 * coalesce(m.surface, 0)) as tolerance
        from marts.mart_kpi_region_year r full join m using (year)
        where coalesce(r.region_key, 'rvr') = 'rvr'""",
    )
    budget = _rows(
        con,
        f"""
        with m as (
            select year, sum(approved_eur) as approved, sum(paid_eur) as paid, sum(requested_eur) as requested,
                   sum(applications) as applications
            from marts.mart_budget_municipality_year group by year)
        select 'mart_budget_year' as mart, coalesce(r.year, m.year) as year,
               abs(coalesce(r.approved_eur, 0) - coalesce(m.approved, 0))
             + abs(coalesce(r.paid_eur, 0) - coalesce(m.paid, 0))
             + abs(coalesce(r.requested_eur, 0) - coalesce(m.requested, 0))
             + abs(coalesce(r.applications, 0) - coalesce(m.applications, 0)) as difference,
               {TOLERANCE_EUR} * 4 as tolerance
        from marts.mart_budget_year r full join m on m.year = r.year""",
    )
    rows = [
        {**r, "municipality_key": None, "is_failed": float(r["difference"]) > float(r["tolerance"])}
        for r in kpi + budget
    ]
    return _per_municipality(
        rows,
        "reconciliation.region_equals_sum_of_municipalities",
        "mart_kpi_region_year×mart_budget_year",
        *CATALOGUE["region_equals_sum_of_municipalities"],
        "{n} Jahreswert(e) der Region weichen von der Summe der Kommunen ab.",
        ("mart", "year", "difference"),
    )


def paid_within_approved(con) -> list[CheckResult]:
    per_measure = _rows(
        con,
        f"""
        select municipality_key, measure_id, approval_id, approved_eur, paid_eur,
               coalesce(paid_eur, 0) > coalesce(approved_eur, 0) + {TOLERANCE_EUR} as is_failed
        from marts.fct_measure""",
    )
    per_year = _rows(
        con,
        f"""
        select null as municipality_key, 'Region ' || year as measure_id, null as approval_id,
               approved_eur_cumulative as approved_eur, paid_eur_cumulative as paid_eur,
               coalesce(paid_eur_cumulative, 0) > coalesce(approved_eur_cumulative, 0) + {TOLERANCE_EUR} as is_failed
        from marts.mart_budget_year""",
    )
    return _per_municipality(
        per_measure + per_year,
        "reconciliation.paid_within_approved",
        "fct_measure×mart_budget_year",
        *CATALOGUE["paid_within_approved"],
        "{n} Maßnahme(n)/Jahr(e): Auszahlungen übersteigen den bewilligten Betrag.",
        ("measure_id", "approval_id", "approved_eur", "paid_eur"),
        _municipalities(con),
    )


def approved_within_envelope(con) -> list[CheckResult]:
    rows = _rows(
        con,
        f"""
        select null as municipality_key, year, approved_eur_cumulative, envelope_eur_cumulative,
               coalesce(approved_eur_cumulative, 0) > coalesce(envelope_eur_cumulative, 0) + {TOLERANCE_EUR} as is_failed
        from marts.mart_budget_year""",
    )
    return _per_municipality(
        rows,
        "reconciliation.approved_within_envelope",
        "mart_budget_year",
        *CATALOGUE["approved_within_envelope"],
        "{n} Jahr(e): kumuliert mehr bewilligt als der Plafond vorsieht.",
        ("year", "approved_eur_cumulative", "envelope_eur_cumulative"),
    )


def disconnected_within_connected_area(con) -> list[CheckResult]:
    rows = _rows(
        con,
        f"""
        with done as (
            select municipality_key, sum(disconnected_area_m2) as disconnected_m2
            from marts.fct_measure where is_completed group by municipality_key),
        base as (
            select municipality_key, max(baseline_connected_area_m2) as connected_m2
            from marts.mart_kpi_municipality_year group by municipality_key)
        select coalesce(base.municipality_key, done.municipality_key) as municipality_key,
               coalesce(done.disconnected_m2, 0) as disconnected_m2, base.connected_m2,
               coalesce(done.disconnected_m2, 0) > coalesce(base.connected_m2, 0) + {TOLERANCE_M2} as is_failed
        from base full join done using (municipality_key)""",
    )
    return _per_municipality(
        rows,
        "reconciliation.disconnected_within_connected_area",
        "fct_measure×mart_kpi_municipality_year",
        *CATALOGUE["disconnected_within_connected_area"],
        "Die abgekoppelte Fläche übersteigt die angeschlossene befestigte Fläche der Kommune.",
        ("disconnected_m2", "connected_m2"),
    )


RECONCILIATIONS = (
    funding_projects_in_forecasts,
    forecast_projects_in_funding,
    region_equals_sum_of_municipalities,
    paid_within_approved,
    approved_within_envelope,
    disconnected_within_connected_area,
)


def run_reconciliations(con) -> list[CheckResult]:
    return [r for fn in RECONCILIATIONS for r in fn(con)]
