"""Dagster wiring of the forecast workbooks: feedback workbooks, the coordinators' outbox and the row-accounting
check.

The ingest asset ``raw_forecasts`` itself comes from ``sources.py``; reading and validation live in
``zi_warehouse/sources/forecasts.py`` and ``zi_warehouse/forecasts/``. Ingest is per file and
hash-based, so each submission (municipality and quarter = one file) is re-runnable alone: dropping a
corrected file re-reads only that file, and re-running with nothing new changes nothing. New workbooks are
picked up by the landing sensor (``dagster_zi/landing.py``).

A workbook dropped while a build holds the warehouse gets its feedback from ``forecast_feedback_during_build``,
a job outside the writer pool that the landing sensor starts at once: it reads and checks the file without the
warehouse file (``feedback.write_feedback_from_landing``); the delivery's own build follows when the warehouse
is free.

The outbox (``zi_warehouse/outbox.py``) comes after the feedback workbooks and depends on nothing else of the
forecasts: a dropped workbook gets its feedback workbook first, the e-mail to its municipality after it. It
also follows the tree and surface ingests, whose files the municipalities deliver as well.
"""

from __future__ import annotations

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    MaterializeResult,
    asset,
    asset_check,
    job,
    op,
)

from dagster_zi.constants import FEEDBACK_ASSET, FEEDBACK_DURING_BUILD_JOB, WAREHOUSE_POOL
from dagster_zi.sources import raw_asset_keys
from zi_warehouse import alerts, config, outbox, warehouse
from zi_warehouse.forecasts.feedback import write_feedback, write_feedback_from_landing

#: The forecasts ingest multi-asset materialises these keys together (one per raw table).
RAW_FORECASTS_KEYS = raw_asset_keys("forecasts")
RAW_FORECASTS = AssetKey(["raw_forecasts", "forecasts__projects"])
FAMILY = "forecasts"


@asset(
    name=FEEDBACK_ASSET,
    group_name=FAMILY,
    # Not behind the ledger asset (raw.rejected_rows), which waits for every family's ingest and its blocking
    # checks: a funding delta missing from the sequence would hold back every coordinator's feedback. The
    # forecast ingest writes the rows this reads (raw.ingestion_files, raw.rejected_rows) itself.
    deps=RAW_FORECASTS_KEYS,
    pool=WAREHOUSE_POOL,
    kinds={"python", "excel"},
    description="Rückmeldedateien je Kommune und Meldung: abgewiesene Zeilen mit Gründen (data/feedback/forecasts/).",
)
def forecast_feedback_workbooks() -> MaterializeResult:
    paths = config.paths().ensure()
    with warehouse.connect(paths.warehouse) as con:
        warehouse.ensure_tables(con, {})
        written = write_feedback(con, paths.feedback, paths.landing)
    return MaterializeResult(metadata={"workbooks": len(written), "folder": str(paths.feedback / FAMILY)})


@op(
    name="write_feedback_from_landing",
    config_schema={"files": [str]},
    description=(
        "Rückmeldedateien für Prognosedateien, die während eines Builds eintreffen: gelesen und geprüft ohne "
        "die Warehouse-Datei; files = Dateien relativ zu landing/."
    ),
)
def write_feedback_from_landing_op(context) -> None:
    paths = config.paths().ensure()
    written = write_feedback_from_landing(paths.landing, context.op_config["files"], paths.feedback)
    context.log.info(  # one with rejections, written now or already as it should be
        f"Rückmeldedatei(en) aktuell ({len(written)}): " + (", ".join(p.name for p in written) or "keine Abweisungen")
    )


@job(
    name=FEEDBACK_DURING_BUILD_JOB,
    description=(
        "Rückmeldung während eines Builds: Prognosedateien, die eintreffen, während ein Build das Warehouse hält, "
        "bekommen ihre Rückmeldedatei sofort (startet der Landing-Sensor). Ihr eigener Build folgt danach."
    ),
)
def forecast_feedback_during_build() -> None:
    write_feedback_from_landing_op()


@asset(
    name="coordinator_outbox",
    group_name=FAMILY,
    deps=[AssetKey(FEEDBACK_ASSET), *raw_asset_keys("trees"), *raw_asset_keys("surfaces")],
    pool=WAREHOUSE_POOL,
    kinds={"python", "email"},
    description=(
        "E-Mail je Kommune mit neuen Lieferungen: was je Datei übernommen und abgewiesen wurde, die "
        "Rückmeldedateien im Anhang (data/outbox/*.eml); gesendet, wenn ZI_ALERT_SMTP_HOST und "
        "ZI_COORDINATOR_ADDRESSES gesetzt sind (Mailserver der Benachrichtigungen). record.jsonl hält fest, was "
        "wann an wen ging."
    ),
)
def coordinator_outbox(context) -> MaterializeResult:
    paths = config.paths().ensure()
    settings = alerts.SmtpSettings.from_env()
    addresses = outbox.coordinator_addresses()
    with warehouse.connect(paths.warehouse) as con:
        warehouse.ensure_tables(con, {})
        result = outbox.run(con, paths, settings, addresses, log=context.log.warning)
    return MaterializeResult(metadata={**result.as_metadata(), "folder": str(paths.outbox)})


@asset_check(
    asset=AssetKey("coordinator_outbox"),
    name="coordinator_outbox_delivered",
    blocking=False,
    description=(
        "Rückmeldungen erreichen die Kommunen: ist der Versand eingerichtet (ZI_ALERT_SMTP_HOST), wartet keine "
        "Nachricht wegen einer fehlenden Adresse oder eines Versandfehlers."
    ),
)
def coordinator_outbox_delivered() -> AssetCheckResult:
    paths = config.paths()
    settings = alerts.SmtpSettings.from_env()
    addresses = outbox.coordinator_addresses() or {}
    waiting = outbox.unsent(outbox.read_record(paths.outbox))
    stuck = sorted(name for name, event in waiting.items()) if settings else []
    no_address = sorted(
        {waiting[n]["municipality_key"] for n in stuck if not addresses.get(waiting[n]["municipality_key"])}
    )
    return AssetCheckResult(
        passed=not stuck,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "sending_configured": settings is not None,
            "messages_waiting": len(waiting),
            "messages_stuck": len(stuck),
            "municipalities_without_address": ", ".join(no_address) or "–",
        },
    )


def accounting_violations(con) -> list[tuple]:
    """Forecast files whose rows do not add up: read = loaded + rejected, and nothing loaded from a failed file."""
    return con.execute(
        "select source_file, outcome, rows_read, rows_loaded, rows_rejected from raw.ingestion_files "
        "where source_family = ? and ("
        " (outcome in ('loaded', 'partially_loaded', 'rejected') and rows_read <> rows_loaded + rows_rejected)"
        " or (outcome in ('failed', 'blocked', 'duplicate') and rows_loaded <> 0)"
        " or (outcome in ('failed', 'duplicate') and error_message is null)) order by 1",
        [FAMILY],
    ).fetchall()


def loaded_rows_mismatch(con) -> list[tuple]:
    """Files whose ledger count of loaded rows differs from the rows actually in raw.forecasts__projects."""
    return con.execute(
        "select f.source_file, f.rows_loaded, coalesce(p.n, 0) from raw.ingestion_files f "
        "left join (select _source_file, count(*) n from raw.forecasts__projects group by 1) p "
        "on p._source_file = f.source_file where f.source_family = ? and f.rows_loaded <> coalesce(p.n, 0)",
        [FAMILY],
    ).fetchall()


@asset_check(
    asset=RAW_FORECASTS,
    name="forecast_row_accounting",
    blocking=True,
    pool=WAREHOUSE_POOL,
    description="Zeilenbilanz je Prognosedatei: gelesen = geladen + abgewiesen, und die geladenen Zeilen stehen in raw.",
)
def forecast_row_accounting() -> AssetCheckResult:
    with warehouse.connect(config.paths().warehouse) as con:
        bad = accounting_violations(con)
        missing = loaded_rows_mismatch(con)
        files = con.execute(
            "select count(*), coalesce(sum(rows_read), 0), coalesce(sum(rows_loaded), 0), "
            "coalesce(sum(rows_rejected), 0) from raw.ingestion_files where source_family = ?",
            [FAMILY],
        ).fetchone()
    return AssetCheckResult(
        passed=not bad and not missing,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "files": int(files[0]),
            "rows_read": int(files[1]),
            "rows_loaded": int(files[2]),
            "rows_rejected": int(files[3]),
            "files_violating": len(bad) + len(missing),
            "examples": str((bad + missing)[:5]),
        },
    )


assets = [forecast_feedback_workbooks, coordinator_outbox]
asset_checks = [forecast_row_accounting, coordinator_outbox_delivered]
sensors = []
schedules = []
jobs = [forecast_feedback_during_build]
