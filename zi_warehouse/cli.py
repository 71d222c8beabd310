"""The ``zi`` command line: demo data, the whole build with a readable summary, the template.

Dagster is imported only by the commands that run the pipeline, so ``zi --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import threading
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dagster_zi.deployment import PROCESS_NAMES
from zi_warehouse import config
from zi_warehouse.cli_german import GROUP_METAVARS, METAVARS, GermanCommand, GermanGroup
from zi_warehouse.german import count_of, format_number

app = typer.Typer(
    help="ZI Warehouse: Monitoring der Zukunftsinitiative Klima.Werk.",
    no_args_is_help=True,
    cls=GermanGroup,
    **GROUP_METAVARS,
)


def command(*args, **kwargs):
    """``app.command`` with Typer's and Click's own texts in German (``cli_german``)."""
    return app.command(*args, cls=GermanCommand, **METAVARS, **kwargs)


#: Width of the output when it goes to a file or a pipe and COLUMNS is unset (rich would cut tables at 80).
PIPED_WIDTH = 160
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPED_WIDTH)

EXAMPLE_QUERY = "select * from marts.mart_budget_year where year = 2020;"


@command(
    "demo-data",
    help="Demo-Daten (fest, wiederholbar) in den Landebereich schreiben, in den echten Formaten der Absender.",
)
def demo_data(
    scale: float = typer.Option(0.05, help="1 = realistische Größe der Region; 0.05 = kleine Demo"),
    seed: int = typer.Option(7, help="Zufallsstartwert (gleicher Wert, gleiche Dateien)"),
    landing: Path = typer.Option(None, help="Ziel (Standard: $ZI_DATA_DIR/landing)"),
) -> None:
    from zi_warehouse.demo import generate

    target = landing or config.paths().ensure().landing
    started = time.perf_counter()
    with console.status("Demo-Daten werden geschrieben …") as status:
        written = generate(target, scale=scale, seed=seed, progress=status.update)
    table = Table("Quelle", "Dateien", title=f"Demo-Daten in {target}")
    for family, files in written.items():
        table.add_row(family, str(len(files)))
    console.print(table)
    console.print(f"fertig in {format_number(time.perf_counter() - started, 1, 's')}")


@command(
    "template",
    help="Die leere Prognose-Vorlage (Excel) schreiben, die die Koordinatorinnen und Koordinatoren ausfüllen.",
)
def template(
    out: Path = typer.Argument(Path("ZI-Projektprognose-Vorlage.xlsx"), help="Zieldatei (.xlsx)", metavar="ZIELDATEI"),
    version: str = typer.Option("current", help="Vorlagenversion: current, 2021 oder 2020"),
    period: str = typer.Option(None, help="Meldequartal vorbelegen, z. B. 2026-Q3"),
) -> None:
    from zi_warehouse.forecasts.template import write_template

    write_template(out, version=version, period=period)
    console.print(f"Vorlage geschrieben: {out}")


def _not_negative(value: float) -> float:
    if value < 0:
        raise typer.BadParameter("erwartet wird ein Wert ab 0.")
    return value


@command(
    "build",
    help="Alle gelieferten Dateien laden, die Marts bauen und prüfen, das Warehouse lesend veröffentlichen.\n\n"
    "Der Lauf erscheint im Dagster-UI des Datenverzeichnisses. Es läuft immer nur ein Build je Datenverzeichnis: "
    "läuft schon einer (Zeitplan, Landesensor, Start aus dem UI, Build einer Kollegin) oder hat der "
    "Dagster-Betrieb schon einen eingeplant, wartet dieser darauf oder bricht mit --no-wait ab und nennt ihn. Hat sich seit dem letzten erfolgreichen Build nichts geändert, "
    "wird nichts gestartet; haben nur einzelne Quellen neue Dateien, laufen nur deren Schritte und was davon "
    "abhängt.",
)
def build(
    demo_if_empty: bool = typer.Option(True, help="Leerer Landebereich: zuerst die Demo-Daten schreiben"),
    always: bool = typer.Option(False, "--always", help="Vollständiger Lauf, auch wenn sich nichts geändert hat"),
    wait_minutes: float = typer.Option(
        60,
        "--wait-minutes",
        callback=_not_negative,
        help="Läuft schon ein Build auf diesem Datenverzeichnis: so lange warten",
    ),
    no_wait: bool = typer.Option(False, "--no-wait", help="Läuft schon ein Build: sofort abbrechen statt zu warten"),
    rebuild: bool = typer.Option(
        False,
        "--rebuild",
        help="Das Arbeits-Warehouse neu aufbauen: alles aus dem Landebereich, Prüfhistorie und Förder-Snapshots "
        "werden übernommen; scheitert der Build, bleibt der bisherige Arbeitsstand",
    ),
) -> None:
    """One build in the data directory's Dagster instance (the help text above says what users see). One writer
    at a time: ``zi_warehouse.writer_lock``; the no-change check and the families to run: ``build_state``."""
    from dagster_zi.instance import InstanceMismatch  # light: no Dagster import
    from zi_warehouse import build_state, landing, writer_lock

    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    paths = config.paths()
    os.environ["ZI_DATA_DIR"] = str(paths.data_dir)  # dbt's profile reads it
    started = time.perf_counter()
    always = always or rebuild
    if always:
        os.environ["ZI_BUILD_ALWAYS"] = "1"

    def waiting(holder) -> None:
        _print_waiting(holder, wait_minutes, "zi build", "--no-wait bricht stattdessen ab")

    deadline = time.monotonic() + (0 if no_wait else wait_minutes * 60)
    report = None
    restored = False  # a failed rebuild: the previous working file is back
    waited = 0.0  # for another build: not part of what this one took
    instance = None
    try:
        if always or build_state.decide(paths).mode != "skip":
            # Dagster's import and its instance (~2 s) come before the writer lock, so that a run queued behind
            # the lock or a colleague's build does not wait for them; what to build is decided under the lock.
            from dagster_zi import runner

            try:
                instance = runner.open_instance()
            except OSError:  # e.g. a read-only data directory: the writer lock below says so in German
                instance = None
        while report is None:
            asked = time.perf_counter()
            with writer_lock.hold(
                paths.warehouse_dir,
                run_id="",
                launched_by="zi build",
                wait_seconds=max(0.0, deadline - time.monotonic()),
                on_wait=waiting,
            ):
                waited += time.perf_counter() - asked
                if demo_if_empty and landing.is_empty(paths.landing):
                    from zi_warehouse.demo import DEFAULT_SCALE, DEFAULT_SEED, generate  # numpy, shapely, …: ~0.4 s

                    console.print(
                        f"Landebereich {paths.landing} ist leer: Demo-Daten (Skala {DEFAULT_SCALE}) werden erzeugt."
                    )
                    with console.status("Demo-Daten …") as status:
                        generate(paths.ensure().landing, DEFAULT_SCALE, DEFAULT_SEED, progress=status.update)
                paths.ensure()
                decision = build_state.decide(paths)
                if decision.mode == "skip":
                    print_unchanged(paths, decision, time.perf_counter() - started - waited, waited)
                    _write_timings(None, time.perf_counter() - started, decision)
                    return
                from dagster_zi import runner

                ahead = runner.runs_ahead(instance)
                if not ahead:
                    families = decision.families if decision.mode == "families" else None
                    if families:
                        console.print(f"Teillauf: {decision.reason}; nur diese Quellen und alles Nachgelagerte.")
                    else:
                        reason = (
                            "Neuaufbau (--rebuild)"
                            if rebuild
                            else "mit --always angefordert"
                            if always
                            else decision.reason
                        )
                        console.print(f"Vollständiger Lauf: {reason}.")
                    if rebuild:
                        _check_readable(paths)
                    with console.status("Build läuft …") as status, _steps_output_to(steps_log_path(paths)):
                        report = runner.run_build(
                            progress=lambda msg: status.update(f"Build {msg}"),
                            families=families,
                            instance=instance,
                            rebuild=rebuild,
                        )
                    # The run's executor started over and, without a publish, put the previous file back.
                    restored = rebuild and not (report.success or "published_warehouse" in report.published_steps)
                    break
            # A build the daemon queued (a sensor's, the schedule's) would run after this one and build the
            # same files again: it goes first, with the lock released, and this one then builds what is left.
            if no_wait:
                raise runner.RunsAhead(ahead)
            console.print(f"[yellow]{runner.describe_runs_ahead(ahead)}[/yellow]")
            console.print(
                "  zi build wartet, bis er fertig ist, und baut danach nur, was dann noch fehlt "
                f"(höchstens {wait_minutes:g} min; --no-wait bricht stattdessen ab)."
            )
            asked = time.perf_counter()
            with console.status("Wartet auf den Dagster-Betrieb …"):
                runner.wait_for_runs_ahead(deadline)
            waited += time.perf_counter() - asked
    except writer_lock.WriterBusy as busy:
        console.print(f"[red]Nicht gestartet.[/red] {busy}")
        console.print(
            f"  Später erneut starten; den laufenden Build zeigt das Dagster-UI ({config.dagster_ui_url()}/runs)."
        )
        raise typer.Exit(code=EXIT_BUSY) from None
    except InstanceMismatch as exc:
        console.print(f"[red]Nicht gestartet.[/red] {exc}")
        raise typer.Exit(code=2) from None
    except writer_lock.WarehouseNotWritable as exc:
        console.print(f"[red]Build fehlgeschlagen.[/red] {exc}")
        console.print(f"Nichts veröffentlicht; die bisherige Fassung bleibt unverändert: {paths.published_duckdb}")
        raise typer.Exit(code=1) from None
    print_summary(paths, report, time.perf_counter() - started, restored=restored)
    _write_timings(report, time.perf_counter() - started, decision)
    if not report.success:
        raise typer.Exit(code=1)


def _check_readable(paths: config.Paths) -> None:
    """Before a rebuild: the working file must open, else the histories cannot be taken over (German, exit 1)."""
    import duckdb

    if not paths.warehouse.exists():
        return
    try:
        duckdb.connect(str(paths.warehouse), read_only=True).close()
    except duckdb.Error as exc:
        console.print(
            f"[red]Neuaufbau nicht begonnen.[/red] Das Arbeits-Warehouse {escape(str(paths.warehouse))} lässt sich "
            f"nicht lesen ({escape(_first_line(str(exc)))}). Ist es beschädigt: die Datei löschen und zi build "
            "starten. Alles wird aus dem Landebereich neu aufgebaut; Prüfhistorie und Förder-Snapshots beginnen "
            "dann neu (die zuletzt veröffentlichte Fassung enthält die Prüfhistorie bis zu ihrer Veröffentlichung)."
        )
        raise typer.Exit(code=1) from None


#: Exit code of ``zi build`` when another build holds the data directory and it did not wait (EX_TEMPFAIL).
EXIT_BUSY = 75


*_PROCESS_KEYS, _LAST_PROCESS_KEY = PROCESS_NAMES
PROCESS_CHOICES = f"{', '.join(_PROCESS_KEYS)} oder {_LAST_PROCESS_KEY}"


def _one_process(value: str | None) -> str | None:
    if value is not None and value not in PROCESS_NAMES:
        raise typer.BadParameter(f"erwartet wird {PROCESS_CHOICES}.")
    return value


@command(
    "serve",
    help="Den Dagster-Betrieb dieses Datenverzeichnisses starten: UI, Daemon (Zeitplan, Sensoren, Warteschlange) "
    "und Run-Worker.\n\nBeenden mit Strg-C oder SIGTERM. Endet einer der drei, werden die anderen auch beendet "
    "(Exit-Code ungleich 0, ein Dienstverwalter startet neu).\n\nMit --only nur einer der drei (je eine "
    "systemd-Unit, deploy/systemd/).",
)
def serve(
    host: str = typer.Option("127.0.0.1", help="Adresse des Dagster-UI (0.0.0.0: im Netz erreichbar)"),
    port: int = typer.Option(3000, help="Port des Dagster-UI"),
    only: str = typer.Option(
        None,
        "--only",
        callback=_one_process,
        help=f"Nur diesen Prozess starten: {PROCESS_CHOICES}",
    ),
) -> None:
    """UI, daemon and run worker on the data directory's instance (``DAGSTER_HOME``): ``dagster_zi.deployment``."""
    from dagster_zi.deployment import serve_all
    from dagster_zi.instance import InstanceMismatch

    try:
        code = serve_all(host, port, console.print, only=only)
    except InstanceMismatch as exc:
        console.print(f"[red]Nicht gestartet.[/red] {exc}")
        code = 2
    raise typer.Exit(code=code)


def _write_timings(report, seconds: float, decision) -> None:
    """For ``make bench``: where the build's time went, as JSON, when ZI_BUILD_TIMINGS names a file."""
    target = os.environ.get("ZI_BUILD_TIMINGS")
    if not target:
        return
    import json

    Path(target).write_text(
        json.dumps(
            {
                "success": True if report is None else report.success,
                "total_seconds": round(seconds, 3),
                "mode": decision.mode,
                "reason": decision.reason,
                "families": decision.families,
                "skipped": report is None,
                "definitions_seconds": None if report is None else report.definitions_seconds,
                "step_seconds": {} if report is None else report.step_seconds,
            },
            indent=1,
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )


def print_unchanged(paths: config.Paths, decision, seconds: float, waited: float = 0.0) -> None:
    """The no-change run: nothing was started; say so, and what the published copy holds (``waited``: seconds
    spent waiting for another build first)."""
    _print_row_balance(paths)
    last = decision.last
    if last:
        failed = last.get("checks_failed", [])
        console.print(
            f"Dagster-Prüfungen, Stand nach dem letzten Lauf ({last.get('finished_at', '?')}): "
            f"{last.get('checks_passed', '?')} bestanden, "
            + (f"{len(failed)} fehlgeschlagen, " if failed else "")
            + count_of(len(last.get("checks_warned", [])), "Warnung", "Warnungen")
        )
        for name in failed:
            console.print(f"  [red]fehlgeschlagen[/red] {_check_line(name)}")
        for name in last.get("checks_warned", [])[:20]:
            console.print(f"  [yellow]Warnung[/yellow] {_check_line(name)}")
    console.print(
        "[green]Keine Änderung[/green] seit dem letzten erfolgreichen Lauf: Dagster und dbt nicht gestartet, "
        f"geprüft in {format_number(seconds, 1)} s"
        + (f" (zuvor {format_number(waited, 0)} s auf den anderen Build gewartet)" if waited >= 1 else "")
        + f". Veröffentlicht bleibt: {paths.published_duckdb}"
    )
    _print_parquet_line(paths)
    console.print("  Vollständigen Lauf erzwingen: .venv/bin/zi build --always")


def _print_outputs(paths: config.Paths) -> None:
    """Where the build's documents are: the reports, the feedback workbooks and e-mails for the municipalities."""
    pdfs = sorted((paths.reports / "quarterly").glob("*/bericht.pdf"))
    if pdfs:
        console.print(f"  Quartalsbericht: {pdfs[-1]}")  # folders are named by quarter: the last is the newest
    quality = paths.reports / "quality" / "latest" / "index.html"
    if quality.exists():
        console.print(f"  Qualitätsbericht: {quality}")
    workbooks = sum(1 for _ in (paths.feedback / "forecasts").rglob("*.xlsx"))
    if workbooks:
        console.print(f"  Rückmeldungen an die Kommunen: {count_of(workbooks, 'Datei', 'Dateien')} in {paths.feedback}")
    waiting = sum(1 for _ in paths.outbox.glob("*.eml"))
    if waiting:
        console.print(f"  E-Mails an die Kommunen: {paths.outbox} (Versand: docs/outbox.md)")


def _print_parquet_line(paths: config.Paths) -> None:
    console.print(
        f"  Parquet: {paths.published_parquet}/<mart>.parquet (Prüfhistorie: mart_data_quality/<JJJJ-MM>.parquet)"
    )


@command(
    "sql",
    help="Das veröffentlichte Warehouse lesend abfragen (nie die Arbeitsdatei der Pipeline).\n\n"
    "Ohne Abfrage: die Konsole (Zeilen bearbeiten, Verlauf, Strg-C bricht ab, Strg-D beendet). "
    "--release 2026-Q2 fragt den Berichtsstand dieses Quartals ab, --release <id> ein aufbewahrtes Release "
    "(zi releases).",
)
def sql(
    query: str = typer.Argument(
        None, help="SQL-Abfrage; ohne Abfrage und ohne --file: interaktive Konsole", metavar="ABFRAGE"
    ),
    file: Path = typer.Option(None, "--file", "-f", help="Datei mit einer SQL-Abfrage"),
    out: Path = typer.Option(
        None, "--out", "-o", help="Ergebnis als .csv oder .xlsx schreiben (Excel: deutsche Spaltenüberschriften)"
    ),
    database: Path = typer.Option(None, help="Standard: $ZI_DATA_DIR/published/zi.duckdb"),
    release: str = typer.Option(
        None, "--release", help="Berichtsstand (z. B. 2026-Q2) oder Release-Id statt des aktuellen Stands"
    ),
) -> None:
    """Read-only queries of a release (the console: ``zi_warehouse/sql_shell.py``)."""
    import duckdb

    from zi_warehouse import releases
    from zi_warehouse.sql_export import check_output, write_result
    from zi_warehouse.sql_shell import PublishedWarehouseMissing, error_text, interactive, open_published, run_query

    try:
        check_output(out)
        text = file.read_text(encoding="utf-8") if file else query
        if out is not None and text is None:
            raise ValueError("--out braucht eine Abfrage (Argument oder --file).")
        if release and database:
            raise ValueError("--release und --database schließen sich aus.")
        if release:
            database = releases.resolve(config.paths().published, release) / releases.DUCKDB_FILE
            console.print(f"Stand: {database.parent}")
        con = open_published(database or config.paths().published_duckdb)
    except (OSError, ValueError, PublishedWarehouseMissing, releases.ReleaseError) as exc:
        console.print(f"[red]Fehler:[/red] {exc}")
        raise typer.Exit(1) from None
    # Results are laid out for the terminal as it is now (the module's console took its width at import).
    results_console = Console()
    try:
        if text is None:
            interactive(con, results_console)
        elif out is not None:
            rows = write_result(con, text, out)
            console.print(f"{count_of(rows, 'Zeile', 'Zeilen')} geschrieben: {out}")
        else:
            run_query(con, text, results_console)
    except duckdb.Error as exc:
        console.print(f"[red]Fehler:[/red] {error_text(exc)}", highlight=False)
        raise typer.Exit(1) from None
    except ValueError as exc:
        console.print(f"[red]Fehler:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        con.close()


@command(
    "report",
    help="Den Quartalsbericht für das Controlling (HTML und PDF) aus dem veröffentlichten Warehouse schreiben.\n\n"
    "Mit --quarter wird das Release, über das er berichtet, als Berichtsstand dieses Quartals eingefroren "
    "(published/reporting/<JJJJ-Qn>/, dauerhaft, mit dem Bericht daneben); mit --draft oder ohne --quarter: "
    "ein Entwurf aus dem aktuellen Release, nichts wird eingefroren.",
)
def report(
    quarter: str = typer.Option(
        None, "--quarter", help="Berichtsquartal JJJJ-Qn (Standard: letztes Quartal mit Daten)"
    ),
    draft: bool = typer.Option(False, "--draft", help="Nur Entwurf: den Stand nicht als Berichtsstand einfrieren"),
) -> None:
    """The quarterly report; freezing a Berichtsstand: ``releases.freeze``."""
    from zi_warehouse.reports.quarterly import report_command

    report_command(quarter, freeze=quarter is not None and not draft, console=console)


@command(
    "releases",
    help="Die aufbewahrten Releases (eines je Veröffentlichung) und die Berichtsstände (eingefrorene Quartale) auflisten.",
)
def releases_command(
    verify: bool = typer.Option(False, "--verify", help="Berichtsstände gegen ihre SHA-256-Prüfsummen prüfen"),
) -> None:
    from zi_warehouse import releases
    from zi_warehouse.german import format_datetime

    published = config.paths().published
    frozen = releases.list_reporting(published)
    table = Table(title=f"Berichtsstände in {published / 'reporting'}")
    table.add_column("Quartal", no_wrap=True)
    table.add_column("Release", no_wrap=True)
    table.add_column("eingefroren")
    table.add_column("Bericht")
    if verify:
        table.add_column("Prüfung")
    changed = False
    for info in frozen:
        cells = [
            info.quarter,
            info.release_id,
            format_datetime(info.frozen_at) if info.frozen_at else "?",
            ", ".join(info.report_files) or "–",
        ]
        if verify:
            differing = releases.verify_frozen(info.path)
            changed = changed or bool(differing)
            cells.append("unverändert" if not differing else "[red]GEÄNDERT:[/red] " + ", ".join(differing))
        table.add_row(*cells)
    console.print(table if frozen else "Noch kein Berichtsstand eingefroren (zi report --quarter JJJJ-Qn).")
    kept = releases.list_releases(published)
    table = Table(title=f"Releases in {published / 'releases'}")
    table.add_column("Release", no_wrap=True)
    for header in ("veröffentlicht", "Lauf", "Code", "Marts (neu geschrieben)", "Status"):
        table.add_column(header)
    for info in kept:
        code = (info.code.get("git_commit") or info.code.get("code") or "?")[:10]
        if info.code.get("git_dirty"):
            code += " (geändert)"
        marks = ["aktuell"] if info.is_current else []
        marks += [f"Berichtsstand {q}" for q in info.frozen_as]
        table.add_row(
            info.release_id,
            format_datetime(info.published_at),
            (info.run_id or "–")[:8],
            code,
            f"{info.marts} ({info.marts_written})",
            ", ".join(marks),
        )
    console.print(table if kept else f"Noch kein Release unter {published}: zuerst `zi build` ausführen.")
    if kept:
        console.print(
            f"Aufbewahrung: Tagesstände {releases.retention_days()} Tage ({releases.RETENTION_ENV}); "
            "Berichtsstände dauerhaft. Abfragen: zi sql --release <Quartal oder Release>"
        )
    if changed:
        raise typer.Exit(code=1)


@command("quality-report", help="Den Datenqualitätsbericht (HTML) eines Laufs aus den Prüfergebnissen schreiben.")
def quality_report(
    run_id: str = typer.Option(None, "--run-id", help="Lauf (Standard: der letzte Lauf)"),
) -> None:
    """Reads the pipeline's working file, which a build holds open for writing: waits for the writer lock as
    ``zi build`` does (opened beside a build, one of the two failed on DuckDB's file lock)."""
    from zi_warehouse import writer_lock
    from zi_warehouse.reports.quality import quality_report_command, require_warehouse

    paths = config.paths()
    try:
        require_warehouse(paths)  # before the lock, which would create the warehouse folder
        pipeline_checks = _failed_pipeline_checks(paths)
        with writer_lock.hold(
            paths.warehouse_dir,
            run_id="",
            launched_by="zi quality-report",
            wait_seconds=QUALITY_REPORT_WAIT_MINUTES * 60,
            on_wait=lambda holder: _print_waiting(holder, QUALITY_REPORT_WAIT_MINUTES, "zi quality-report"),
        ):
            report = quality_report_command(run_id=run_id, pipeline_checks=pipeline_checks)
    except (FileNotFoundError, LookupError, writer_lock.WriterBusy, writer_lock.WarehouseNotWritable) as exc:
        console.print(f"[red]Fehler:[/red] {exc}")
        raise typer.Exit(1) from None
    if run_id and not report.run_id.startswith(run_id):
        console.print(f"[yellow]Lauf {run_id} hat keine Prüfergebnisse; der Bericht zeigt den letzten Lauf.[/yellow]")
    blocking = report.checks_failed - report.checks_warned
    counts = (
        f"{count_of(blocking, 'blockierender Fehler', 'blockierende Fehler')}, "
        f"{count_of(report.checks_warned, 'Warnung', 'Warnungen')}"
    )
    if report.blocked_by_run_id:
        console.print(
            f"Datenqualitätsbericht nach Lauf {report.blocked_by_run_id[:8]} (angehalten, bevor er die Marts prüfte; "
            f"deren Ergebnisse aus Lauf {report.run_id[:8]}): {counts}"
        )
    else:
        console.print(f"Datenqualitätsbericht des Laufs {report.run_id[:8]}: {counts}")
    console.print(f"  {report.index_path}")
    console.print(f"  neuester Bericht: {report.latest_path}")


def _failed_pipeline_checks(paths: config.Paths) -> list:
    """The Dagster checks outside the marts' suites whose latest evaluation failed, from the data directory's
    instance, as the report written by a run shows them: a build stopped by one before its quality step (a gap
    in the funding deltas) wrote no report, and the latest report must say that nothing was published since."""
    if not (paths.dagster_home / "dagster.yaml").exists():
        return []  # no build has run through Dagster here yet
    from dagster_zi import runner
    from dagster_zi.quality import failed_pipeline_checks

    with console.status("Prüfungen der Pipeline aus der Dagster-Instanz …"):
        return failed_pipeline_checks(runner.open_instance())


#: How long ``zi quality-report`` waits for a build that holds the warehouse.
QUALITY_REPORT_WAIT_MINUTES = 60


def _print_waiting(holder, wait_minutes: float, command_name: str, alternative: str = "Strg+C bricht ab") -> None:
    """What a command that waits for the writer lock says while it waits (German)."""
    who = holder.describe_de() if holder else "ein anderer Prozess"
    console.print(f"[yellow]Auf diesem Datenverzeichnis läuft bereits ein Build:[/yellow] {who}.")
    console.print(f"  {command_name} wartet, bis er fertig ist (höchstens {wait_minutes:g} min; {alternative}).")


@command("docs-site", help="Die dbt-Dokumentation als eine eigenständige HTML-Datei erzeugen (ohne Internet lesbar).")
def docs_site_command(
    empty_catalog: bool = typer.Option(False, help="Ohne Katalog (öffnet das Warehouse nicht)"),
) -> None:
    from zi_warehouse.dbt_docs import docs_site

    docs_site(empty_catalog, console=console)


def _print_row_balance(paths: config.Paths, title_suffix: str = "", since: dt.datetime | None = None) -> None:
    """Rows per source family from the ledger (read-only: the file is not changed); with ``since``, the files
    refused or held back from then on (this build) by name and reason, below the table."""
    import duckdb

    if paths.warehouse.exists():
        try:
            con = duckdb.connect(str(paths.warehouse), read_only=True)
        except duckdb.Error as exc:  # e.g. another program holds the file open for writing
            from zi_warehouse.warehouse import locked_message

            reason = locked_message(paths.warehouse, exc) or str(exc).splitlines()[0]
            console.print(f"Zeilenbilanz nicht lesbar: {reason}", markup=False, highlight=False)
            return
        try:
            rows = con.execute(
                "select source_family, count(*), sum(rows_read), sum(rows_loaded), sum(rows_rejected), "
                "count(*) filter (where outcome in ('failed', 'blocked')) "
                "from raw.ingestion_files group by 1 order by 1"
            ).fetchall()
            refused = (
                con.execute(
                    "select source_family, file_name, outcome, error_rule from raw.ingestion_files "
                    "where outcome in ('failed', 'blocked') and loaded_at >= ? order by source_family, file_name",
                    [since],
                ).fetchall()
                if since
                else []
            )
        finally:
            con.close()
        from zi_warehouse.reports.labels import family_label, rule_label

        table = Table(
            "Quelle",
            "Dateien",
            "Zeilen gelesen",
            "geladen",
            "abgewiesen",
            "Dateien gescheitert\noder zurückgehalten",
            title=f"Zeilenbilanz je Quelle{title_suffix}",
        )
        for family, *counts in rows:
            table.add_row(family_label(family), *(format_number(n or 0) for n in counts))
        console.print(table)
        for family, name, outcome, rule in refused[:REFUSED_FILES_SHOWN]:
            why = f": {rule_label(family, rule)}" if rule else ""
            state = "zurückgehalten" if outcome == "blocked" else "abgewiesen"
            console.print(f"  {state}: {name} ({family_label(family)}){why}", markup=False, highlight=False)
        if len(refused) > REFUSED_FILES_SHOWN:
            console.print(f"  und {len(refused) - REFUSED_FILES_SHOWN} weitere Dateien (Qualitätsbericht)")


#: Files refused or held back in a build that its summary names (the rest: the quality report, mart_ingestion_files).
REFUSED_FILES_SHOWN = 5


def _this_runs_record(paths: config.Paths, report) -> dict:
    """What the build record says about the checks after this run (``build_state.checks_after``); empty when
    the run recorded nothing (it failed, or it was no build of the warehouse)."""
    from zi_warehouse import build_state

    summary = (build_state.read_record(paths) or {}).get("summary") or {}
    return summary if report.success and summary.get("run_id") == report.run_id else {}


def _print_checks_of_earlier_runs(recorded: dict, report) -> None:
    """After a partial run: the warnings of checks it did not evaluate, which still stand; a controller must
    not take a warning that was not checked again for one that went away."""
    outcomes = recorded.get("checks") or {}
    this_run = set(report.checks_warned) | set(report.checks_failed)
    earlier = [name for name, o in outcomes.items() if o in ("warned", "failed") and name not in this_run]
    if not earlier:
        return
    console.print(
        "Aus früheren Läufen weiterhin offen (in diesem Teillauf nicht erneut geprüft): "
        f"{count_of(len(earlier), 'Prüfung', 'Prüfungen')}"
    )
    for name in earlier[:20]:
        kind = "[yellow]Warnung[/yellow]" if outcomes[name] == "warned" else "[red]fehlgeschlagen[/red]"
        console.print(f"  {kind} {_check_line(name)}")


def _failed_checks(report) -> list[tuple[str, str]]:
    """(line, German description) per failed check; a check on several assets (the funding sequence check on
    every raw funding table) once, with the number of assets, rather than once per asset."""
    from zi_warehouse.reports.labels import asset_check_label

    by_check: dict[str, list[str]] = {}
    for key in report.checks_failed:
        by_check.setdefault(key.rpartition(":")[2], []).append(key)
    out = []
    for name, keys in by_check.items():
        line = _check_line(keys[0]) if len(keys) == 1 else f"{asset_check_label(name)} ({name}, an {len(keys)} Assets)"
        out.append((line, report.check_descriptions.get(keys[0], "")))
    return out


def _check_line(key: str) -> str:
    """A check of the run as the data team finds it: German label, then the key the Dagster UI shows."""
    from zi_warehouse.reports.labels import asset_check_label

    name = key.rpartition(":")[2]
    label = asset_check_label(name)
    return key if label == name else f"{label} ({key})"


def steps_log_path(paths: config.Paths) -> Path:
    """Where ``zi build`` keeps what the steps printed (dbt's progress, as dagster-dbt echoes it), for the
    last build; the Dagster UI shows the same per step."""
    return paths.warehouse_dir / "dbt_target" / "zi-build-ausgabe.log"


@contextlib.contextmanager
def _steps_output_to(path: Path):
    """The steps' printed output (several hundred lines of dbt progress) into ``path`` instead of the terminal,
    where the progress line and the summary are what a person reads. This console keeps the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    terminal = sys.stdout
    console.file = terminal
    try:
        # Standard error too: a failed step's ERROR events with their stack traces (dozens of lines per step)
        # belong with the steps' output; the summary names each step's error in one line.
        with open(path, "w", encoding="utf-8") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield
    finally:
        console.file = None  # back to following sys.stdout


def print_summary(paths: config.Paths, report, seconds: float, restored: bool = False) -> None:
    """What a person needs after a build: rows per source, checks, where the warehouse is, a query.

    ``restored``: a failed ``--rebuild`` whose previous working file was put back."""
    if report.rebuild_note:
        console.print(report.rebuild_note, markup=False, highlight=False)
    # After a failed run the table shows the working warehouse as the run left it, not what is published.
    if restored:
        _print_row_balance(paths, " (bisheriger Arbeitsstand: der fehlgeschlagene Neuaufbau wurde verworfen)")
    else:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
        _print_row_balance(paths, "" if report.success else " (Arbeitsstand nach dem fehlgeschlagenen Lauf)", since)
    recorded = _this_runs_record(paths, report)
    partial = len(recorded.get("checks") or {}) > recorded.get("checks_in_run", 0)
    if report.success or report.checks_passed or report.checks_failed or report.checks_warned:
        console.print(
            f"Dagster-Prüfungen{' dieses Teillaufs' if partial else ''}: {report.checks_passed} bestanden, {len(report.checks_failed)} fehlgeschlagen, "
            f"{count_of(len(report.checks_warned), 'Warnung', 'Warnungen')} (Einzelergebnisse je Kommune: Qualitätsbericht)"
        )
    else:
        console.print("Dagster-Prüfungen: keine gelaufen (der Lauf endete vor ihnen)")
    for line, description in _failed_checks(report):
        console.print(f"  [red]fehlgeschlagen[/red] {escape(line)}")
        if description:
            console.print(f"    {escape(description)}", highlight=False)
    for name in report.checks_warned[:20]:
        console.print(f"  [yellow]Warnung[/yellow] {_check_line(name)}")
    _print_checks_of_earlier_runs(recorded, report)
    console.print(f"Dagster-Lauf {report.run_id}: {config.run_url(report.run_id)} (Dagster-UI: make dev oder zi serve)")
    if report.alert:
        console.print(report.alert)
    if report.success:
        console.print(
            f"[green]Build erfolgreich[/green] in {format_number(seconds, 1)} s. Veröffentlicht: {paths.published_duckdb}"
        )
        _print_parquet_line(paths)
        _print_postgres(report)
        _print_outputs(paths)
        console.print("Beispielabfrage für das Controlling:")
        console.print(f'  .venv/bin/zi sql "{EXAMPLE_QUERY}"')
    else:
        published = "published_warehouse" in report.published_steps
        console.print(f"[red]Build fehlgeschlagen[/red] ({', '.join(report.failed_steps)}).")
        steps_by_error: dict[str, list[str]] = {}  # one line per error: five ingests failing on one lock, one line
        for step, text in report.failure_reasons.items():
            if text:
                steps_by_error.setdefault(_first_line(text), []).append(step)
        for error, steps in list(steps_by_error.items())[:FAILURE_REASONS_SHOWN]:
            console.print(f"  {', '.join(steps)}: {error}", markup=False, highlight=False)
        if len(steps_by_error) > FAILURE_REASONS_SHOWN:
            console.print(f"  und {len(steps_by_error) - FAILURE_REASONS_SHOWN} weitere Fehler")
        console.print(f"  Ausgabe der Schritte (dbt, Fehler mit Stack-Trace): {steps_log_path(paths)}")
        if published:
            console.print(
                f"Das DuckDB-Warehouse wurde veröffentlicht: {paths.published_duckdb}; "
                "fehlgeschlagen ist ein nachgelagerter Schritt."
            )
            _print_postgres(report)
        else:
            console.print(f"Nichts veröffentlicht; die bisherige Fassung bleibt unverändert: {paths.published_duckdb}")
        if restored:
            from zi_warehouse.rebuild import UNDONE_DE

            console.print(UNDONE_DE)


def _print_postgres(report) -> None:
    """The PostgreSQL publish, if one ran, and its findings: the DBA's to-do, e.g. a password not set."""
    if report.postgres:
        console.print(report.postgres, markup=False, highlight=False)
    for finding in report.postgres_findings:
        console.print(f"  [yellow]Hinweis[/yellow] {escape(finding)}")


#: Distinct errors the summary of a failed build prints (the rest: the steps' output, the UI).
FAILURE_REASONS_SHOWN = 5


def _first_line(text: str, width: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def main() -> None:
    """The ``zi`` console entry point: the command, then :func:`exit_without_teardown`."""
    try:
        app()
    except SystemExit as exc:
        exit_without_teardown(exc.code)
    exit_without_teardown(0)


def exit_without_teardown(code: int | str | None) -> None:
    """End the process without Python's interpreter teardown, which after a build frees the modules and objects
    of Dagster, dbt and pandas one by one: 1.5-2 s of every command that imported them (docs/performance.md,
    fix 28), with nothing left to write. The exit handlers run and the output is flushed first, as at a normal
    exit; a command that left a non-daemon thread running ends the normal way, which waits for it."""
    if isinstance(code, str):  # sys.exit("message"): printed, status 1
        print(code, file=sys.stderr)
        code = 1
    code = int(code or 0)
    from zi_warehouse.reports.chromium import wait_for_closing

    wait_for_closing()  # a report's Chromium quitting in the background: its profile folder goes with it
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()  # logging.shutdown, multiprocessing's clean-up, temporary folders
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
