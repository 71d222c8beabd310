"""Coordinate reference systems of tree data and the vectorised conversion between them.

Belongs here: the CRS names the readers know and ``to_both_crs`` (numpy arrays through pyproj), which gives
every tree both EPSG:25832 (metres, the boundaries' system) and WGS84 (degrees), from whatever system a
sender's schema names: UTM (EPSG:25832), WGS84, Gauss-Krüger (e.g. EPSG:31467, zone 3) or any other EPSG
code pyproj knows. Gauss-Krüger (DHDN) to ETRS89 uses pyproj's best transformation available offline: the
BeTA2007 grid is not installed, so a 7-parameter Helmert transformation (accuracy 1–3 m) is taken.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from pyproj import Transformer

EPSG_UTM32 = "EPSG:25832"
EPSG_WGS84 = "EPSG:4326"
EPSG_GK3 = "EPSG:31467"  # DHDN / 3-degree Gauss-Krüger zone 3


@cache
def _transformer(source: str, target: str) -> Transformer:
    return Transformer.from_crs(source, target, always_xy=True)


def to_utm(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 longitude/latitude to EPSG:25832 easting/northing (vectorised)."""
    east, north = _transformer(EPSG_WGS84, EPSG_UTM32).transform(lon, lat)
    return np.asarray(east), np.asarray(north)


def to_wgs84(east, north) -> tuple[np.ndarray, np.ndarray]:
    """EPSG:25832 easting/northing to WGS84 longitude/latitude (vectorised)."""
    lon, lat = _transformer(EPSG_UTM32, EPSG_WGS84).transform(east, north)
    return np.asarray(lon), np.asarray(lat)


def to_both_crs(a: np.ndarray, b: np.ndarray, source_crs: str) -> dict[str, np.ndarray]:
    """Coordinates (x/y, or lon/lat for WGS84; NaN where missing) in EPSG:25832 and EPSG:4326, vectorised."""
    if source_crs == EPSG_UTM32:
        lon, lat = to_wgs84(a, b)
        return {"easting_m": a, "northing_m": b, "longitude": lon, "latitude": lat}
    if source_crs == EPSG_WGS84:
        east, north = to_utm(a, b)
        return {"easting_m": east, "northing_m": north, "longitude": a, "latitude": b}
    east, north = _transformer(source_crs, EPSG_UTM32).transform(a, b)
    lon, lat = _transformer(source_crs, EPSG_WGS84).transform(a, b)
    return {
        "easting_m": np.asarray(east),
        "northing_m": np.asarray(north),
        "longitude": np.asarray(lon),
        "latitude": np.asarray(lat),
    }
