"""The quarterly report's chart cache (``charts.chart_svg``): a chart is drawn again only when its inputs changed.

- a chart's data (the values its drawing function closes over, nested functions too), its options and the
  drawing environment are in the key; equal inputs are served from ``reports/quarterly/.chart-cache``
  byte for byte, any change is drawn anew; a drawing function over something unpicklable is drawn every time;
- the cache keeps only the most recently used charts;
- on the demo build: a second report from the same marts draws no chart and writes the same HTML; a change of
  one chart's data draws exactly that chart, the HTML differs only in that chart and its figure, and equals a
  report drawn without cache; a report whose charts all come from the cache does not import matplotlib.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from zi_warehouse.config import REPO_ROOT
from zi_warehouse.reports.quarterly import charts

ALL_CHARTS = list(charts.CHART_ORDER)


@pytest.fixture
def drawn(monkeypatch) -> list[str]:
    """The keys of the charts drawn (not taken from the cache), in order."""
    keys: list[str] = []
    draw_chart = charts.draw_chart

    def counting(key, *args, **kwargs):
        keys.append(key)
        return draw_chart(key, *args, **kwargs)

    monkeypatch.setattr(charts, "draw_chart", counting)
    return keys


def bars(values: list[float], labels: dict[str, str]):
    """A drawing function as the sections write them: a closure over its rows and a nested helper."""

    def label(i: int) -> str:
        return labels[str(i)]

    def draw(fig, axes):
        ax = axes[0][0]
        ax.bar([label(i) for i in range(len(values))], values)
        ax.yaxis.set_major_formatter(charts.german_ticks())

    return draw


def test_a_chart_is_drawn_once_per_distinct_input(tmp_path, monkeypatch, drawn):
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path))
    labels = {"0": "A", "1": "B"}
    first = charts.chart_svg("budget_year", bars([1.0, 2.0], labels), (3, 2), "marts.x")
    assert drawn == ["budget_year"]
    assert len(list((tmp_path / "reports" / charts.CACHE_FOLDER).glob("*.svg"))) == 1

    # Equal values in new objects: from the cache, byte for byte.
    assert charts.chart_svg("budget_year", bars([1.0, 2.0], dict(labels)), (3, 2), "marts.x") == first
    assert drawn == ["budget_year"]

    # Any input changed: drawn anew, and the result is what drawing it without the cache gives.
    changes = {
        "value": (bars([1.0, 2.5], labels), (3, 2), "marts.x", {}),
        "nested function's value": (bars([1.0, 2.0], {"0": "A", "1": "C"}), (3, 2), "marts.x", {}),
        "figure size": (bars([1.0, 2.0], labels), (3, 2.5), "marts.x", {}),
        "source": (bars([1.0, 2.0], labels), (3, 2), "marts.y", {}),
        "options": (bars([1.0, 2.0], labels), (3, 2), "marts.x", {"margins": {"left": 0.2}}),
    }
    for what, (draw, figsize, source, options) in changes.items():
        before = len(drawn)
        svg = charts.chart_svg("budget_year", draw, figsize, source, **options)
        assert len(drawn) == before + 1, what
        assert svg != first, what
        assert svg == charts.draw_chart("budget_year", draw, figsize, source, **options), what

    # Another code or matplotlib: drawn anew.
    environment = charts.drawing_environment()
    monkeypatch.setattr(charts, "drawing_environment", lambda: (*environment[:-1], "other"))
    before = len(drawn)
    charts.chart_svg("budget_year", bars([1.0, 2.0], labels), (3, 2), "marts.x")
    assert len(drawn) == before + 1


def test_a_chart_over_something_unpicklable_is_drawn_every_time(tmp_path, monkeypatch, drawn):
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path))
    con = duckdb.connect()

    def draw(fig, axes):
        axes[0][0].plot([v for (v,) in con.execute("select 1 union all select 2 order by 1").fetchall()])

    assert charts.chart_digest("budget_year", draw, (3, 2), "x", 1, 1, None, {}) is None
    first = charts.chart_svg("budget_year", draw, (3, 2), "x")
    assert charts.chart_svg("budget_year", draw, (3, 2), "x") == first
    assert drawn == ["budget_year", "budget_year"]


def test_the_build_record_leaves_the_cache_out(tmp_path, monkeypatch):
    """Any drawing uses the cache, freezing a quarter's report too: that must not make the next build a full one."""
    from zi_warehouse import build_state, config

    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path))
    paths = config.paths()
    before = build_state.outputs(paths)
    charts.chart_svg("budget_year", bars([1.0], {"0": "A"}), (3, 2), "marts.x")
    assert list((paths.reports / charts.CACHE_FOLDER).glob("*.svg"))
    assert build_state.outputs(paths) == before


def test_the_cache_keeps_the_most_recently_used(tmp_path):
    for i in range(5):
        path = tmp_path / f"{i}.svg"
        path.write_text("<svg></svg>\n")
        os.utime(path, ns=(i * 10**9, i * 10**9))
    (tmp_path / "1.svg").touch()  # used just now
    charts.prune_cache(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.svg", "4.svg"]


# ------------------------------------------------------------------------------------------------
# On the demo build
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_dir(demo_data_dir, tmp_path_factory) -> Path:
    """A copy of the demo build (whose report and chart cache the build wrote)."""
    from conftest import copy_built_data_dir

    return copy_built_data_dir(demo_data_dir, tmp_path_factory.mktemp("chart_cache") / "data")


def charts_of(html: str) -> dict[str, str]:
    return {key: svg for svg, key in re.findall(r'(<svg data-chart="([a-z_]+)".*?</svg>)', html, flags=re.S)}


def without_time(html: str) -> str:
    """The HTML without the time it was written (the one thing that differs between two drawings)."""
    return re.sub(r"erstellt am [^<]*", "erstellt am …", html)


def report_html(out_dir: Path, published: Path | None = None) -> str:
    from zi_warehouse.reports.quarterly.command import write_report

    result = write_report(published=published, out_dir=out_dir, pdf=False)
    return without_time(result.html_path.read_text(encoding="utf-8"))


def test_unchanged_marts_draw_no_chart(data_dir, tmp_path, monkeypatch, drawn):
    monkeypatch.setenv("ZI_DATA_DIR", str(data_dir))
    shutil.rmtree(data_dir / "reports" / charts.CACHE_FOLDER, ignore_errors=True)
    first = report_html(tmp_path / "first")
    assert drawn == ALL_CHARTS  # the cache was empty
    again = report_html(tmp_path / "again")
    assert drawn == ALL_CHARTS, "drawn again although no mart changed"
    assert again == first


def test_a_change_of_one_charts_data_redraws_exactly_that_chart(data_dir, tmp_path, monkeypatch, drawn):
    monkeypatch.setenv("ZI_DATA_DIR", str(data_dir))
    published = tmp_path / "zi.duckdb"
    shutil.copy(data_dir / "published" / "zi.duckdb", published)
    published.chmod(0o644)
    before = report_html(tmp_path / "before", published)
    drawn.clear()

    with duckdb.connect(str(published)) as con:
        year = con.execute("select min(year) from marts.mart_budget_year").fetchone()[0]
        con.execute("update marts.mart_budget_year set paid_eur = paid_eur + 5000000 where year = ?", [year])
    after = report_html(tmp_path / "after", published)
    assert drawn == ["budget_year"]
    old, new = charts_of(before), charts_of(after)
    assert [k for k in ALL_CHARTS if old[k] != new[k]] == ["budget_year"]
    # Outside the charts only the changed figure differs.
    cell = rf'data-figure="budget_paid_eur_{year}" data-value="[^"]*">[^<]*<'

    def rest(html: str) -> str:
        return re.sub(cell, "…", re.sub(r"<svg .*?</svg>", "", html, flags=re.S))

    assert rest(after) == rest(before)
    assert re.search(cell, after)[0] != re.search(cell, before)[0]

    # The chart taken from the cache and the one drawn anew are what a report drawn without cache shows.
    monkeypatch.setenv("ZI_DATA_DIR", str(tmp_path / "no_cache"))
    drawn.clear()
    assert report_html(tmp_path / "fresh", published) == after
    assert drawn == ALL_CHARTS


def test_a_report_from_the_cache_does_not_import_matplotlib(data_dir, tmp_path):
    """Two fresh processes, one after the other (the code hash of the key is taken once per process): the
    first fills the cache where needed, the second draws nothing."""
    env = {**os.environ, "ZI_DATA_DIR": str(data_dir)}
    loaded = []
    for name in ("one", "two"):
        code = (
            "import sys; from pathlib import Path\n"
            "from zi_warehouse.reports.quarterly.command import write_report\n"
            f"write_report(out_dir=Path({str(tmp_path / name)!r}), pdf=False)\n"
            "print('matplotlib' in sys.modules)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        loaded.append(result.stdout.strip())
    assert loaded[1] == "False"
