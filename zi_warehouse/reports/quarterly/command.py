"""Writing the quarterly report: ``write_report`` (the Dagster asset calls it) and the command ``zi report``.

What belongs here: opening the *published* warehouse read-only, choosing the quarter, having the sections
built and the HTML rendered, printing the PDF with headless Chromium (``reports/chromium.py``, started early
so it gets ready while the charts are drawn), where the files go, and the command's console output.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from zi_warehouse import build_state, config
from zi_warehouse.german import format_number
from zi_warehouse.reports.quarterly.periods import resolve_period
from zi_warehouse.reports.quarterly.render import render_html
from zi_warehouse.reports.quarterly.sections import build_sections


@dataclass
class ReportResult:
    period: str
    html_path: Path
    pdf_path: Path | None
    charts: list[str]
    figures: int
    seconds: float


def report_dir(period: str, paths: config.Paths | None = None) -> Path:
    return (paths or config.paths()).reports / "quarterly" / period


def write_report(
    period: str | None = None,
    published: Path | None = None,
    out_dir: Path | None = None,
    pdf: bool = True,
    progress: Callable[[str], None] = lambda _msg: None,
    frozen: bool = False,
) -> ReportResult:
    """Render the report of ``period`` (default: the latest quarter with data) as bericht.html and bericht.pdf.

    ``frozen``: the report of a Berichtsstand; any other is marked on its cover as a draft whose figures change
    with the next delivery."""
    from zi_warehouse.reports.chromium import Browser, ChromiumMissing, print_pdf

    started = time.perf_counter()
    paths = config.paths()
    source = published or paths.published_duckdb
    if not source.exists():
        raise FileNotFoundError(f"Kein veröffentlichtes Warehouse unter {source}: zuerst `zi build` ausführen.")
    # Chromium starts now and gets ready (about a second) while the marts are read and the charts drawn.
    browser = None
    if pdf:
        try:
            browser = Browser().start()
        except ChromiumMissing:
            pass  # the HTML is still written; print_pdf below raises the same error afterwards
    try:
        progress("Marts werden gelesen …")
        con = duckdb.connect(str(source), read_only=True)
        try:
            period = resolve_period(con, period)
            progress(f"Diagramme für {period} …")
            sections = build_sections(con, period, frozen=frozen)
        finally:
            con.close()
        target = out_dir or report_dir(period, paths)
        target.mkdir(parents=True, exist_ok=True)
        html_path = target / "bericht.html"
        html_path.write_text(render_html(sections, period, source, frozen=frozen), encoding="utf-8")
        pdf_path = None
        if pdf:
            progress("PDF wird gedruckt (Chromium) …")
            pdf_path = print_pdf(html_path, target / "bericht.pdf", browser=browser)
    finally:
        if browser is not None:
            browser.close(wait=False)  # quitting Chromium and removing its profile need not hold up the caller
    charts = [c.key for s in sections for c in s.charts]
    figures = sum(1 for s in sections for _f in s.all_figures())
    return ReportResult(period, html_path, pdf_path, charts, figures, time.perf_counter() - started)


#: What the last drawn report of each requested quarter was drawn from (see ``write_report_if_changed``).
DRAWN_FROM_FILE = "drawn_from.json"


def report_inputs(paths: config.Paths, period: str | None) -> dict | None:
    """What a report of ``period`` is drawn from: the checksum of every mart of the current release and the
    code's fingerprint; None when the published warehouse has no release manifest."""
    from zi_warehouse import releases

    release = releases.current_release(paths.published)
    manifest = releases.read_manifest(release) if release else None
    if not manifest or not manifest.get("marts"):
        return None
    code = manifest.get("code", {})
    return {
        "period": period or "latest",
        "code": {k: code.get(k) for k in ("code", "dbt")},
        "marts": {name: mart.get("checksum") for name, mart in sorted(manifest["marts"].items())},
    }


def write_report_if_changed(
    period: str | None = None, progress: Callable[[str], None] = lambda _msg: None
) -> tuple[ReportResult, bool]:
    """The pipeline's report: drawn again only when a mart or the code changed since the last drawing of the
    same quarter (a delivery that changed nothing the report shows costs no redraw; a redraw draws only the
    charts whose inputs changed, ``charts.chart_svg``). Returns the report and whether it was drawn now."""
    paths = config.paths()
    inputs = report_inputs(paths, period)
    record_path = paths.reports / "quarterly" / DRAWN_FROM_FILE
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    last = record.get(period or "latest")
    if inputs is not None and last and last.get("inputs") == inputs:
        kept = ReportResult(**{**last["result"], "seconds": 0.0})
        kept.html_path = paths.data_dir / kept.html_path  # relative: a copied data directory keeps its report
        kept.pdf_path = paths.data_dir / kept.pdf_path if kept.pdf_path else None
        if kept.html_path.exists() and (kept.pdf_path is None or kept.pdf_path.exists()):
            return kept, False
    result = write_report(period, progress=progress)
    if inputs is not None:
        drawn = {
            **asdict(result),
            "html_path": str(result.html_path.relative_to(paths.data_dir)),
            "pdf_path": str(result.pdf_path.relative_to(paths.data_dir)) if result.pdf_path else None,
        }
        record[period or "latest"] = {"inputs": inputs, "result": drawn}
        record_path.write_text(json.dumps(record, indent=1, ensure_ascii=False), encoding="utf-8")
    return result, True


def freeze_report(
    quarter: str, pdf: bool = True, progress: Callable[[str], None] = lambda _msg: None
) -> tuple[ReportResult, Path]:
    """Freeze the current release as the Berichtsstand of ``quarter`` with the report written from it, beside it
    (``published/reporting/<quarter>/``, ``zi_warehouse/releases.py``). Returns the report and the folder.

    No copy goes to ``reports/quarterly/``: that folder holds the drafts the pipeline redraws after each
    publish, and the frozen report stays with its release."""
    import getpass

    from zi_warehouse import releases

    paths = config.paths()
    written: dict[str, ReportResult] = {}

    def render(database: Path, folder: Path) -> list[Path]:
        written["result"] = write_report(
            quarter, published=database, out_dir=folder, pdf=pdf, progress=progress, frozen=True
        )
        return [p for p in (written["result"].html_path, written["result"].pdf_path) if p]

    progress(f"Berichtsstand {quarter} wird eingefroren …")
    folder = releases.freeze(paths.published, quarter, render, frozen_by=getpass.getuser())
    result = written["result"]
    result.html_path = folder / "bericht.html"
    result.pdf_path = folder / "bericht.pdf" if result.pdf_path else None
    return result, folder


def report_command(quarter: str | None = None, pdf: bool = True, freeze: bool = False, console=None) -> ReportResult:
    """`zi report [--quarter JJJJ-Qn] [--draft]`: write the quarterly report of the published warehouse (HTML and
    PDF); with ``freeze`` (``--quarter`` without ``--draft``) freeze the release it reports on as that quarter's
    Berichtsstand. A quarter frozen before is not frozen again: its Berichtsstand and report stay as they are."""
    import typer
    from rich.console import Console

    from zi_warehouse.releases import AlreadyFrozen, ReleaseError

    console = console or Console()  # the command line's (its width when piped)
    folder = None
    try:
        with console.status("Quartalsbericht …") as status:
            if freeze:
                result, folder = freeze_report(quarter, pdf=pdf, progress=status.update)
            else:
                result = write_report(quarter, pdf=pdf, progress=status.update)
                build_state.keep_reports_in_record(config.paths())  # a draft is no reason to build in full
    except AlreadyFrozen as exc:
        console.print(f"[yellow]{exc}[/yellow]")
        console.print(f"  Bericht: {exc.path / 'bericht.html'}; Abfragen: zi sql --release {exc.quarter}")
        console.print(f"  Einen Entwurf aus dem aktuellen Stand schreibt: zi report --quarter {exc.quarter} --draft")
        raise typer.Exit(0) from None
    except (ValueError, FileNotFoundError, RuntimeError, ReleaseError) as exc:
        console.print(f"[red]Fehler:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(
        f"[green]Quartalsbericht {result.period}[/green] in {format_number(result.seconds, 1, 's')}: "
        f"{len(result.charts)} Diagramme, {format_number(result.figures)} Kennzahlen"
    )
    console.print(f"  HTML: {result.html_path}")
    if result.pdf_path:
        console.print(f"  PDF:  {result.pdf_path}")
    if folder is not None:
        console.print(
            f"[green]Berichtsstand {result.period} eingefroren:[/green] {folder} (schreibgeschützt, "
            f"dauerhaft). Abfragen: zi sql --release {result.period}"
        )
    elif quarter is None:
        console.print("  Entwurf; einfrieren als Berichtsstand: zi report --quarter JJJJ-Qn")
    return result
