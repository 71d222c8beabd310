"""Dagster wiring of the controlling layer: the quality checks, the quality mart and the quality report.

What belongs here: only wiring; the checks live in ``zi_warehouse/quality/``, the report in
``zi_warehouse/reports/quality.py``.

Order within a run, and why:
1. ``raw_quality/data_quality_results`` (after every public mart of the main dbt build) runs the GX suites
   of the marts that changed since their last validation (the others keep their records,
   ``zi_warehouse/quality/reuse.py``), all reconciliations and freshness checks, and appends the records to
   ``raw.data_quality_results``;
2. ``zi_quality_dbt_assets`` (a second dbt invocation, only the models tagged ``zi_quality``) builds
   ``marts.mart_data_quality`` from that table, so even a failed check's rows are in the working mart;
3. the asset checks on ``marts/mart_data_quality`` (one per suite, reconciliation and freshness rule) read
   this run's records from the mart and report them with their severity: ERROR + blocking where a failure
   must withhold publishing, WARN otherwise. ``published_warehouse`` depends on the quality mart, so a
   failed blocking check leaves the previous published copy in place;
4. ``quality_report`` renders the report from the results (it depends on the results, not on the mart, so
   it is written even when a blocking check stops publishing).
"""

import datetime as dt
import json
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    asset,
    multi_asset_check,
)
from dagster_dbt import DbtCliResource, dbt_assets

from dagster_zi.constants import WAREHOUSE_POOL
from dagster_zi.dbt import NO_RUN_ARTEFACTS, ZiDbtTranslator, dbt_project, zi_dbt_assets
from dagster_zi.keys import dbt_model_key
from zi_warehouse import config, warehouse
from zi_warehouse.german import sort_key
from zi_warehouse.quality import freshness, reconciliations, results, reuse, run_all, suites
from zi_warehouse.reference import municipality_by_key
from zi_warehouse.reports.labels import check_label

if TYPE_CHECKING:
    from zi_warehouse.reports.quality import PipelineCheck

#: dbt selection of the controlling layer's models (built in their own dbt invocation, see dagster_zi/dbt.py).
QUALITY_DBT_SELECT = "tag:zi_quality"
RESULTS_KEY = AssetKey(["raw_quality", results.RESULTS_TABLE])
MART_KEY = AssetKey(["marts", "mart_data_quality"])
GROUP = "quality"


def public_mart_keys() -> list[AssetKey]:
    """Every mart of the main dbt build (schema marts): the checks run after all of them."""
    return sorted((k for k in zi_dbt_assets.keys if k.path[0] == "marts"), key=lambda k: k.path)


@asset(
    key=RESULTS_KEY,
    group_name=GROUP,
    deps=public_mart_keys(),
    pool=WAREHOUSE_POOL,
    kinds={"python", "duckdb"},
    description=(
        "Qualitätsprüfungen eines Laufs (GX-Suiten je Mart, quellenübergreifende Abgleiche, Aktualität der "
        "Lieferungen), angehängt an raw.data_quality_results (Historie über alle Läufe)."
    ),
)
def data_quality_results(context: AssetExecutionContext) -> MaterializeResult:
    paths = config.paths().ensure()
    started = dt.datetime.now(dt.UTC)
    with warehouse.connect(paths.warehouse) as con:
        suite_plan = reuse.plan(con, suites.suites())
        records = run_all(con, suite_plan=suite_plan)
        results.append_results(con, records, run_id=context.run.run_id, run_started_at=started)
        reuse.remember(con, suite_plan, context.run.run_id)
    failed = [r for r in records if not r.passed]
    context.log.info(
        f"{len(records)} Prüfergebnisse, {len(failed)} fehlgeschlagen; Suiten geprüft: "
        f"{len(suite_plan.to_run)}, unverändert übernommen: {len(suite_plan.reused_marts)}"
    )
    return MaterializeResult(
        metadata={
            "run_id": context.run.run_id,
            "results": len(records),
            "suites_run": len(suite_plan.to_run),
            "suites_reused": ", ".join(suite_plan.reused_marts) or "keine",
            "failed_error": sum(r.severity == "error" for r in failed),
            "failed_warn": sum(r.severity == "warn" for r in failed),
            "seconds": round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1),
        }
    )


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=ZiDbtTranslator(),
    select=QUALITY_DBT_SELECT,
    name="zi_quality_dbt_assets",
    pool=WAREHOUSE_POOL,
)
def zi_quality_dbt_assets(context: AssetExecutionContext, dbt: DbtCliResource):
    yield from dbt.cli(["build", *NO_RUN_ARTEFACTS], context=context).stream()


# --- asset checks: one per suite, reconciliation and freshness rule, evaluated from the quality mart ---------


def check_groups() -> list[tuple[str, str, bool, str]]:
    """(Dagster check name, check_name prefix in the mart, blocking, description) for every check."""
    groups = [
        (
            f"suite_{s.mart}",
            f"{s.mart}.",
            True,
            f"GX-Suite der Mart {s.mart} (Schlüssel, Wertebereiche, zulässige Werte); Fehler blockieren.",
        )
        for s in suites.suites()
    ]
    for name, (severity, description) in reconciliations.CATALOGUE.items():
        blocking = severity == "error"
        groups.append(
            (
                f"reconciliation_{name}",
                f"reconciliation.{name}",
                blocking,
                description + (" (blockierend)" if blocking else " (Warnung)"),
            )
        )
    for name, description in freshness.CATALOGUE.items():
        groups.append((f"freshness_{name}", f"freshness.{name}", False, description + " (Warnung)"))
    return groups


def evaluate_group(rows: list[dict], prefix: str, blocking: bool) -> tuple[bool, AssetCheckSeverity, str, dict]:
    """Pass/fail, severity, German summary and metadata of one check from this run's mart rows."""
    mine = [r for r in rows if r["check_name"] == prefix or r["check_name"].startswith(prefix)]
    failed = [r for r in mine if r["outcome"] == "failed"]
    failed_error = [r for r in failed if r["severity"] == "error"]
    # A blocking check reports ERROR unless only its warn-level rules failed (those must not withhold publishing).
    severity = AssetCheckSeverity.ERROR if blocking and (failed_error or not failed) else AssetCheckSeverity.WARN
    if not mine:
        return (
            False,
            AssetCheckSeverity.ERROR if blocking else AssetCheckSeverity.WARN,
            "Keine Prüfergebnisse dieses Laufs in marts.mart_data_quality.",
            {},
        )
    if failed:
        # As the quality report names them: the rule's German label, the municipality's name.
        names = sorted({check_label(r["check_name"], r.get("description_de")) for r in failed})
        by_key = municipality_by_key()
        munis = sorted(
            {by_key[r["municipality_key"]].name if r["municipality_key"] in by_key else "regionweit" for r in failed},
            key=sort_key,
        )
        text = f"{len(failed)} Ergebnis(se) fehlgeschlagen: {'; '.join(names[:5])}; betroffen: {', '.join(munis[:10])}"
    else:
        text = f"Alle {len(mine)} Ergebnisse bestanden."
    metadata = {
        "results": len(mine),
        "failed": len(failed),
        "failed_error": len(failed_error),
        "rows_failed": sum(int(r["rows_failed"]) for r in failed),
        "examples": json.dumps(
            [
                {"check": r["check_name"], "municipality": r["municipality_key"], "examples": r["example_values"]}
                for r in failed[:5]
            ],
            ensure_ascii=False,
        ),
    }
    return not failed, severity, text, metadata


def _mart_rows(con, run_id: str) -> list[dict]:
    columns = (
        "select check_name, description_de, municipality_key, severity, outcome, rows_failed, example_values "
        "from marts.mart_data_quality"
    )
    rows = warehouse.rows(con, f"{columns} where run_id = ?", [run_id])
    if rows:
        return rows
    # The checks were run on their own (not in the run that wrote the results): judge the latest run.
    return warehouse.rows(con, f"{columns} where is_latest_run")


GROUPS = check_groups()


@multi_asset_check(
    specs=[
        AssetCheckSpec(name, asset=MART_KEY, blocking=blocking, description=description)
        for name, _, blocking, description in GROUPS
    ],
    name="quality_checks",
    pool=WAREHOUSE_POOL,
)
def quality_checks(context):
    with warehouse.connect(config.paths().warehouse) as con:
        rows = _mart_rows(con, context.run.run_id)
    for name, prefix, blocking, _ in GROUPS:
        passed, severity, text, metadata = evaluate_group(rows, prefix, blocking)
        yield AssetCheckResult(
            asset_key=MART_KEY, check_name=name, passed=passed, severity=severity, description=text, metadata=metadata
        )


@asset(
    name="quality_report",
    group_name=GROUP,
    deps=[RESULTS_KEY, dbt_model_key("mart_rejected_rows"), dbt_model_key("mart_ingestion_files")],
    pool=WAREHOUSE_POOL,
    kinds={"html"},
    description="Qualitätsbericht (HTML, deutsch, offline lesbar): reports/quality/<Lauf>/index.html und latest/.",
)
def quality_report(context: AssetExecutionContext) -> MaterializeResult:
    from zi_warehouse.reports.quality import write_report

    paths = config.paths().ensure()
    failed_checks = failed_pipeline_checks(context.instance)
    with warehouse.connect(paths.warehouse, read_only=False) as con:
        report = write_report(con, paths, run_id=context.run.run_id, pipeline_checks=failed_checks)
    context.log.info(f"Qualitätsbericht: {report.index_path}")
    return MaterializeResult(
        metadata={
            "path": str(report.index_path),
            "latest": str(report.latest_path),
            "checks_failed": report.checks_failed,
        }
    )


def failed_pipeline_checks(instance) -> "list[PipelineCheck]":
    """The Dagster asset checks outside mart_data_quality (funding, trees, climate, row accounting, dbt tests)
    whose latest completed evaluation failed, for the quality report: what warns or blocks is then the same in
    the report as in ``zi build``'s summary and the UI. A check planned in this run but not evaluated yet
    counts with its previous evaluation (its data has not changed since)."""
    from dagster import AssetCheckKey
    from dagster._core.storage.asset_check_execution_record import (
        COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
        AssetCheckExecutionRecordStatus,
    )

    from dagster_zi.definitions import defs
    from zi_warehouse.reports.quality import PipelineCheck

    storage = instance.event_log_storage
    keys = [k for k in defs.resolve_asset_graph().asset_check_keys if k.asset_key != MART_KEY]
    latest: dict[AssetCheckKey, object] = dict(storage.get_latest_asset_check_execution_by_key(keys))
    for key, record in list(latest.items()):
        if record.status not in COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES:
            history = storage.get_asset_check_execution_history(
                key, limit=1, status=COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
            )
            latest[key] = history[0] if history else None
    found = []
    for key, record in latest.items():
        if record is None or record.status != AssetCheckExecutionRecordStatus.FAILED or record.event is None:
            continue
        evaluation = record.event.dagster_event.event_specific_data
        found.append(
            PipelineCheck(
                asset_key=key.asset_key.to_user_string(),
                check_name=key.name,
                severity="warn" if evaluation.severity.value == "WARN" else "error",
                checked_at=dt.datetime.fromtimestamp(record.event.timestamp, tz=dt.UTC),
                description=evaluation.description,
                run_id=record.run_id,
            )
        )
    return found


assets = [data_quality_results, zi_quality_dbt_assets, quality_report]
asset_checks = [quality_checks]
sensors = []
schedules = []
jobs = []
