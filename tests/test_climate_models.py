"""Climate through ingest and dbt: the real DWD file of station 00403 in the mart, overlap resolution.

The dbt models of the climate family run in an isolated copy of the project (only the climate models,
the seeds and the macros), so these tests do not depend on other families' models. The real DWD files
are read in place: the landing folder holds symbolic links to them.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pytest

from zi_warehouse import dwd, warehouse
from zi_warehouse.ingest import ingest
from zi_warehouse.sources import climate
from zi_warehouse.sources import climate as climate_checks

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "real-data" / "dwd"
FILE_403 = REAL / "produkt_klima_tag_19500101_20211231_00403.txt"
FILE_429 = REAL / "produkt_klima_tag_19861001_19870131_00429.txt"
STATION_LIST = REAL / "KL_Tageswerte_Beschreibung_Stationen.txt"
DBT = Path(sys.executable).parent / "dbt"
SYNTHETIC = 99001  # a made-up station for the overlap scenario (not in the DWD list)

pytestmark = pytest.mark.skipif(not FILE_403.exists(), reason="real DWD files not available")


def isolated_dbt_project(folder: Path) -> Path:
    """The climate models, seeds and macros in a project of their own."""
    for layer in ("staging", "intermediate", "marts"):
        shutil.copytree(REPO / "models" / layer / "climate", folder / "models" / layer / "climate")
    (folder / "seeds").mkdir()
    shutil.copy(REPO / "seeds" / "municipality_locations.csv", folder / "seeds")  # the only seed used
    shutil.copytree(REPO / "dbt_project" / "macros", folder / "macros")
    text = (REPO / "dbt_project.yml").read_text()
    for kind in ("macros", "snapshots", "data_tests", "analyses"):
        text = text.replace(f"dbt_project/{kind}", kind)
    (folder / "dbt_project.yml").write_text(text)
    shutil.copy(REPO / "dbt_project" / "profiles.yml", folder / "profiles.yml")
    return folder


def dbt_build(project: Path, data_dir: Path, *args: str) -> None:
    env = {**os.environ, "ZI_DATA_DIR": str(data_dir), "DO_NOT_TRACK": "1"}
    result = subprocess.run(
        [str(DBT), "build", "--project-dir", str(project), "--profiles-dir", str(project), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def synthetic_product(first: dt.date, last: dt.date, txk: float, rsk: float) -> tuple[str, bytes]:
    days = np.arange(np.datetime64(first), np.datetime64(last) + 1, dtype="datetime64[D]")
    n = len(days)
    values = {
        "QN_4": np.full(n, 10.0),
        "TXK": np.full(n, txk),
        "TNK": np.full(n, 10.0),
        "TMK": np.full(n, 15.0),
        "RSK": np.full(n, rsk),
    }
    return dwd.product_name(SYNTHETIC, first, last), dwd.render_product(SYNTHETIC, days, values)


def write_zip(path: Path, member: str, data: bytes) -> None:
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)


def ingest_climate(data_dir: Path) -> None:
    with warehouse.connect(data_dir / "warehouse" / "zi.duckdb") as con:
        summary = ingest(con, climate, data_dir / "landing", log=lambda _: None)
        assert not summary.files_failed


def compiled_sql(project: Path, model: str) -> str:
    return next((project / "target" / "compiled").rglob(f"{model}.sql")).read_text()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("climate")
    data_dir = root / "data"
    landing = data_dir / "landing" / "climate"
    (landing / "real").mkdir(parents=True)
    for real in (FILE_403, FILE_429, STATION_LIST):
        (landing / "real" / real.name).symlink_to(real)  # read in place, never copied
    hist = synthetic_product(dt.date(2024, 1, 1), dt.date(2024, 12, 31), txk=20.0, rsk=1.0)
    write_zip(
        landing / "synthetic" / "historical" / dwd.hist_zip_name(SYNTHETIC, dt.date(2024, 1, 1), dt.date(2024, 12, 31)),
        *hist,
    )
    older = synthetic_product(dt.date(2024, 10, 1), dt.date(2025, 3, 31), txk=21.0, rsk=2.0)
    write_zip(landing / "synthetic" / "recent" / "2026-10-01" / dwd.recent_zip_name(SYNTHETIC), *older)
    (landing / "synthetic" / dwd.STATION_LIST_NAME).write_bytes(
        dwd.render_station_list(
            [
                dwd.StationEntry(
                    SYNTHETIC,
                    dt.date(2024, 1, 1),
                    dt.date(2025, 3, 31),
                    100,
                    51.45,
                    7.01,
                    "Teststation Essen",
                    "Nordrhein-Westfalen",
                )
            ]
        )
    )
    project = isolated_dbt_project(root / "dbt")
    ingest_climate(data_dir)
    # the one dbt run of this module (dbt starts slowly); the data tests in the YAML run in the pipeline's
    # `dbt build`, here the assertions below check the same properties directly
    dbt_build(project, data_dir, "--exclude", "resource_type:test")
    db = data_dir / "warehouse" / "zi.duckdb"
    # a month later a newer recent archive arrives (the DWD reuses the name: new download folder).
    # Ingest it, then run the dedup model exactly as dbt compiled it over the (view-based) staging.
    newer = synthetic_product(dt.date(2025, 2, 1), dt.date(2025, 5, 31), txk=22.0, rsk=3.0)
    write_zip(landing / "synthetic" / "recent" / "2026-11-01" / dwd.recent_zip_name(SYNTHETIC), *newer)
    ingest_climate(data_dir)
    with duckdb.connect(str(db), read_only=True) as con:
        after = dict(
            con.execute(
                f"select measured_on, temperature_max_c from ({compiled_sql(project, 'int_climate__daily')}) "
                "where station_id = ?",
                [SYNTHETIC],
            ).fetchall()
        )
        after_kinds = dict(
            con.execute(
                f"select delivery_kind, count(*) from ({compiled_sql(project, 'int_climate__daily')}) "
                "where station_id = ? group by 1",
                [SYNTHETIC],
            ).fetchall()
        )
    return {"db": db, "after": after, "after_kinds": after_kinds}


def plain_station_years(path: Path) -> dict[int, dict]:
    """Indicators per year counted directly over the product file (independent of the reader and dbt)."""
    lines = path.read_bytes().decode("ascii").split("\r\n")[1:-1]
    days = []
    for line in lines:
        f = [x.strip() for x in line.split(";")]
        value = {
            k: (None if f[i] == "-999" else Decimal(f[i]))
            for k, i in (("RSK", 6), ("TMK", 13), ("TXK", 15), ("TNK", 16))
        }
        days.append((dt.datetime.strptime(f[1], "%Y%m%d").date(), value))
    years: dict[int, dict] = defaultdict(lambda: defaultdict(int))
    temps: dict[int, list] = defaultdict(list)
    for day, v in days:
        y = years[day.year]
        txk, tnk, rsk = v["TXK"], v["TNK"], v["RSK"]
        y["days_observed"] += txk is not None and tnk is not None and rsk is not None
        y["summer_days"] += txk is not None and txk >= 25
        y["hot_days"] += txk is not None and txk >= 30
        y["tropical_nights"] += tnk is not None and tnk >= 20
        y["frost_days"] += tnk is not None and tnk < 0
        y["ice_days"] += txk is not None and txk < 0
        y["precipitation_days_10mm"] += rsk is not None and rsk >= 10
        y["precipitation_days_20mm"] += rsk is not None and rsk >= 20
        if rsk is not None:
            y["precipitation_mm"] += rsk
            y["max_daily_precipitation_mm"] = max(y["max_daily_precipitation_mm"], rsk)
        if v["TMK"] is not None:
            temps[day.year].append(v["TMK"])
    # heat periods: runs of >= 3 consecutive calendar days with TXK >= 30, counted in their start year
    hot = sorted(day for day, v in days if v["TXK"] is not None and v["TXK"] >= 30)
    run_start, run_len, previous = None, 0, None
    for day in hot + [None]:
        if day is not None and previous is not None and (day - previous).days == 1:
            run_len += 1
        else:
            if run_len >= 3:
                years[run_start.year]["heat_periods"] += 1
            run_start, run_len = day, 1
        previous = day
    for year, y in years.items():
        y["days_in_year"] = (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days
        y["missing_days"] = y["days_in_year"] - y["days_observed"]
        y["mean_temperature_c"] = float(sum(temps[year]) / len(temps[year]))
    return years


def test_real_403_loads_26298_days_and_mart_equals_direct_count(built):
    expected = plain_station_years(FILE_403)
    with duckdb.connect(str(built["db"]), read_only=True) as con:
        assert (
            con.execute("select count(*) from intermediate.int_climate__daily where station_id = 403").fetchone()[0]
            == 26_298
        )
        cur = con.execute("select * from marts.mart_climate_station_year where station_id = 403 order by year")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    assert [r["year"] for r in rows] == list(range(1950, 2022)) == sorted(expected)
    for r in rows:
        e = expected[r["year"]]
        assert r["station_name"] == "Berlin-Dahlem (FU)"
        for col in (
            "days_in_year",
            "days_observed",
            "missing_days",
            "summer_days",
            "hot_days",
            "tropical_nights",
            "frost_days",
            "ice_days",
            "precipitation_days_10mm",
            "precipitation_days_20mm",
            "precipitation_mm",
            "max_daily_precipitation_mm",
            "heat_periods",
        ):
            assert r[col] == e[col], (r["year"], col, r[col], e[col])
        assert r["is_complete"] == (e["missing_days"] == 0)
        assert r["mean_temperature_c"] == pytest.approx(e["mean_temperature_c"], abs=0.006)
    assert sum(r["heat_periods"] for r in rows) > 0 and any(r["tropical_nights"] for r in rows)


def test_reference_periods_of_403(built):
    expected = plain_station_years(FILE_403)
    with duckdb.connect(str(built["db"]), read_only=True) as con:
        rows = con.execute(
            "select reference_period, years_complete, is_representative, mean_hot_days, mean_precipitation_mm "
            "from intermediate.int_climate__reference_periods where station_id = 403 order by 1"
        ).fetchall()
    for (_period, years, representative, hot, precipitation), (a, b) in zip(rows, [(1961, 1990), (1991, 2020)]):
        complete = [expected[y] for y in range(a, b + 1) if expected[y]["missing_days"] == 0]
        assert years == len(complete) and representative == (len(complete) >= 24)
        assert hot == pytest.approx(round(sum(y["hot_days"] for y in complete) / len(complete), 1))
        assert precipitation == pytest.approx(
            float(sum(y["precipitation_mm"] for y in complete)) / len(complete), abs=0.051
        )


def test_short_429_year_says_it_is_incomplete(built):
    with duckdb.connect(str(built["db"]), read_only=True) as con:
        rows = con.execute(
            "select year, days_in_year, days_observed, missing_days, is_complete, station_name "
            "from marts.mart_climate_station_year where station_id = 429 order by year"
        ).fetchall()
    assert rows == [(1986, 365, 92, 273, False, "Berlin-Spandau"), (1987, 365, 31, 334, False, "Berlin-Spandau")]


def test_historical_preferred_and_newer_recent_only_adds_or_corrects(built):
    db, after, kinds = built["db"], built["after"], built["after_kinds"]
    with duckdb.connect(str(db), read_only=True) as con:
        before = dict(
            con.execute(  # the table dbt built before the newer archive arrived
                "select measured_on, temperature_max_c from intermediate.int_climate__daily where station_id = ?",
                [SYNTHETIC],
            ).fetchall()
        )
        raw_rows = con.execute(
            "select count(*) from staging.stg_climate__daily where station_id = ?", [SYNTHETIC]
        ).fetchone()[0]
        assert climate_checks.duplicate_days(con) == (0, [])
        assert climate_checks.station_list_problems(con) == []
    # before the newer archive: 2024 from the historical archive (the overlap Oct-Dec 2024 too),
    # Jan-Mar 2025 from the recent one
    assert len(before) == 366 + 90
    assert all(before[d] == Decimal("20") for d in before if d.year == 2024)
    assert all(before[d] == Decimal("21") for d in before if d.year == 2025)
    # after: nothing lost, Feb-Mar corrected by the newer archive, Apr-May added, history untouched
    assert set(before) <= set(after) and len(after) == 366 + 151
    changed = {d for d in before if before[d] != after[d]}
    assert changed == {d for d in before if dt.date(2025, 2, 1) <= d <= dt.date(2025, 3, 31)}
    assert all(after[d] == Decimal("22") for d in after if d >= dt.date(2025, 2, 1))
    assert all(after[d] == Decimal("21") for d in after if d.year == 2025 and d.month == 1)
    assert all(after[d] == Decimal("20") for d in after if d.year == 2024)
    assert raw_rows == 366 + 182 + 120  # every raw row of every delivery is kept, with its lineage
    assert kinds == {"historical": 366, "recent": 151}


def test_municipalities_get_nearest_active_station_and_its_precipitation(built):
    with duckdb.connect(str(built["db"]), read_only=True) as con:
        rows = con.execute(
            "select m.municipality_key, m.station_id, m.distance_km, p.reference_period, p.mean_annual_precipitation_mm "
            "from intermediate.int_climate__municipality_station m "
            "join intermediate.int_climate__municipality_precipitation p using (municipality_key)"
        ).fetchall()
    assert len(rows) == 53
    # 00403 (Berlin) and 00429 are not active against the newest data (2025); the test station near
    # Essen is the only active one
    assert {r[1] for r in rows} == {SYNTHETIC}
    by_key = {r[0]: r for r in rows}
    assert by_key["essen"][2] < 5 and by_key["bochum"][2] < by_key["dortmund"][2]
    # its record is shorter than 1991-2020: fall back to all complete years (2024 only: 366 x 1.0 mm)
    assert {(r[3], r[4]) for r in rows} == {("all_complete_years", 366.0)}


def test_checks_find_implausible_values(built, tmp_path):
    db = tmp_path / "copy.duckdb"
    shutil.copy(built["db"], db)
    with duckdb.connect(str(db)) as con:
        assert climate_checks.implausible_daily_values(con)[0] == 0
        con.execute(
            "update raw.climate__daily set txk = 55.5 where station_id = 403 and measured_on = date '2000-07-01'"
        )
        count, examples = climate_checks.implausible_daily_values(con)
        assert count == 1 and examples[0][:2] == (403, dt.date(2000, 7, 1))
        con.execute("insert into intermediate.int_climate__daily select * from intermediate.int_climate__daily limit 1")
        assert climate_checks.duplicate_days(con)[0] == 1
