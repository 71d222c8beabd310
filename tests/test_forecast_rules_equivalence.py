"""The vectorised forecast row rules reject exactly what the former Great Expectations suite rejected (issue 20).

``zi_warehouse/forecasts/validation.py`` runs the rules on whole columns; ``forecast_rules_reference.py`` keeps
the GX suite that ran at ingest before. Both run on the same batches: the demo forecast workbooks (with a
raised mistake rate, so every injected mistake occurs), every forecast scenario of ``test_forecasts_reader``
(including one file per row rule), every forecast case of ``test_bad_inputs``, workbooks with fuzzed cells
(the strategy of ``test_bad_inputs``), and fuzzed columns fed to the rules directly (values the reader may
hand over, and odder ones). Compared are the failures of each batch (row, rule, column, value, German
message, in order) and every file's rejections as the ingest reports them (sheet, row, column, value,
rule, message). A last test shows that reading and ingesting forecasts no longer imports Great Expectations.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import forecast_rules_reference as reference
import test_bad_inputs as bad_inputs
import test_forecasts_reader as reader_tests
from zi_warehouse.demo import forecast_workbooks as fw
from zi_warehouse.demo.programme import build_programme
from zi_warehouse.forecasts import validation
from zi_warehouse.forecasts.template import SURFACE_TYPES
from zi_warehouse.ingest import IngestContext
from zi_warehouse.landing import discover
from zi_warehouse.reference import measure_types, municipality_by_key, project_statuses
from zi_warehouse.sources import forecasts as src

REPO = Path(__file__).resolve().parent.parent
#: Hypothesis without shrinking: every shrink step is a GX run, so one failure took five minutes to shrink;
#: the unshrunk example (a few rows, or at most 60 columns' values) and the assertion's diff suffice.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


def read_with(landing: Path, validate, monkeypatch) -> tuple[dict[str, tuple], list[dict]]:
    """Read every forecast file under ``landing`` with ``validate`` as the row rules.

    Returns per file its outcome and rejections as the ingest hands them to the ledger, and the batches the
    rules saw (the columns, copied).
    """
    batches = []

    def recording(columns):
        batches.append({c: list(values) for c, values in columns.items()})
        return validate(columns)

    monkeypatch.setattr(validation, "validate", recording)
    try:
        files = discover(landing, src.SOURCE_FAMILY, ())
        context = IngestContext(landing_dir=landing, all_files=files, ledger={}, log=lambda _m: None)
        results = list(src.read_files(files, context))
    finally:
        monkeypatch.undo()
    out = {}
    for r in results:
        rejections = [(e.sheet, e.row_number, e.column, e.value_found, e.rule, e.message_de) for e in r.rejections]
        out[r.source_file] = (r.rows_read, r.rows_loaded, r.rows_rejected, rejections)
    return out, batches


def assert_same_rejections(landing: Path, monkeypatch) -> dict[str, tuple]:
    """Both implementations on one landing area: same failures per batch, same rejections per file."""
    new, batches = read_with(landing, validation.validate, monkeypatch)
    old, _ = read_with(landing, reference.validate, monkeypatch)
    assert new == old
    for columns in batches:
        assert validation.validate(columns) == reference.validate(columns)
    return new


def rules_rejected(files: dict[str, tuple]) -> set[tuple[str, str]]:
    return {(rej[4], rej[2]) for *_, rejections in files.values() for rej in rejections}


ROW_RULES = {(r.rule, r.column) for r in validation.rules()}


# --- the demo workbooks -----------------------------------------------------------------------------------
def test_demo_workbooks(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    rendered = fw.render(landing / "forecasts", build_programme(0.05, 7), seed=7, mistake_rate=0.1)
    files = assert_same_rejections(landing, monkeypatch)
    assert len(files) == len(rendered.paths)
    # the comparison covers the row rules the demo's mistakes are meant to hit, not an empty result
    planted = {rule for rule in fw.REJECTING.values()} & {r for r, _ in ROW_RULES}
    assert planted <= {rule for rule, _ in rules_rejected(files)}


# --- the bad-input cases of the other tests ---------------------------------------------------------------
def test_forecast_reader_scenarios(tmp_path, monkeypatch):
    """All scenarios of test_forecasts_reader.py in one landing area, as its ``batch`` fixture loads them."""
    landing = tmp_path / "landing"
    (landing / "forecasts").mkdir(parents=True)
    for build in reader_tests.SCENARIOS.values():
        build(landing / "forecasts")
    files = assert_same_rejections(landing, monkeypatch)
    # one file per row rule (RULE_CASES): every row rule of the reader tests fired in the comparison
    expected = {(rule, column) for _, rule, column in reader_tests.RULE_CASES} & ROW_RULES
    assert expected and expected <= rules_rejected(files)


@pytest.mark.parametrize(
    "case",
    [c for c in bad_inputs.CASES if c.family == "forecasts"],
    ids=[c.id for c in bad_inputs.CASES if c.family == "forecasts"],
)
def test_bad_input_cases(case, tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    for rel, data in case.files.items():
        path = landing / "forecasts" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data(path) if callable(data) else path.write_bytes(data)
    assert_same_rejections(landing, monkeypatch)


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    phases=NO_SHRINK,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(
        st.dictionaries(st.sampled_from(bad_inputs.FORECAST_COLUMNS), bad_inputs.CELL_VALUE, max_size=5),
        min_size=1,
        max_size=6,
    )
)
def test_fuzzed_workbook_cells(rows, monkeypatch):
    overrides = [reader_tests.good_row(f"BO-{i}", **r) for i, r in enumerate(rows)]
    with tempfile.TemporaryDirectory(prefix="zi-rules-") as tmp:
        landing = Path(tmp) / "landing"
        (landing / "forecasts").mkdir(parents=True)
        path = landing / "forecasts" / "Prognose_Bochum_2022-Q4.xlsx"
        try:
            reader_tests.write_xlsx(path, overrides)
        except ValueError:  # as test_bad_inputs: values openpyxl refuses are written as text
            reader_tests.write_xlsx(
                path,
                [
                    {k: (str(v) if v is not None else None) if k != "payments" else v for k, v in r.items()}
                    for r in overrides
                ],
            )
        assert_same_rejections(landing, monkeypatch)


# --- fuzzed columns, straight to the rules ----------------------------------------------------------------
def _text(valid) -> st.SearchStrategy:
    return st.one_of(
        st.none(),
        st.sampled_from(sorted(valid)),
        st.text(max_size=12),
        st.sampled_from(["", " ", "nan", "None", "Bochum"]),
        st.integers(-3, 3),
    )


_NUMBER = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 0.5, 1.5, 50_000_000.0, 50_000_000.01, -1e-9, 2.0, 3.0]),
    st.integers(-10, 10),
)
_DATE = st.one_of(
    st.none(),
    st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)),
    st.dates(dt.date(2013, 12, 30), dt.date(2041, 1, 2)),
    st.datetimes(dt.datetime(2010, 1, 1), dt.datetime(2045, 1, 1)),
)
_EMAIL = st.one_of(
    st.none(),
    st.emails(),
    st.text(max_size=20),
    st.sampled_from(
        ["a@b.de", "a@b.de\n", " a@b.de", "a@@b.de", "a@b.d", "anna at bochum", "a@b.DE", "ä@ö.de", "a@b.c1", ""]
    ),
    st.integers(0, 5),
)


@st.composite
def batches(draw) -> dict[str, list]:
    n = draw(st.integers(1, 60))
    texts = {
        "municipality_key": set(municipality_by_key()),
        "measure_type_key": {m["measure_type_key"] for m in measure_types()},
        "status_key": {s["status_key"] for s in project_statuses()},
        "affected_surface_type": set(SURFACE_TYPES),
    }
    columns = {c: draw(st.lists(_text(valid), min_size=n, max_size=n)) for c, valid in texts.items()}
    columns["submission_municipality_key"] = draw(st.lists(_text(texts["municipality_key"]), min_size=n, max_size=n))
    for c in (
        "total_cost_eur",
        "requested_funding_eur",
        "funding_rate",
        "expected_disconnected_area_m2",
        "surface_change_m2",
        "expected_trees",
        "_min_payment_eur",
    ):
        columns[c] = draw(st.lists(_NUMBER, min_size=n, max_size=n))
    for c in validation.DAY_COLUMNS:
        columns[c] = draw(st.lists(_DATE, min_size=n, max_size=n))
    columns["contact_email"] = draw(st.lists(_EMAIL, min_size=n, max_size=n))
    return columns


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    phases=NO_SHRINK,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(columns=batches())
def test_fuzzed_columns(columns):
    assert validation.validate(columns) == reference.validate(columns)


def test_every_rule_fires_on_fuzzed_columns():
    """The fuzzed columns are no idle comparison: together they break every row rule."""
    seen = set()

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(columns=batches())
    def collect(columns):
        seen.update((f.rule, f.column) for f in validation.validate(columns))

    collect()
    assert seen == ROW_RULES


# --- Great Expectations is not on the ingest path ---------------------------------------------------------
def test_ingesting_forecasts_does_not_import_great_expectations(tmp_path):
    landing = tmp_path / "landing"
    (landing / "forecasts").mkdir(parents=True)
    reader_tests.write_xlsx(
        landing / "forecasts" / "Prognose_Bochum_2022-Q4.xlsx",
        [reader_tests.good_row("BO-1"), reader_tests.good_row("BO-2", status="in Arbeit")],
    )
    script = f"""
import json, sys
import duckdb
from zi_warehouse.ingest import ingest
from zi_warehouse.sources import forecasts
from pathlib import Path
con = duckdb.connect()
summary = ingest(con, forecasts, Path({str(landing)!r}), log=lambda m: None)
rules = [r[0] for r in con.execute("select rule from raw.rejected_rows").fetchall()]
loaded = con.execute("select count(*) from raw.forecasts__projects").fetchone()[0]
print(json.dumps({{"gx": sorted(m for m in sys.modules if m.split(".")[0] == "great_expectations"),
                   "rules": rules, "loaded": loaded}}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert (found["rules"], found["loaded"]) == (["known_status"], 1)  # the row rules ran
    assert found["gx"] == []
