"""Coordinate reference systems of tree data and the vectorised conversion between them.

Belongs here: the CRS names the readers accept and ``to_both_crs`` (numpy arrays through pyproj), which
gives every register tree both EPSG:25832 (metres) and WGS84 (degrees).
"""

from __future__ import annotations

import numpy as np
from pyproj import Transformer

EPSG_UTM32 = "EPSG:25832"
EPSG_WGS84 = "EPSG:4326"

_to_utm = Transformer.from_crs(EPSG_WGS84, EPSG_UTM32, always_xy=True)
_to_wgs = Transformer.from_crs(EPSG_UTM32, EPSG_WGS84, always_xy=True)


def to_utm(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 longitude/latitude to EPSG:25832 easting/northing (vectorised)."""
    east, north = _to_utm.transform(lon, lat)
    return np.asarray(east), np.asarray(north)


def to_both_crs(a: np.ndarray, b: np.ndarray, source_crs: str) -> dict[str, np.ndarray]:
    """Coordinates (x/y or lon/lat, NaN where missing) in EPSG:25832 and EPSG:4326, vectorised."""
    if source_crs == EPSG_UTM32:
        lon, lat = _to_wgs.transform(a, b)
        return {"easting_m": a, "northing_m": b, "longitude": np.asarray(lon), "latitude": np.asarray(lat)}
    if source_crs == EPSG_WGS84:
        east, north = _to_utm.transform(a, b)
        return {"easting_m": np.asarray(east), "northing_m": np.asarray(north), "longitude": a, "latitude": b}
    raise ValueError(f"unsupported CRS {source_crs}")
