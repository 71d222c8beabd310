"""Dagster wiring of the funding family: the database-channel asset and the reconciliation checks.

What belongs here: only wiring. The file channel's ingest asset ``raw_funding`` comes from
``dagster_zi/sources.py``; extraction lives in ``zi_warehouse/sources/funding_db.py``, the check logic in
``zi_warehouse/sources/funding_checks.py`` (plain SQL, tested without Dagster).

The database asset ``raw_funding_db/funding_db_extracts`` (the key dagster-dbt gives the dbt source
``raw_funding_db.funding_db_extracts``) is upstream of the funding staging models, so a full run extracts
from the database before dbt builds. Without ``ZI_FUNDING_DB_DSN`` it records that it did
nothing. Severities are deliberate (see funding_checks' docstring): blocking ERROR where a failure must
withhold publishing, WARN where a controller should look.
"""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    asset,
    asset_check,
    multi_asset_check,
)

from dagster_zi.constants import WAREHOUSE_POOL
from dagster_zi.keys import dbt_model_key
from dagster_zi.sources import raw_asset_keys
from zi_warehouse import config, warehouse
from zi_warehouse.sources import funding_checks, funding_db

#: Same key as dagster-dbt gives the dbt source raw_funding_db.funding_db_extracts (staging depends on it).
DB_EXTRACT_KEY = AssetKey(["raw_funding_db", "funding_db_extracts"])


@asset(
    key=DB_EXTRACT_KEY,
    group_name="funding",
    pool=WAREHOUSE_POOL,
    kinds={"python", "postgres", "duckdb"},
    description=(
        "Förderdatenbank (PostgreSQL) inkrementell nach Änderungszeitpunkt in die raw.funding__*-Tabellen; "
        "nur aktiv, wenn ZI_FUNDING_DB_DSN gesetzt ist."
    ),
)
def raw_funding_db(context: AssetExecutionContext) -> MaterializeResult:
    paths = config.paths().ensure()
    if config.funding_db_dsn() is None:
        summary = funding_db.run(None, dsn=None)  # returns "not configured" without touching anything
        context.log.info(summary.message_de)
        return MaterializeResult(metadata=summary.as_metadata())
    with warehouse.connect(paths.warehouse) as con:
        summary = funding_db.run(con, log=context.log.info)
    return MaterializeResult(metadata=summary.as_metadata())


def _check(name: str, asset_key: AssetKey, blocking: bool, description: str):
    fn = funding_checks.CHECKS[name][0]

    @asset_check(
        name=f"funding_{name}",
        asset=asset_key,
        blocking=blocking,
        pool=WAREHOUSE_POOL,
        description=description,
    )
    def _run() -> AssetCheckResult:
        with warehouse.connect(config.paths().warehouse) as con:
            outcome = fn(con)
        return AssetCheckResult(
            passed=outcome.passed,
            severity=AssetCheckSeverity.ERROR if blocking else AssetCheckSeverity.WARN,
            description=outcome.message_de,
            metadata=outcome.metadata(),
        )

    return _run


def _sequence_check():
    """Blocking on every raw funding table: no staging model builds on an incomplete delta sequence."""
    keys = raw_asset_keys("funding")
    name = "funding_delta_sequence_complete"

    @multi_asset_check(
        name=name,
        specs=[
            AssetCheckSpec(
                name,
                asset=key,
                blocking=True,
                description="Förderdaten-Extrakte lückenlos: keine Lieferung fehlt, ist zurückgehalten "
                "oder abgewiesen (blockierend).",
            )
            for key in keys
        ],
        pool=WAREHOUSE_POOL,
    )
    def _run():
        with warehouse.connect(config.paths().warehouse) as con:
            warehouse.ensure_tables(con, {})
            outcome = funding_checks.delta_sequence_complete(con)
        for key in keys:
            yield AssetCheckResult(
                asset_key=key,
                check_name=name,
                passed=outcome.passed,
                severity=AssetCheckSeverity.ERROR,
                description=outcome.message_de,
                metadata=outcome.metadata(),
            )

    return _run


asset_checks = [
    _sequence_check(),
    _check(
        "payments_have_approval",
        dbt_model_key("int_funding__payments"),
        True,
        "Jede Zahlung hat einen gültigen Bescheid (blockierend).",
    ),
    _check(
        "approvals_have_application",
        dbt_model_key("int_funding__approvals"),
        True,
        "Jeder Bescheid hat einen Antrag (blockierend).",
    ),
    _check(
        "applications_municipality_known",
        dbt_model_key("int_funding__applications"),
        True,
        "Jeder Antrag hat eine bekannte Kommune (blockierend).",
    ),
    _check(
        "approved_within_requested",
        dbt_model_key("int_funding__approvals"),
        False,
        "Bewilligt <= beantragt, sonst markiert (Warnung).",
    ),
    _check(
        "funding_rate_within_limits",
        dbt_model_key("int_funding__applications"),
        False,
        "Fördersatz in den Grenzen der FöRL KRiS: kommunal bis 100 %, privat bis 90 % (Warnung).",
    ),
    _check(
        "minimum_grant_thresholds",
        dbt_model_key("int_funding__approvals"),
        False,
        "Bagatellgrenze: kommunal > 12.500 EUR, sonst > 2.000 EUR (Warnung).",
    ),
    _check(
        "applications_keep_their_municipality",
        dbt_model_key("int_funding__applications"),
        False,
        "Kein Antrag wechselt zwischen zwei Extrakten die Kommune; sonst wandern Mittel und Kennzahlen mit (Warnung).",
    ),
    _check(
        "applications_before_approval",
        dbt_model_key("int_funding__approvals"),
        False,
        "Kein Bescheid ist älter als sein Antrag (Warnung).",
    ),
]

assets = [raw_funding_db]
sensors = []
schedules = []
jobs = []
