"""Demo writer for the climate family: DWD archives for the Ruhr stations, the station list, RVR statistics.

Renders into ``landing/climate/``:

- ``dwd/historical/tageswerte_KL_<id>_<from>_<to>_hist.zip``: daily series since 1950 (or the station's
  start) to 2024-12-31 (or the station's closure), in the DWD's layout (product file plus metadata files);
- ``dwd/recent/<download date>/tageswerte_KL_<id>_akt.zip`` for the active stations: 2024-07-01 to
  2026-10-31. It overlaps the last six months of the historical archive, as the DWD's recent archives
  do (about 500 days back); in the overlap a few days carry not yet quality-controlled values (QN_4 3,
  slightly different readings), so the preference for the historical archive is visible. Recent
  archives are kept per download date because the DWD reuses the file name;
- ``dwd/KL_Tageswerte_Beschreibung_Stationen.txt``: fixed width, ISO-8859-1, CRLF;
- ``rvr/rvr_klimaanalyse_flaechenstatistik_2020.csv``: climate-zone classes with heat stress and
  heavy-rain hazard areas per municipality and designated area.

The weather is synthetic but shaped like the Ruhr's: seasonal cycle, warming of ~0.025 K per year since
1970, correlated day-to-day anomalies, occasional heat waves, ~800 mm precipitation a year from a
wet/dry-day process with gamma-distributed amounts, a few gaps (missing rows and -999 values).
Deterministic for (seed); the programme only supplies the designated-area names.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import numpy as np

from zi_warehouse import dwd
from zi_warehouse.demo.programme import DemoProgramme
from zi_warehouse.german import format_number
from zi_warehouse.reference import municipalities

HIST_END = dt.date(2024, 12, 31)
RECENT_START = dt.date(2024, 7, 1)
RECENT_END = dt.date(2026, 10, 31)
RECENT_DOWNLOAD = "2026-11-01"
SERIES_START = dt.date(1950, 1, 1)

#: The daily-KL stations in and around the Ruhr (docs/domain.md#ruhr-stations); closed ones end on their last day.
RUHR_STATIONS = [
    dwd.StationEntry(
        1303, dt.date(1935, 1, 1), RECENT_END, 150, 51.4041, 6.9677, "Essen-Bredeney", "Nordrhein-Westfalen"
    ),
    dwd.StationEntry(
        13670, dt.date(2007, 6, 1), RECENT_END, 24, 51.5088, 6.7018, "Duisburg-Baerl", "Nordrhein-Westfalen"
    ),
    dwd.StationEntry(
        13696, dt.date(2007, 12, 1), RECENT_END, 60, 51.5966, 7.4048, "Waltrop-Abdinghof", "Nordrhein-Westfalen"
    ),
    dwd.StationEntry(
        13700, dt.date(2008, 5, 1), RECENT_END, 203, 51.3329, 7.3412, "Gevelsberg-Oberbröking", "Nordrhein-Westfalen"
    ),
    dwd.StationEntry(
        13901, dt.date(1979, 2, 1), RECENT_END, 41, 51.7343, 7.1998, "Haltern (Wasserwerk)", "Nordrhein-Westfalen"
    ),
    dwd.StationEntry(
        15190, dt.date(2018, 7, 1), RECENT_END, 18, 51.6802, 6.4349, "Xanten (Wasserwerk)", "Nordrhein-Westfalen"
    ),
    dwd.StationEntry(
        555, dt.date(1940, 1, 1), dt.date(2018, 10, 31), 109, 51.5025, 7.2290, "Bochum", "Nordrhein-Westfalen"
    ),
    dwd.StationEntry(
        1032, dt.date(1950, 1, 1), dt.date(1999, 9, 30), 120, 51.5120, 7.5345, "Dortmund", "Nordrhein-Westfalen"
    ),
]


def _regional_weather(seed: int, days: np.ndarray) -> dict[str, np.ndarray]:
    """The weather common to the whole region (stations add their own noise)."""
    rng = np.random.default_rng([seed, 0])
    n = len(days)
    doy = (days - days.astype("datetime64[Y]")).astype(int) + 1
    year = days.astype("datetime64[Y]").astype(int) + 1970
    season = np.sin(2 * np.pi * (doy - 110) / 365.25)  # +1 mid-July, -1 mid-January
    trend = np.clip(year - 1970, 0, None) * 0.025
    shocks = rng.normal(0.0, 1.0, n) * np.where(season > 0, 2.2, 2.8)
    anomaly = np.empty(n)
    acc = 0.0
    for i in range(n):  # AR(1): weather persists for a few days
        acc = 0.72 * acc + shocks[i]
        anomaly[i] = acc
    # heat waves: a few per summer in recent decades, 3-9 days, +4..+8 K
    summer = (doy >= 150) & (doy <= 240)
    starts = np.flatnonzero(summer & (rng.random(n) < 0.010 + 0.0004 * np.clip(year - 1980, 0, None)))
    for s in starts:
        length = rng.integers(3, 10)
        anomaly[s : s + length] += rng.uniform(4, 8)
    wet_prob = 0.52 + 0.06 * -season
    wet = rng.random(n) < wet_prob
    amount = rng.gamma(np.where(season > 0, 0.7, 0.85), np.where(season > 0, 6.6, 5.3), n)
    return {
        "tmk": 10.2 + 8.3 * season + trend + anomaly * 0.9,
        "wet": wet,
        "rsk": np.where(wet, np.round(np.maximum(amount, 0.1), 1), 0.0),
        "season": season,
    }


def _station_series(seed: int, station: dwd.StationEntry, days: np.ndarray, region) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, station.station_id])
    n = len(days)
    season = region["season"]
    altitude = -0.0065 * (station.height_m - 60)  # lapse rate relative to the Ruhr lowland
    tmk = np.round(region["tmk"] + altitude + rng.normal(0, 0.5, n), 1)
    wet = region["wet"]
    dtr = np.clip(6.0 + 3.5 * season + np.where(wet, -2.5, 2.0) + rng.normal(0, 1.2, n), 1.0, 16.0)
    txk = np.round(tmk + 0.55 * dtr, 1)
    tnk = np.round(tmk - 0.5 * dtr - 0.8, 1)
    rsk = np.where(wet & (rng.random(n) < 0.9), np.round(region["rsk"] * rng.uniform(0.6, 1.4, n), 1), 0.0)
    sunshine = np.clip((8 + 5 * season) * np.where(wet, 0.35, 0.8) * rng.uniform(0.3, 1.2, n), 0, 16.0)
    values = {
        "QN_3": np.full(n, 10.0),
        "FX": np.round(rng.gamma(4.0, 2.6, n), 1),
        "FM": np.round(rng.gamma(4.0, 0.8, n), 1),
        "QN_4": np.full(n, 10.0),
        "RSK": rsk,
        "RSKF": np.where(rsk > 0, np.where(tmk < 0, 7.0, 6.0), 0.0),
        "SDK": np.round(sunshine, 3),
        "SHK_TAG": np.where((tmk < -1) & wet, rng.integers(1, 12, n), 0).astype(float),
        "NM": np.round(np.clip(np.where(wet, 6.8, 4.2) + rng.normal(0, 1.1, n), 0, 8), 1),
        "VPM": np.round(np.clip(6.1 * 10 ** (7.5 * tnk / (237 + tnk)) * rng.uniform(0.85, 1.0, n), 1, 30), 1),
        "PM": np.round(1003 + rng.normal(0, 8, n) - station.height_m * 0.12, 2),
        "TMK": tmk,
        "UPM": np.round(np.clip(np.where(wet, 88, 74) - 8 * season + rng.normal(0, 6, n), 25, 100), 2),
        "TXK": txk,
        "TNK": tnk,
        "TGK": np.round(tnk - rng.uniform(0.5, 2.5, n), 1),
    }
    year = days.astype("datetime64[Y]").astype(int) + 1970
    early = year < 1979  # wind and sunshine were not yet recorded at these stations
    for col in ("QN_3", "FX", "FM"):
        values[col][early] = np.nan
    values["SDK"][year < 1969] = np.nan
    # value gaps (-999): a few episodes of 2-10 days in one or more of TXK/TNK/RSK
    for _ in range(rng.integers(2, 6)):
        start = rng.integers(0, max(1, n - 10))
        length = rng.integers(2, 11)
        cols = [["TXK", "TNK"], ["RSK"], ["TXK", "TNK", "TMK", "RSK"]][rng.integers(0, 3)]
        for col in cols:
            values[col][start : start + length] = np.nan
    return values


def _missing_rows(seed: int, station: dwd.StationEntry, n: int) -> np.ndarray:
    """Days without any row (the station did not report): one or two episodes of 3-40 days."""
    rng = np.random.default_rng([seed, station.station_id, 1])
    keep = np.ones(n, dtype=bool)
    for _ in range(rng.integers(1, 3)):
        start = rng.integers(0, max(1, n - 45))
        keep[start : start + rng.integers(3, 41)] = False
    return keep


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 11, 1, 6, 0, 0))  # fixed: byte-identical reruns
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=1)  # speed over size: the demo is rebuilt often
    path.write_bytes(buffer.getvalue())
    return path


def _parameter_metadata(station: dwd.StationEntry) -> bytes:
    lines = [
        "Stations_ID;Von_Datum;Bis_Datum;Stationsname;Parameter;Parameterbeschreibung;Einheit;Datenquelle (Strukturversion=SV);Zusatz-Info;Besonderheiten;Literaturhinweis;eor;"
    ]
    for code, text, unit in [
        ("RSK", "tägliche Niederschlagshöhe", "mm"),
        ("TXK", "Tagesmaximum der Lufttemperatur in 2m Höhe", "°C"),
        ("TNK", "Tagesminimum der Lufttemperatur in 2m Höhe", "°C"),
        ("TMK", "Tagesmittel der Lufttemperatur", "°C"),
    ]:
        lines.append(
            f"{station.station_id};{station.valid_from:%Y%m%d};;{station.name};{code};{text};{unit};"
            "Climate Data Center;;;;eor;"
        )
    lines.append("Legende: Datenbasis: Deutscher Wetterdienst")
    return ("\r\n".join(lines) + "\r\n").encode("iso-8859-1")


def _archive(station, days, values, keep, first, last) -> dict[str, bytes]:
    mask = keep & (days >= np.datetime64(first)) & (days <= np.datetime64(last))
    product = dwd.render_product(station.station_id, days[mask], {k: v[mask] for k, v in values.items()})
    sid = f"{station.station_id:05d}"
    return {
        f"Metadaten_Geographie_{sid}.txt": dwd.render_geography_metadata(station, station.valid_from, None),
        f"Metadaten_Parameter_klima_tag_{sid}.txt": _parameter_metadata(station),
        dwd.product_name(station.station_id, first, last): product,
    }


def _write_dwd(folder: Path, seed: int) -> list[Path]:
    written = []
    days = np.arange(np.datetime64(SERIES_START), np.datetime64(RECENT_END) + 1, dtype="datetime64[D]")
    region = _regional_weather(seed, days)
    for station in RUHR_STATIONS:
        values = _station_series(seed, station, days, region)
        keep = _missing_rows(seed, station, len(days))
        first = max(SERIES_START, station.valid_from)
        hist_last = min(HIST_END, station.valid_to)
        in_recent = days >= np.datetime64(RECENT_START)
        keep[in_recent] = True  # gaps are in the quality-controlled history; recent days are all there
        written.append(
            _zip(
                folder / "historical" / dwd.hist_zip_name(station.station_id, first, hist_last),
                _archive(station, days, values, keep, first, hist_last),
            )
        )
        if station.valid_to >= RECENT_END:
            recent = {k: v.copy() for k, v in values.items()}
            rng = np.random.default_rng([seed, station.station_id, 2])
            recent["QN_4"][in_recent] = 3.0  # not yet fully quality-controlled
            # the overlap with the historical archive: some values were corrected in the history since
            overlap = np.flatnonzero(in_recent & (days <= np.datetime64(HIST_END)))
            changed = rng.choice(overlap, size=max(1, len(overlap) // 20), replace=False)
            recent["RSK"][changed] = np.round(
                np.nan_to_num(recent["RSK"][changed]) + rng.uniform(0.1, 2.0, len(changed)), 1
            )
            recent["TXK"][changed] = np.round(np.nan_to_num(recent["TXK"][changed], nan=15.0) + 0.3, 1)
            written.append(
                _zip(
                    folder / "recent" / RECENT_DOWNLOAD / dwd.recent_zip_name(station.station_id),
                    _archive(station, days, recent, keep, RECENT_START, RECENT_END),
                )
            )
    listing = folder / dwd.STATION_LIST_NAME
    listing.write_bytes(dwd.render_station_list(sorted(RUHR_STATIONS, key=lambda s: s.station_id)))
    written.append(listing)
    return written


def _de(x: float) -> str:
    return format_number(x, 2, thousands=False)


#: Climatope mix of a fully urban and a fully rural area (shares of area; mixed by urbanity).
_URBAN_MIX = {
    "Gewässerklima": 0.02,
    "Freilandklima": 0.04,
    "Waldklima": 0.04,
    "Parkklima": 0.10,
    "Vorstadtklima": 0.15,
    "Stadtrandklima": 0.20,
    "Stadtklima": 0.22,
    "Innenstadtklima": 0.10,
    "Gewerbe- und Industrieklima": 0.13,
}
_RURAL_MIX = {
    "Gewässerklima": 0.03,
    "Freilandklima": 0.45,
    "Waldklima": 0.28,
    "Parkklima": 0.03,
    "Vorstadtklima": 0.10,
    "Stadtrandklima": 0.06,
    "Stadtklima": 0.02,
    "Innenstadtklima": 0.0,
    "Gewerbe- und Industrieklima": 0.03,
}
#: Share of each class that the FITNAH night-time evaluation marks as heat-stressed (low, high).
_HEAT_SHARE = {
    "Vorstadtklima": (0.02, 0.15),
    "Stadtrandklima": (0.15, 0.45),
    "Stadtklima": (0.55, 0.85),
    "Innenstadtklima": (0.85, 1.0),
    "Gewerbe- und Industrieklima": (0.6, 0.95),
}
_DEPTHS = ["0,10-0,30 m", "0,30-0,50 m", "0,50-1,00 m", "> 1,00 m"]
_DEPTH_SPLIT = [0.62, 0.22, 0.12, 0.04]


def _area_rows(rng, municipality: str, area_type: str, area_name: str, total_ha: float, urbanity: float) -> list[str]:
    mix = {k: urbanity * _URBAN_MIX[k] + (1 - urbanity) * _RURAL_MIX[k] for k in _URBAN_MIX}
    weights = np.array([mix[k] for k in mix]) * rng.uniform(0.7, 1.3, len(mix))
    areas = np.round(total_ha * weights / weights.sum(), 2)
    rows = []
    for klass, area in zip(mix, areas):
        lo, hi = _HEAT_SHARE.get(klass, (0.0, 0.0))
        heat = round(area * rng.uniform(lo, hi), 2)
        rows.append(f"{municipality};{area_type};{area_name};Klimatop;{klass};{_de(area)};{_de(heat)}")
    for topic, share in (
        ("Starkregen selten", rng.uniform(0.03, 0.08)),
        ("Starkregen extrem", rng.uniform(0.08, 0.16)),
    ):
        hazard = total_ha * share * (0.7 + 0.6 * urbanity)
        for depth, split in zip(_DEPTHS, _DEPTH_SPLIT):
            rows.append(f"{municipality};{area_type};{area_name};{topic};{depth};{_de(hazard * split)};")
    return rows


def _write_area_statistics(folder: Path, programme: DemoProgramme, seed: int) -> Path:
    rng = np.random.default_rng([seed, 3])
    lines = [";".join(["Gemeinde", "Gebietsart", "Gebiet", "Thema", "Klasse", "Flaeche_ha", "davon_waermebelastet_ha"])]
    designated = {}
    for p in programme.projects:
        if p.designated_area_name:
            designated.setdefault(p.municipality_key, set()).add(p.designated_area_name)
    for m in municipalities():
        density = m.population_2020 / max(m.area_km2, 1.0)
        urbanity = float(np.clip(density / 2800.0, 0.05, 0.95))
        lines += _area_rows(rng, m.name, "Gemeinde", m.name, m.area_km2 * 100.0, urbanity)
        # the designated areas: every quarter a project names, and the four a municipality may designate
        names = sorted(
            designated.get(m.key, set()) | {f"Gestaltungsraum {m.name} {q}" for q in ("Mitte", "Nord", "Süd", "West")}
        )
        for name in names:
            lines += _area_rows(
                rng, m.name, "Gestaltungsraum", name, float(rng.uniform(40, 400)), min(0.98, urbanity + 0.3)
            )
    path = folder / "rvr_klimaanalyse_flaechenstatistik_2020.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8-sig"))
    return path


def write(landing_dir: Path, programme: DemoProgramme, seed: int) -> list[Path]:
    """Write the climate deliveries into ``landing_dir/climate``; returns the files written."""
    root = Path(landing_dir) / "climate"
    written = _write_dwd(root / "dwd", seed)
    written.append(_write_area_statistics(root / "rvr", programme, seed))
    return written
