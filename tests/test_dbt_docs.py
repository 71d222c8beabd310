"""dbt docs as a static site: one self-contained HTML file that loads nothing from the internet.

dbt runs on a copy of the project with the ingestion models only (staging and marts) plus seeds and
macros, against a tiny warehouse: fast, and independent of models other engineers are still writing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path

import duckdb
import pytest

from zi_warehouse.config import REPO_ROOT
from zi_warehouse.dbt_docs import external_references, generate_docs_site, make_offline
from zi_warehouse.warehouse import ensure_tables

MODEL_FOLDERS = ("models/staging/ingestion", "models/marts/ingestion")


def small_project(target: Path) -> Path:
    target.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "dbt_project.yml", target)
    shutil.copytree(REPO_ROOT / "seeds", target / "seeds")
    shutil.copytree(REPO_ROOT / "dbt_project" / "macros", target / "dbt_project" / "macros")
    shutil.copy(REPO_ROOT / "dbt_project" / "profiles.yml", target / "dbt_project")
    for folder in MODEL_FOLDERS:
        shutil.copytree(REPO_ROOT / folder, target / folder)
    return target


def small_warehouse(data_dir: Path) -> Path:
    path = data_dir / "warehouse" / "zi.duckdb"
    path.parent.mkdir(parents=True)
    con = duckdb.connect(str(path))
    ensure_tables(con, {})  # raw.ingestion_files and raw.rejected_rows: the sources of the ingestion models
    con.close()
    return path


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """Both modes, built at the same time (two dbt processes): with the catalog, and without it while a
    writer holds the warehouse as a running build would."""
    root = tmp_path_factory.mktemp("docs")
    project = small_project(root / "project")
    full, locked = root / "full", root / "locked"
    small_warehouse(full)
    writer = duckdb.connect(str(small_warehouse(locked)))  # a build in progress holds the file
    try:
        with ThreadPoolExecutor(2) as pool:
            with_catalog = pool.submit(generate_docs_site, full, project_dir=project)
            without_catalog = pool.submit(generate_docs_site, locked, project_dir=project, empty_catalog=True)
            results = {"full": with_catalog.result(), "locked": without_catalog.result()}
    finally:
        writer.close()
    return {"project": project, **results}


@pytest.mark.parametrize("mode", ["full", "locked"])
def test_docs_site_is_one_self_contained_page(sites, mode):
    result = sites[mode]
    assert result.path.name == "index.html" and result.path.parent.name == "docs-site"
    html = result.path.read_text(encoding="utf-8")
    assert external_references(html) == []
    assert not re.search(r"<script[^>]*\ssrc=", html, re.IGNORECASE)  # every script inline
    assert not re.search(r"<link[^>]*stylesheet", html, re.IGNORECASE)  # every style inline
    assert "cloudfront.net" not in html  # dbt's tracker script address is gone
    assert not re.search(r'"send_anonymous_usage_stats":\s*true', html)
    # The project is inlined: models, their German descriptions and the grain.
    assert result.models == 4
    for name in ("mart_ingestion_files", "mart_rejected_rows", "stg_ingestion__files"):
        assert name in html
    assert "Eine Zeile je angelieferter Datei" in html
    assert '"MANIFEST.JSON INLINE DATA"' not in html and '"CATALOG.JSON INLINE DATA"' not in html
    # Nothing is left beside the page, and the project's own target/ (Dagster's manifest) is untouched.
    assert [p.name for p in result.path.parent.iterdir()] == ["index.html"]
    assert not (sites["project"] / "target").exists()


def test_docs_site_renders_in_headless_chromium_with_no_network(sites, tmp_path):
    """The page a controller opens from disk: rendered by the browser with every host name unresolvable."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium fehlt: `make system-packages` (scripts/install-system-packages.sh) installiert es"
    url = sites["full"].path.as_uri() + "#!/model/model.zi_warehouse.mart_ingestion_files"
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--virtual-time-budget=8000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # What the app rendered, without the inlined JSON and templates in <script>/<style>.
    rendered = re.sub(r"<(script|style)\b.*?</\1>", "", result.stdout, flags=re.S | re.I)
    page = re.sub(r"<(script|style)\b.*?</\1>", "", sites["full"].path.read_text(encoding="utf-8"), flags=re.S | re.I)
    for text in ("Eine Zeile je angelieferter Datei", "rows_rejected", "mart_rejected_rows"):
        assert text not in page  # not in the static markup ...
        assert text in rendered  # ... but on the page the browser built from the inlined project


def test_catalog_carries_column_types_from_the_warehouse(sites):
    full = sites["full"].path.read_text(encoding="utf-8")
    empty = sites["locked"].path.read_text(encoding="utf-8")
    assert '"TIMESTAMP WITH TIME ZONE"' in full  # raw.ingestion_files.loaded_at, read from the warehouse
    assert '"TIMESTAMP WITH TIME ZONE"' not in empty


def test_dbts_own_page_would_load_a_script_from_the_internet_until_made_offline():
    spec = find_spec("dbt.task.docs")
    page = (Path(next(iter(spec.submodule_search_locations))) / "index.html").read_text(encoding="utf-8")
    found = external_references(page)
    assert found and all("sp.js" in f for f in found)  # the Snowplow tracker, nothing else
    assert external_references(make_offline(page)) == []


@pytest.mark.parametrize(
    "snippet",
    [
        '<script src="https://cdn.example.org/app.js"></script>',
        "<link rel='stylesheet' href='//fonts.googleapis.com/css?family=Inter'>",
        '<img src="http://example.org/logo.png">',
        '<style>@font-face{src:url("https://fonts.gstatic.com/s/inter.woff2")}</style>',
        "<style>@import 'https://example.org/theme.css';</style>",
        'i.src="//d1fc8wv8zag5ca.cloudfront.net/2.9.0/sp.js"',
    ],
)
def test_external_resources_are_found(snippet):
    assert external_references(f"<html>{snippet}</html>")


@pytest.mark.parametrize(
    "snippet",
    [
        '<a href="https://docs.getdbt.com/docs/introduction">Hilfe</a>',  # a link: loads nothing by itself
        '<svg xmlns="http://www.w3.org/2000/svg"></svg>',
        "<style>@font-face{src:url(data:font/woff;base64,AAAA)}</style>",
        '<link rel="canonical" href="/overview/"/>',
    ],
)
def test_links_namespaces_and_inline_data_are_allowed(snippet):
    assert external_references(snippet) == []
