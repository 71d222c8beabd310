#!/usr/bin/env python3
"""Derive the boundaries of the 53 RVR municipalities from the BKG municipalities of NRW.

Reads the shared real-data file in place (it is never copied into the repository) and writes
- ``seeds/municipality_boundaries.geojson``: one simplified polygon per municipality (WGS84, coordinates
  rounded to 6 decimals, about 0.1 m) with its key, official key (AGS), official name and areas, and the
  publisher's attribution: "© GeoBasis-DE / BKG 2013 (Daten verändert)", Datenlizenz Deutschland –
  Namensnennung – Version 2.0;
- the columns ``ags``, ``area_km2`` (the official area of the statistical offices, carried by the same data
  set) and ``boundary_area_km2`` (geodesic area of the simplified polygon, GRS80) of
  ``seeds/municipalities.csv``; its other columns are kept as they are.

Names are matched through ``seeds/municipality_aliases.csv`` (``zi_warehouse.reference.match_municipality``);
the script stops if a municipality is not found exactly once. Deterministic: running it again on the same
file changes nothing. Usage:

    .venv/bin/python scripts/derive_municipality_boundaries.py [path/to/gemeinden_nrw.geojson]
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from zi_warehouse.boundaries import ATTRIBUTION, BOUNDARIES_FILE, LICENSE  # noqa: E402
from zi_warehouse.config import SEEDS_DIR  # noqa: E402
from zi_warehouse.reference import match_municipality, municipalities  # noqa: E402

DEFAULT_SOURCE = REPO.parent / "shared" / "real-data" / "boundaries" / "gemeinden_nrw.geojson"
DECIMALS = 6


def _rounded(coords):
    if isinstance(coords[0], (int, float)):
        return [round(c, DECIMALS) for c in coords]
    return [_rounded(c) for c in coords]


def geodesic_area_km2(geometry: dict) -> float:
    from pyproj import Geod
    from shapely.geometry import shape

    return abs(Geod(ellps="GRS80").geometry_area_perimeter(shape(geometry))[0]) / 1e6


def derive(source: Path) -> tuple[str, str]:
    """(the boundaries GeoJSON text, the new seeds/municipalities.csv text)."""
    doc = json.loads(source.read_text(encoding="utf-8"))
    found: dict[str, list[dict]] = {}
    for feature in doc["features"]:
        key = match_municipality(feature["properties"]["GEN"])
        if key is not None:
            found.setdefault(key, []).append(feature)
    keys = [m.key for m in municipalities()]
    problems = [f"{k}: {len(found.get(k, []))} matches" for k in keys if len(found.get(k, [])) != 1]
    if problems:
        raise SystemExit("not exactly one boundary per municipality: " + "; ".join(problems))
    features = []
    areas = {}
    for key in sorted(keys):
        feature = found[key][0]
        props = feature["properties"]
        geometry = {"type": feature["geometry"]["type"], "coordinates": _rounded(feature["geometry"]["coordinates"])}
        official = round(float(props["destatis"]["area"]), 2)
        polygon = round(geodesic_area_km2(geometry), 2)
        areas[key] = (props["AGS"], official, polygon)
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "municipality_key": key,
                    "ags": props["AGS"],
                    "name_official": props["GEN"],
                    "area_km2_official": official,
                    "area_km2_polygon": polygon,
                },
                "geometry": geometry,
            }
        )
    out = {
        "type": "FeatureCollection",
        "name": "municipality_boundaries_rvr",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
        "source": ATTRIBUTION,
        "license": LICENSE,
        "derived_with": "scripts/derive_municipality_boundaries.py from gemeinden_nrw.geojson (VG250, simplified)",
        "features": features,
    }
    boundaries = json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n"

    with open(SEEDS_DIR / "municipalities.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    columns = [c for c in rows[0] if c not in ("ags", "boundary_area_km2")]
    columns.insert(1, "ags")
    columns.insert(columns.index("area_km2") + 1, "boundary_area_km2")
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        ags, official, polygon = areas[row["municipality_key"]]
        writer.writerow({**row, "ags": ags, "area_km2": f"{official:g}", "boundary_area_km2": f"{polygon:g}"})
    return boundaries, text.getvalue()


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE
    boundaries, seed = derive(source)
    BOUNDARIES_FILE.write_text(boundaries, encoding="utf-8")
    (SEEDS_DIR / "municipalities.csv").write_text(seed, encoding="utf-8")
    size = len(boundaries.encode())
    print(f"wrote {BOUNDARIES_FILE.relative_to(REPO)} ({size:,} bytes) and seeds/municipalities.csv")


if __name__ == "__main__":
    main()
