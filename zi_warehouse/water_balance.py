"""Water-balance factors: the DWA-M 102-4 regression equations (docs/domain.md#water-balance) and nothing else.

Each surface or facility element splits long-term precipitation P (mm/a) into runoff ``a``, groundwater
recharge ``g`` and evaporation ``v`` (a + g + v = 1), as functions of P, the potential evaporation ETp
(mm/a) and the element's parameters. This module is the ONE implementation of those equations: the dbt
Python model ``int_water_balance__factors`` imports it, and ``tests/test_water_balance.py`` checks it against
the worked values in docs/domain.md#worked-values.

What is data, not code:
- the coefficients of each equation, per *edition* (``EDITIONS``; only the December 2020 draft
  "Gelbdruck" is public, the final 2022 edition may differ: add it as a second entry, never edit the first);
- which equation and which standard parameters each element type uses (``seeds/surface_types.csv``).

Functions accept scalars or numpy arrays (vectorised over municipalities).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache

import numpy as np

from zi_warehouse.config import SEEDS_DIR

#: The edition label is also the dbt var ``water_balance_edition`` and a column of the factor table.
DRAFT_2020 = "DWA-M 102-4 Gelbdruck 2020-12"
DEFAULT_EDITION = DRAFT_2020

#: Validity range of the regressions (mm/a). Outside it the numbers are extrapolations.
VALID_P_MM = (500.0, 1700.0)
VALID_ETP_MM = (450.0, 700.0)

#: Coefficients per edition and equation, as transcribed from the draft (docs/domain.md#factor-equations).
#: Names follow the term they multiply (``ln_p`` multiplies ln P, ``inv_etp`` multiplies 1/ETp, ...).
EDITIONS: dict[str, dict[str, dict[str, float]]] = {
    DRAFT_2020: {
        # pitched roof; metal/glass flat roof: a = c0 + p·P + etp·ETp + ln_sp·ln(Sp+1); g = 0
        "steep_roof": {"c0": 0.9115, "p": 0.00007063, "etp": -0.000007498, "ln_sp": -0.2063},
        # flat roof (felt, gravel), asphalt, jointless concrete, tight paving
        "flat_surface": {"c0": 0.8658, "p": 0.0001659, "etp": -0.00009945, "ln_sp": -0.1542},
        # green roof: a = c0 + ln_p·lnP + p·P + inv_etp/ETp + h·h + kf·kf + ln_wk·lnWK + ln_wk_h·ln(WK·h)
        "green_roof": {
            "c0": -2.182,
            "ln_p": 0.4293,
            "p": -0.0001092,
            "inv_etp": 236.1,
            "h": 0.0001142,
            "kf": 0.0002297,
            "ln_wk": 0.01628,
            "ln_wk_h": -0.1214,
        },
        "retention_roof": {"c0": 0.9231, "p": 0.000254, "etp": -0.0003226, "ln_sp": -0.1472},
        # paving with joint share FA 6–10 %: a and v regressions, g = 1 − a − v
        "paving": {
            "a_ln_p": 0.05912,
            "a_fa": -0.02749,
            "a_sp": -0.03671,
            "a_wk": -0.30514,
            "a_kf_num": 4.97687,
            "a_kf_off": 4.7975,
            "v_c0": 0.9012,
            "v_ln_p": -0.1325,
            "v_etp": 0.00006661,
            "v_fa": 0.002302,
            "v_ln_sp": 0.1489,
        },
        # porous paving, gravel, gravel lawn
        "porous_paving": {
            "a_p": 0.000001969,
            "a_ln_sp": -0.005116,
            "a_h": -0.0001051,
            "a_exp": 0.01753,
            "a_exp_num": 4.576,
            "v_c0": 0.2111,
            "v_ln_p": -0.2544,
            "v_ln_etp": 0.2073,
            "v_sp": 0.0006249,
            "v_ln_h": 0.123,
            "v_kf": -0.000002806,
        },
        # infiltration swale (applies to its inflow); FA = fa_c·kf^fa_e (% of the connected area)
        "swale": {
            "fa_c": 42.323,
            "fa_e": -0.314,
            "g_c0": 0.8608,
            "g_ln_p": 0.02385,
            "g_etp": -0.00005331,
            "g_fa": -0.002827,
            "g_kf": -0.000002493,
            "g_ln_kf_fa": 0.0009514,
            "v_etp": 0.000008562,
            "v_num": 2.611,
            "v_p_off": 64.35,
            "v_fa_exp": 0.9425,
            "v_kf": -0.000001211,
        },
        # swale-trench element (inflow): a and v regressions, g = 1 − a − v
        "swale_trench": {
            "fa_c": 21.86,
            "fa_e": -0.348,
            "a_c0": -0.03867,
            "a_ln_p": 0.007684,
            "a_fa": 0.000003201,
            "a_kf": 0.0002564,
            "a_fa_kf": -0.0001187,
            "a_ln_kf_fa": 0.004161,
            "v_etp": 0.000008879,
            "v_num": 2.528,
            "v_p_off": 81.65,
            "v_fa_exp": 0.9496,
            "v_kf": -0.00007768,
        },
        "pond": {},
        "pipe": {},
        "fixed": {},
    }
}


@dataclass(frozen=True)
class Shares:
    """Long-term shares of precipitation (each a float or a numpy array); a + g + v = 1."""

    a: np.ndarray | float  # runoff
    g: np.ndarray | float  # groundwater recharge
    v: np.ndarray | float  # evaporation


class MissingParameter(ValueError):
    pass


def _need(params: dict, name: str, equation: str) -> float:
    value = params.get(name)
    if _is_blank(value):
        raise MissingParameter(f"equation {equation!r} needs parameter {name!r}")
    return float(value)


def _from_a(a) -> Shares:
    """Surfaces without recharge (roofs, sealed surfaces): g = 0, v = 1 − a."""
    return Shares(a, np.zeros_like(a) if isinstance(a, np.ndarray) else 0.0, 1.0 - a)


def _normalise(s: Shares) -> Shares:
    # Regressions can dip a hair below 0 outside the standard parameters; a negative share has no meaning,
    # so clip at 0 and rescale so that a + g + v stays 1. At the worked values nothing is clipped.
    a, g, v = (np.clip(np.asarray(x, dtype=float), 0.0, None) for x in (s.a, s.g, s.v))
    total = a + g + v
    a, g, v = a / total, g / total, v / total
    if a.ndim == 0:
        return Shares(float(a), float(g), float(v))
    return Shares(a, g, v)


def shares(
    equation: str,
    precipitation_mm,
    etp_mm,
    edition: str = DEFAULT_EDITION,
    **params,
) -> Shares:
    """a/g/v of one element type for P and ETp (scalars or arrays) and the element's parameters.

    Parameter names are the columns of ``seeds/surface_types.csv``: ``storage_height_mm`` (Sp),
    ``substrate_height_mm`` (h), ``kf_mm_per_h`` (kf), ``water_capacity`` (WK), ``joint_share_pct`` (FA of
    paving), ``facility_area_share_pct`` (FA of a swale; derived from kf when not given),
    ``inflow_area_ratio`` (pond: Σ A_i·a_i / Aw), ``fixed_*_share_*`` (for ``fixed``).
    """
    if edition not in EDITIONS:
        raise ValueError(f"unknown water-balance edition {edition!r}; known: {sorted(EDITIONS)}")
    coeffs = EDITIONS[edition]
    if equation not in coeffs:
        raise ValueError(f"edition {edition!r} has no equation {equation!r}")
    c = coeffs[equation]
    P = np.asarray(precipitation_mm, dtype=float)
    E = np.asarray(etp_mm, dtype=float)
    ln = np.log
    if equation in ("steep_roof", "flat_surface", "retention_roof"):
        sp = _need(params, "storage_height_mm", equation)
        a = c["c0"] + c["p"] * P + c["etp"] * E + c["ln_sp"] * ln(sp + 1.0)
        return _normalise(_from_a(a))
    if equation == "green_roof":
        h = _need(params, "substrate_height_mm", equation)
        kf = _need(params, "kf_mm_per_h", equation)
        wk = _need(params, "water_capacity", equation)
        a = (
            c["c0"]
            + c["ln_p"] * ln(P)
            + c["p"] * P
            + c["inv_etp"] / E
            + c["h"] * h
            + c["kf"] * kf
            + c["ln_wk"] * ln(wk)
            + c["ln_wk_h"] * ln(wk * h)
        )
        return _normalise(_from_a(a))
    if equation == "paving":
        fa = _need(params, "joint_share_pct", equation)
        kf = _need(params, "kf_mm_per_h", equation)
        sp = _need(params, "storage_height_mm", equation)
        wk = _need(params, "water_capacity", equation)
        a = (
            c["a_ln_p"] * ln(P)
            + c["a_fa"] * fa
            + c["a_sp"] * sp
            + c["a_wk"] * wk
            + c["a_kf_num"] / (c["a_kf_off"] + kf)
        )
        v = c["v_c0"] + c["v_ln_p"] * ln(P) + c["v_etp"] * E + c["v_fa"] * fa + c["v_ln_sp"] * ln(1.0 + sp)
        return _normalise(Shares(a, 1.0 - a - v, v))
    if equation == "porous_paving":
        sp = _need(params, "storage_height_mm", equation)
        h = _need(params, "substrate_height_mm", equation)
        kf = _need(params, "kf_mm_per_h", equation)
        a = c["a_p"] * P + c["a_ln_sp"] * ln(sp) + c["a_h"] * h + c["a_exp"] * np.exp(c["a_exp_num"] / kf)
        v = (
            c["v_c0"]
            + c["v_ln_p"] * ln(P)
            + c["v_ln_etp"] * ln(E)
            + c["v_sp"] * sp
            + c["v_ln_h"] * ln(h)
            + c["v_kf"] * kf
        )
        return _normalise(Shares(a, 1.0 - a - v, v))
    if equation in ("swale", "swale_trench"):
        kf = _need(params, "kf_mm_per_h", equation)
        fa_given = params.get("facility_area_share_pct")
        fa = float(fa_given) if not _is_blank(fa_given) else facility_area_share_pct(equation, kf, edition)
        v = c["v_etp"] * E + c["v_num"] / (P - c["v_p_off"]) * fa ** c["v_fa_exp"] + c["v_kf"] * kf
        if equation == "swale":
            g = (
                c["g_c0"]
                + c["g_ln_p"] * ln(P)
                + c["g_etp"] * E
                + c["g_fa"] * fa
                + c["g_kf"] * kf
                + c["g_ln_kf_fa"] * ln(kf / fa)
            )
            return _normalise(Shares(1.0 - g - v, g, v))
        a = (
            c["a_c0"]
            + c["a_ln_p"] * ln(P)
            + c["a_fa"] * fa
            + c["a_kf"] * kf
            + c["a_fa_kf"] * fa * kf
            + c["a_ln_kf_fa"] * ln(kf / fa)
        )
        return _normalise(Shares(a, 1.0 - a - v, v))
    if equation == "pond":
        # v = ETp·Aw / (P·(Aw + Σ A_i·a_i)) = ETp / (P·(1 + r)) with r = Σ A_i·a_i / Aw; at most 1.
        r = _need(params, "inflow_area_ratio", equation)
        v = np.minimum(E / (P * (1.0 + r)), 1.0)
        return _normalise(Shares(1.0 - v, np.zeros_like(v), v))
    if equation == "pipe":
        one = np.ones_like(P)
        return _normalise(Shares(one, 0.0 * one, 0.0 * one))
    if equation == "fixed":
        one = np.ones_like(P)
        return _normalise(
            Shares(
                _need(params, "fixed_runoff_share_a", equation) * one,
                _need(params, "fixed_recharge_share_g", equation) * one,
                _need(params, "fixed_evaporation_share_v", equation) * one,
            )
        )
    raise ValueError(f"no implementation for equation {equation!r}")  # pragma: no cover


def facility_area_share_pct(equation: str, kf_mm_per_h: float, edition: str = DEFAULT_EDITION) -> float:
    """Standard facility area FA (% of the connected area) of a swale or swale-trench for a given kf."""
    c = EDITIONS[edition][equation]
    return c["fa_c"] * kf_mm_per_h ** c["fa_e"]


_PARAM_COLUMNS = (
    "storage_height_mm",
    "substrate_height_mm",
    "kf_mm_per_h",
    "water_capacity",
    "joint_share_pct",
    "facility_area_share_pct",
    "inflow_area_ratio",
    "fixed_runoff_share_a",
    "fixed_recharge_share_g",
    "fixed_evaporation_share_v",
)


@cache
def element_types() -> tuple[dict, ...]:
    """The rows of seeds/surface_types.csv (element type, label, equation, standard parameters)."""
    with open(SEEDS_DIR / "surface_types.csv", newline="", encoding="utf-8") as fh:
        return tuple(csv.DictReader(fh))


def _is_blank(value) -> bool:
    return value is None or value == "" or (isinstance(value, float) and value != value)  # NaN from a frame


def element_params(row: dict) -> dict[str, float]:
    return {k: float(row[k]) for k in _PARAM_COLUMNS if not _is_blank(row.get(k))}


def element_shares(element_type: str, precipitation_mm, etp_mm, edition: str = DEFAULT_EDITION) -> Shares:
    """a/g/v of an element type from seeds/surface_types.csv with its standard parameters."""
    rows = {r["element_type"]: r for r in element_types()}
    if element_type not in rows:
        raise ValueError(f"unknown element type {element_type!r}")
    row = rows[element_type]
    return shares(row["equation"], precipitation_mm, etp_mm, edition, **element_params(row))


def is_in_valid_range(precipitation_mm, etp_mm):
    P = np.asarray(precipitation_mm, dtype=float)
    E = np.asarray(etp_mm, dtype=float)
    return (VALID_P_MM[0] <= P) & (VALID_P_MM[1] >= P) & (VALID_ETP_MM[0] <= E) & (VALID_ETP_MM[1] >= E)


def factor_table(municipality_keys, precipitation_mm, etp_mm: float, edition: str = DEFAULT_EDITION, elements=None):
    """The factor table: one row per municipality and element type (a pyarrow Table).

    ``elements`` are rows shaped like seeds/surface_types.csv (the dbt model passes the seed it reads, so
    parameters changed in the seed reach the table); default: the CSV itself.
    """
    import pyarrow as pa

    keys = list(municipality_keys)
    P = np.asarray(precipitation_mm, dtype=float)
    E = np.full(P.shape, float(etp_mm))
    valid = is_in_valid_range(P, E)
    cols: dict[str, list] = {
        k: []
        for k in (
            "municipality_key",
            "element_type",
            "equation",
            "equation_edition",
            "precipitation_mm",
            "etp_mm",
            "runoff_share_a",
            "recharge_share_g",
            "evaporation_share_v",
            "is_in_valid_range",
        )
    }
    for row in elements if elements is not None else element_types():
        s = shares(row["equation"], P, E, edition, **element_params(row))
        n = len(keys)
        cols["municipality_key"] += keys
        cols["element_type"] += [row["element_type"]] * n
        cols["equation"] += [row["equation"]] * n
        cols["equation_edition"] += [edition] * n
        cols["precipitation_mm"] += P.tolist()
        cols["etp_mm"] += E.tolist()
        cols["runoff_share_a"] += np.broadcast_to(s.a, P.shape).tolist()
        cols["recharge_share_g"] += np.broadcast_to(s.g, P.shape).tolist()
        cols["evaporation_share_v"] += np.broadcast_to(s.v, P.shape).tolist()
        cols["is_in_valid_range"] += valid.tolist()
    return pa.table(cols)
