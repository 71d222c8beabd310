"""Demo tree data: the RVR "Klimabäume" campaign lists and municipal tree registers (Baumkataster).

What is rendered (docs/domain.md#tree-campaign):
- ``trees/campaign/klimabaeume_ausgabe_2021-10-30.csv``: the 30.10.2021 distribution, exactly **10,000**
  fruit trees through **43** distribution points, split into apple/pear/cherry/plum; each row's
  ``davon nicht abgeholt`` is a subset of its count (those trees were planted at schools and playgrounds,
  so they still count towards the 10,000). The figures the talk names are kept: Duisburg 230,
  Mülheim an der Ruhr 200, Castrop-Rauxel about 200, Bergkamen over 200, Dinslaken about 130. Each
  distribution point has a position (``Breite``/``Länge``, WGS84) inside its municipality's boundary.
- the 100 trees of April 2021 (16 founding municipalities, species group ``other``) are a separate pilot;
  they are rendered (``trees/campaign/klimabaeume_pflanzung_2021-04.csv``) only when
  ``RENDER_APRIL_PILOT`` is set, so that by default every campaign tree in the marts belongs to the
  30.10.2021 campaign and the campaign total they show is exactly 10,000. The reader and the models handle
  both (``campaign_key`` tells them apart).
- ``trees/registers/baumkataster_<kommune>.csv`` (German CSV, ``;``, decimal comma, EPSG:25832
  Rechtswert/Hochwert) for some cities and ``.geojson`` (WGS84) for others; about 1,000,000 trees in total at
  scale 1, proportional to ``programme.scale``; trees lie uniformly inside the municipality's boundary
  polygon (``zi_warehouse/boundaries.py``); each register has a few implausible rows (height 62 m,
  crown 41 m, planting year 2102, swapped coordinates, a duplicated tree number).

The campaign does not scale (it is a historical fact); the registers do. Generated with numpy and written by
DuckDB from Arrow tables; deterministic for (scale, seed).
"""

from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import shapely

from zi_warehouse import boundaries
from zi_warehouse.german import format_number
from zi_warehouse.reference import municipality_by_key
from zi_warehouse.trees.campaign import CAMPAIGN_DATE, CAMPAIGN_DISTRIBUTION_POINTS, CAMPAIGN_TREE_TARGET
from zi_warehouse.trees.coordinates import to_wgs84

#: Counts the talk names per municipality (docs/domain.md#tree-campaign).
NAMED_COUNTS = {"duisburg": 230, "muelheim_an_der_ruhr": 200, "castrop_rauxel": 200, "bergkamen": 210, "dinslaken": 130}
SPECIES_SHARES = {"Apfel": 0.40, "Birne": 0.20, "Kirsche": 0.20, "Pflaume": 0.20}
APRIL_TREES = 100
#: Off by default: the marts' 2021 campaign figure must read 10,000 (see module docstring).
RENDER_APRIL_PILOT = False

REGISTER_TREES_AT_SCALE_1 = 1_000_000
#: Municipalities with an open tree register in the demo; the first of each pair sends CSV (EPSG:25832),
#: the second GeoJSON (WGS84).
REGISTER_MUNICIPALITIES = (
    "dortmund",
    "duisburg",
    "essen",
    "gelsenkirchen",
    "bochum",
    "muelheim_an_der_ruhr",
    "oberhausen",
    "herne",
    "hagen",
    "bottrop",
    "hamm",
    "witten",
    "recklinghausen",
    "moers",
    "marl",
    "luenen",
    "dorsten",
    "castrop_rauxel",
    "gladbeck",
)

# (botanical, German, weight, max height m)
SPECIES = [
    ("Tilia cordata", "Winter-Linde", 14, 30),
    ("Acer platanoides", "Spitz-Ahorn", 13, 25),
    ("Acer pseudoplatanus", "Berg-Ahorn", 8, 30),
    ("Quercus robur", "Stiel-Eiche", 9, 35),
    ("Platanus × hispanica", "Ahornblättrige Platane", 7, 35),
    ("Carpinus betulus", "Hainbuche", 8, 20),
    ("Fraxinus excelsior", "Gemeine Esche", 5, 35),
    ("Betula pendula", "Hänge-Birke", 5, 25),
    ("Aesculus hippocastanum", "Gewöhnliche Rosskastanie", 5, 28),
    ("Robinia pseudoacacia", "Robinie", 4, 25),
    ("Prunus avium", "Vogel-Kirsche", 4, 18),
    ("Malus domestica", "Kultur-Apfel", 3, 10),
    ("Pyrus calleryana", "Chinesische Birne", 3, 15),
    ("Prunus domestica", "Pflaume", 2, 10),
    ("Sorbus aucuparia", "Eberesche", 4, 15),
    ("Fagus sylvatica", "Rotbuche", 3, 35),
    ("Ginkgo biloba", "Ginkgo", 2, 25),
]
STATUS = ("gesund", "leicht geschädigt", "stark geschädigt")
STREETS = (
    "Hauptstraße",
    "Bahnhofstraße",
    "Schulstraße",
    "Gartenstraße",
    "Lindenallee",
    "Kirchstraße",
    "Parkweg",
    "Ringstraße",
    "Am Markt",
    "Friedhofstraße",
    "Bergstraße",
    "Waldweg",
    "Emscherstraße",
    "Zechenstraße",
    "Wiesenstraße",
)
DISTRICTS = ("Mitte", "Nord", "Süd", "Ost", "West")


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def points_inside(rng: np.random.Generator, key: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points (EPSG:25832) uniformly inside municipality ``key``'s boundary polygon (rejection
    sampling in its bounding box, vectorised)."""
    polygon = boundaries.boundaries().polygon(key)
    x0, y0, x1, y1 = polygon.bounds
    xs, ys, found = [], [], 0
    while found < n:
        size = max(2 * (n - found), 16)
        x = rng.uniform(x0, x1, size)
        y = rng.uniform(y0, y1, size)
        inside = shapely.contains_xy(polygon, x, y)
        xs.append(x[inside])
        ys.append(y[inside])
        found += int(inside.sum())
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def _split(rng: np.random.Generator, total: int, weights: np.ndarray) -> np.ndarray:
    """Integers >= 0 proportional to ``weights`` that sum to ``total`` exactly (largest remainder)."""
    raw = total * weights / weights.sum()
    out = np.floor(raw).astype(int)
    rest = total - out.sum()
    order = np.argsort(-(raw - out) + rng.random(len(raw)) * 1e-9)
    out[order[:rest]] += 1
    return out


def campaign_points(seed: int) -> list[tuple[str, str, int]]:
    """The 43 distribution points: (municipality_key, point name, trees), trees summing to 10,000."""
    rng = _rng(seed, "campaign")
    munis = municipality_by_key()
    others = sorted((k for k in munis if k not in NAMED_COUNTS), key=lambda k: -munis[k].population_2020)
    # 38 further points: the largest cities get two points, then one per municipality by size.
    n_more = CAMPAIGN_DISTRIBUTION_POINTS - len(NAMED_COUNTS)
    doubles = others[:5]
    singles = others[: n_more - len(doubles)]
    keys = doubles + singles
    weights = np.sqrt(np.array([munis[k].population_2020 for k in keys], dtype=float))
    weights *= rng.uniform(0.85, 1.15, len(keys))
    counts = _split(rng, CAMPAIGN_TREE_TARGET - sum(NAMED_COUNTS.values()), weights)
    points = [(k, f"Ausgabestelle {munis[k].name}", c) for k, c in NAMED_COUNTS.items()]
    seen: dict[str, int] = {}
    for k, c in zip(keys, counts):
        seen[k] = seen.get(k, 0) + 1
        place = ["Betriebshof", "Gartencenter"][seen[k] - 1]
        points.append((k, f"{place} {munis[k].name}", int(c)))
    assert len(points) == CAMPAIGN_DISTRIBUTION_POINTS and sum(p[2] for p in points) == CAMPAIGN_TREE_TARGET
    return points


def write_campaign(folder: Path, seed: int = 7) -> list[Path]:
    """The campaign distribution list(s) into ``folder`` (the 30.10.2021 list; the April pilot if enabled)."""
    rng = _rng(seed, "campaign-species")
    munis = municipality_by_key()
    species = list(SPECIES_SHARES)
    shares = np.array([SPECIES_SHARES[s] for s in species])
    where = _rng(seed, "campaign-positions")
    lines = ["Ausgabestelle;Kommune;Obstart;Anzahl;Ausgabedatum;davon nicht abgeholt;Breite;Länge"]
    for key, point, count in campaign_points(seed):
        split = _split(rng, count, shares * rng.uniform(0.8, 1.2, len(shares)))
        lon, lat = to_wgs84(*points_inside(where, key, 1))
        position = f"{format_number(lat[0], 6, thousands=False)};{format_number(lon[0], 6, thousands=False)}"
        for sp, n in zip(species, split):
            if n == 0:
                continue
            unclaimed = int(rng.binomial(n, 0.04))
            lines.append(f"{point};{munis[key].name};{sp};{n};{CAMPAIGN_DATE:%d.%m.%Y};{unclaimed};{position}")
    autumn = folder / f"klimabaeume_ausgabe_{CAMPAIGN_DATE.isoformat()}.csv"
    autumn.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if not RENDER_APRIL_PILOT:
        return [autumn]
    return [autumn, write_april_pilot(folder, seed)]


def write_april_pilot(folder: Path, seed: int = 7) -> Path:
    """April 2021: 100 climate trees planted in the 16 founding municipalities (a separate campaign)."""
    rng = _rng(seed, "campaign-april")
    munis = municipality_by_key()
    founders = sorted(k for k, m in munis.items() if m.is_zi_member)
    counts = _split(rng, APRIL_TREES, np.ones(len(founders)))
    lines = ["Ausgabestelle;Kommune;Obstart;Anzahl;Ausgabedatum;davon nicht abgeholt"]
    for i, (key, n) in enumerate(zip(founders, counts)):
        day = dt.date(2021, 4, 10 + (i % 3) * 7)
        lines.append(f"Pflanzaktion {munis[key].name};{munis[key].name};Klimabaum;{n};{day:%d.%m.%Y};0")
    april = folder / "klimabaeume_pflanzung_2021-04.csv"
    april.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return april


def register_sizes(scale: float) -> dict[str, int]:
    munis = municipality_by_key()
    pop = {k: munis[k].population_2020 for k in REGISTER_MUNICIPALITIES}
    total = sum(pop.values())
    return {k: max(60, round(REGISTER_TREES_AT_SCALE_1 * scale * p / total)) for k, p in pop.items()}


def register_table(key: str, n: int, seed: int) -> pa.Table:
    """One municipality's register as numeric arrays (coordinates in EPSG:25832), with broken rows."""
    rng = _rng(seed, "register-" + key)
    x, y = points_inside(rng, key, n)
    x, y = np.round(x, 2), np.round(y, 2)
    weights = np.array([s[2] for s in SPECIES], dtype=float)
    species = rng.choice(len(SPECIES), size=n, p=weights / weights.sum())
    max_h = np.array([s[3] for s in SPECIES], dtype=float)[species]
    age_years = rng.gamma(2.0, 18.0, n)
    age_years = np.where(age_years > 110, rng.uniform(40, 110, n), age_years)  # no pile-up at the cap
    planting = 2025 - age_years.astype(int)
    age = np.maximum(2026 - planting, 1)
    height = np.round(np.clip(max_h * (1 - np.exp(-age / 25)) * rng.uniform(0.8, 1.1, n), 1.5, 44), 1)
    crown = np.round(np.clip(height * rng.uniform(0.4, 0.8, n), 0.8, 28), 1)
    trunk = np.round(np.clip(age * rng.uniform(2.5, 4.5, n), 5, 1200))
    status = np.where(planting >= 2020, 3, rng.choice(3, size=n, p=[0.75, 0.2, 0.05]))
    seq = np.arange(n)
    bad_rows = np.isin(seq, [5, 15, 25, 35, 45])
    missing_year = (rng.random(n) < 0.03) & ~bad_rows
    missing_height = (rng.random(n) < 0.05) & ~bad_rows
    # A few implausible rows at fixed positions (0-based): 5 height, 15 crown, 25 future year,
    # 35 swapped axes, 45 duplicate tree number of row 44.
    height = np.where(seq == 5, 62.0, height)
    crown = np.where(seq == 15, 41.0, crown)
    planting = np.where(seq == 25, 2102, planting)
    x, y = np.where(seq == 35, y, x), np.where(seq == 35, x, y)
    number = seq + 1
    number = np.where(seq == 45, 45, number)  # row 45 repeats the number of row 44 (1-based 45)
    prefix = key.replace("_", "")[:3].upper()
    return pa.table(
        {
            "seq": seq,
            "tree_number": pa.array(number, pa.int64()),
            "prefix": pa.array(np.full(n, prefix)),
            "species_idx": species,
            "planting_year": pa.array(planting, pa.int64(), mask=missing_year),
            "trunk_circumference_cm": trunk,
            "crown_diameter_m": crown,
            "height_m": pa.array(height, pa.float64(), mask=missing_height),
            "district_idx": rng.integers(0, len(DISTRICTS), n),
            "street_idx": rng.integers(0, len(STREETS), n),
            "house_no": rng.integers(1, 120, n),
            "status_idx": status,
            "x": x,
            "y": y,
        }
    )


def _lookups(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.register(
        "species",
        pa.table(
            {
                "species_idx": list(range(len(SPECIES))),
                "botanical": [s[0] for s in SPECIES],
                "german": [s[1] for s in SPECIES],
            }
        ),
    )
    con.register(
        "districts",
        pa.table({"district_idx": list(range(len(DISTRICTS))), "district": [f"{name}-{d}" for d in DISTRICTS]}),
    )
    con.register("streets", pa.table({"street_idx": list(range(len(STREETS))), "street": list(STREETS)}))
    con.register("statuses", pa.table({"status_idx": [0, 1, 2, 3], "status": [*STATUS, "Neupflanzung"]}))


_JOINED = """
select t.*, s.botanical, s.german, d.district, st.street || ' ' || t.house_no as street_address, ss.status
from reg t
join species s using (species_idx)
join districts d using (district_idx)
join streets st using (street_idx)
join statuses ss using (status_idx)
"""


def _de(expr: str, fmt: str) -> str:
    """A number formatted the German way (decimal comma), empty when NULL."""
    return f"coalesce(replace(printf('{fmt}', {expr}), '.', ','), '')"


def _write_register(folder: Path, key: str, n: int, seed: int, as_geojson: bool) -> Path:
    reg = register_table(key, n, seed)
    munis = municipality_by_key()
    con = duckdb.connect()
    try:
        con.execute("set enable_progress_bar = false")
        _lookups(con, munis[key].name)
        if as_geojson:
            lon, lat = to_wgs84(reg.column("x").to_numpy(), reg.column("y").to_numpy())
            reg = reg.append_column("lon", pa.array(np.round(lon, 7))).append_column("lat", pa.array(np.round(lat, 7)))
            con.register("reg", reg)
            path = folder / f"baumkataster_{key}.geojson"
            text = con.sql(
                f"""
                select json_object(
                    'type', 'FeatureCollection', 'name', 'Baumkataster {munis[key].name}',
                    'features', to_json(list(json_object(
                        'type', 'Feature',
                        'geometry', json_object('type', 'Point', 'coordinates', json_array(lon, lat)),
                        'properties', json_object(
                            'Baumnummer', prefix || '-' || lpad(tree_number::varchar, 6, '0'),
                            'Art_botanisch', botanical, 'Art_deutsch', german, 'Pflanzjahr', planting_year,
                            'Stammumfang_cm', trunk_circumference_cm, 'Kronendurchmesser_m', crown_diameter_m,
                            'Baumhoehe_m', height_m, 'Stadtbezirk', district, 'Strasse', street_address,
                            'Status', status)
                    ) order by seq))
                )::varchar
                from ({_JOINED}) j
                """
            ).fetchall()[0][0]
            path.write_text(text, encoding="utf-8")
        else:
            con.register("reg", reg)
            path = folder / f"baumkataster_{key}.csv"
            con.execute(
                f"""
                copy (
                    select prefix || '-' || lpad(tree_number::varchar, 6, '0') as "Baumnummer",
                           botanical as "Art botanisch", german as "Art deutsch",
                           coalesce(planting_year::varchar, '') as "Pflanzjahr",
                           {_de("trunk_circumference_cm", "%.0f")} as "Stammumfang cm",
                           {_de("crown_diameter_m", "%.1f")} as "Kronendurchmesser m",
                           {_de("height_m", "%.1f")} as "Baumhöhe m",
                           district as "Stadtbezirk", street_address as "Straße", status as "Status",
                           {_de("x", "%.2f")} as "Rechtswert", {_de("y", "%.2f")} as "Hochwert"
                    from ({_JOINED}) j
                    order by seq
                ) to '{str(path).replace("'", "''")}' (header, delimiter ';')
                """
            )
    finally:
        con.close()
    return path


def write(landing_dir: Path, programme, seed: int = 7) -> list[Path]:
    """Write the campaign lists and the tree registers below ``landing/trees``; returns the paths."""
    root = Path(landing_dir) / "trees"
    campaign = root / "campaign"
    registers = root / "registers"
    campaign.mkdir(parents=True, exist_ok=True)
    registers.mkdir(parents=True, exist_ok=True)
    written = write_campaign(campaign, seed)
    for i, (key, n) in enumerate(register_sizes(programme.scale).items()):
        written.append(_write_register(registers, key, n, seed, as_geojson=i % 2 == 1))
    return written
