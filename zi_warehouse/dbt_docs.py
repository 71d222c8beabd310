"""The dbt documentation as one self-contained HTML file that opens with no internet: ``$ZI_DATA_DIR/docs-site/index.html``.

What belongs here: running ``dbt docs generate --static`` into a private target folder (never the repository's
``target/``, whose manifest Dagster loads), making the page offline-safe, checking it, and swapping it in.

What was checked (dbt-core 1.11): ``--static`` inlines manifest and catalog into ``static_index.html``, so
the page needs no web server and fetches no JSON. Its scripts, styles, fonts (as data URIs) and images are
inline. The only network load left in the bundle is dbt's Snowplow tracker (a script from a CDN), started
only when the manifest says ``send_anonymous_usage_stats: true``; we switch that flag off in the inlined
manifest and remove the tracker's script address, so even a project with tracking on yields a silent page.
Plain links to docs.getdbt.com (navigation, not loading) stay. ``external_references`` finds any resource
a browser would load from another host; ``generate_docs_site`` refuses to publish a page that has one.

dbt reads the working warehouse for the catalog (column types): run it when no build holds the file, or
pass ``empty_catalog=True`` (descriptions, lineage and model SQL only): then dbt only parses the project and
never opens the warehouse (``docs generate --empty-catalog`` still opens it to compile), and we inline the
manifest into dbt's page as ``--static`` does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from zi_warehouse import config
from zi_warehouse.german import format_number

DOCS_DIR_NAME = "docs-site"

# A resource the browser would fetch from another host (scheme-relative "//host" included).
_EXTERNAL = r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
_EXTERNAL_PATTERNS = {
    "html attribute": re.compile(
        r"<(?:script|link|img|iframe|source|embed|object|audio|video|track|image|use)\b[^>]*?\s"
        r"(?:src|href|data|srcset|poster|xlink:href)\s*=\s*[\"']?\s*" + _EXTERNAL,
        re.IGNORECASE,
    ),
    "css url()": re.compile(r"url\(\s*[\"']?\s*" + _EXTERNAL, re.IGNORECASE),
    "css @import": re.compile(r"@import\s+(?:url\(\s*)?[\"']\s*" + _EXTERNAL, re.IGNORECASE),
    "script/style/font address": re.compile(
        r"[\"']" + _EXTERNAL + r"[^\"'\s]*?\.(?:m?js|css|woff2?|ttf|otf|eot)(?:\?[^\"'\s]*)?[\"']",
        re.IGNORECASE,
    ),
}
_TRACKING_FLAG = re.compile(r'("send_anonymous_usage_stats"\s*:\s*)true')


class DocsSiteError(RuntimeError):
    pass


@dataclass
class DocsSiteResult:
    path: Path
    size_bytes: int
    models: int
    seconds: float


def external_references(html: str) -> list[str]:
    """Every reference that would make a browser load something from the internet (empty: self-contained)."""
    found = []
    for kind, pattern in _EXTERNAL_PATTERNS.items():
        for match in pattern.finditer(html):
            found.append(f"{kind}: {match.group(0)[-160:]}")
    return found


def make_offline(html: str) -> str:
    """Switch dbt's tracking off in the inlined manifest and remove every external script/style/font address."""
    html = _TRACKING_FLAG.sub(r"\1false", html)
    pattern = _EXTERNAL_PATTERNS["script/style/font address"]
    return pattern.sub(lambda m: m.group(0)[0] * 2, html)  # the literal becomes "" (same quote character)


def _write_static_page(build_dir: Path) -> None:
    """What ``dbt docs generate --static`` writes, from a parsed manifest and an empty catalog."""
    import importlib.util

    spec = importlib.util.find_spec("dbt.task.docs")
    if spec is None or not spec.submodule_search_locations:
        raise DocsSiteError("dbt ist nicht installiert (dbt.task.docs fehlt).")
    index = Path(next(iter(spec.submodule_search_locations))) / "index.html"
    manifest = (build_dir / "manifest.json").read_text(encoding="utf-8")
    meta = json.loads(manifest)["metadata"]
    catalog = json.dumps(
        {  # the shape `dbt docs generate --empty-catalog` writes
            "metadata": {
                "dbt_schema_version": "https://schemas.getdbt.com/dbt/catalog/v1.json",
                **{k: meta.get(k) for k in ("dbt_version", "generated_at", "invocation_id")},
                "env": {},
            },
            "nodes": {},
            "sources": {},
            "errors": None,
        }
    )
    page = index.read_text(encoding="utf-8")
    page = page.replace('"MANIFEST.JSON INLINE DATA"', manifest).replace('"CATALOG.JSON INLINE DATA"', catalog)
    (build_dir / "static_index.html").write_text(page, encoding="utf-8")


def _dbt_executable() -> str:
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def generate_docs_site(
    data_dir: Path | None = None,
    *,
    project_dir: Path = config.REPO_ROOT,
    profiles_dir: Path | None = None,
    empty_catalog: bool = False,
    timeout_s: float = 600,
) -> DocsSiteResult:
    """Build ``<data_dir>/docs-site/index.html`` from the dbt project (offline-safe, swapped in atomically).

    ``data_dir`` defaults to ``$ZI_DATA_DIR``; dbt's profile finds the working warehouse through it.
    Raises ``DocsSiteError`` with dbt's output when dbt fails, or when the page would load anything from
    the internet.
    """
    started = time.perf_counter()
    data_dir = (data_dir or config.data_dir()).resolve()
    profiles_dir = profiles_dir or project_dir / "dbt_project"
    site_dir = data_dir / DOCS_DIR_NAME
    site_dir.mkdir(parents=True, exist_ok=True)
    build_dir = site_dir / f".build-{uuid.uuid4().hex[:12]}"  # private target: the repo's manifest stays as is
    env = {
        **os.environ,
        "ZI_DATA_DIR": str(data_dir),
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    common = [
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(profiles_dir),
        "--target-path",
        str(build_dir),
        "--log-path",
        str(build_dir / "logs"),
    ]
    # With the catalog, dbt reads column types from the warehouse (it opens the file). Without it we only
    # parse (dbt never connects) and inline manifest and an empty catalog into dbt's page ourselves, exactly
    # as `--static` does: `docs generate --empty-catalog` still opens the warehouse to compile.
    command = (
        [_dbt_executable(), "parse", *common]
        if empty_catalog
        else [_dbt_executable(), "docs", "generate", "--static", *common]
    )
    try:
        result = subprocess.run(command, cwd=project_dir, env=env, capture_output=True, text=True, timeout=timeout_s)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            hint = (
                " Das Warehouse ist gesperrt (läuft gerade ein Build?): später erneut oder ohne Katalog "
                "(--empty-catalog)."
                if "could not set lock" in output.lower()
                else ""
            )
            tail = "\n".join(output.splitlines()[-25:])
            raise DocsSiteError(f"dbt ist fehlgeschlagen ({result.returncode}).{hint}\n{tail}")
        if empty_catalog:
            _write_static_page(build_dir)
        static = build_dir / "static_index.html"
        html = make_offline(static.read_text(encoding="utf-8"))
        remaining = external_references(html)
        if remaining:
            raise DocsSiteError(
                "Die dbt-Dokumentation würde Inhalte aus dem Internet laden: " + "; ".join(remaining[:5])
            )
        models = html.count('"resource_type": "model"') or html.count('"resource_type":"model"')
        tmp = site_dir / f".index.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, site_dir / "index.html")  # a reader never sees a half-written page
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    target = site_dir / "index.html"
    return DocsSiteResult(target, target.stat().st_size, models, time.perf_counter() - started)


# The `zi docs-site` command; the CLI registers it with ``app.command("docs-site")(docs_site)``.
def docs_site(
    empty_catalog: Annotated[
        bool,
        typer.Option(
            "--empty-catalog", help="Ohne Spaltentypen aus dem Warehouse (öffnet die Datei nicht; während eines Builds)"
        ),
    ] = False,
    console=None,
) -> None:
    """Die dbt-Dokumentation als eigenständige HTML-Seite erzeugen ($ZI_DATA_DIR/docs-site/index.html), ohne Internet lesbar.
    ``console``: the command line's (its width when piped)."""
    from rich.console import Console

    console = console or Console()
    with console.status("dbt-Dokumentation wird erzeugt …"):
        try:
            result = generate_docs_site(empty_catalog=empty_catalog)
        except DocsSiteError as exc:
            console.print(f"[red]Fehler:[/red] {exc}")
            raise typer.Exit(code=1) from None
    console.print(
        f"dbt-Dokumentation ({result.models} Modelle, {format_number(result.size_bytes / 1e6, 1, 'MB')}, "
        f"{format_number(result.seconds, 0, 's')}): {result.path}"
    )
    console.print(f"Im Browser öffnen (ohne Internet, ohne Server): {result.path.as_uri()}")
