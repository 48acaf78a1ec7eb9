"""Mean intergalactic transmission of Inoue et al. (2014, MNRAS 442, 1805).

The analytic model of their Section 4: Lyman-series absorption by the Lyman-alpha forest
(LAF) and by damped Lyman-alpha systems (DLA), 39 lines each (eqs. 21-22), and Lyman-continuum
absorption by both (eqs. 25-29). The main simulator uses Madau (1995); this renderer uses
Inoue (2014), whose forest is weaker at z < 4 and stronger at z > 5.

The per-line coefficients are the paper's Table 2, read from the copy that eazy-py ships
(``eazy/data/LAFcoeff.txt`` and ``DLAcoeff.txt``: index, wavelength in Angstrom, then the
coefficients); the formulas are written here.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

#: Lyman limit (Angstrom) of the model
LYMAN_LIMIT = 911.8


@lru_cache(maxsize=1)
def _coefficients() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Line wavelengths, LAF (3 columns) and DLA (2 columns) coefficients of Table 2."""
    spec = importlib.util.find_spec("eazy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the Inoue (2014) coefficients come from eazy-py's data files; "
                           "install eazy-py (the test extra)")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    laf = np.loadtxt(data / "LAFcoeff.txt")
    dla = np.loadtxt(data / "DLAcoeff.txt")
    if laf.shape != (39, 5) or dla.shape != (39, 4) or not np.allclose(laf[:, 1], dla[:, 1]):
        raise RuntimeError(f"unexpected Inoue (2014) coefficient tables in {data}")
    return laf[:, 1], laf[:, 2:], dla[:, 2:]


def _tau_lyman_series(lam: np.ndarray, zp1: np.ndarray) -> np.ndarray:
    """Optical depth of the Lyman series (LAF + DLA), eqs. 21-22."""
    wave, a_laf, a_dla = _coefficients()
    tau = np.zeros(np.broadcast_shapes(lam.shape, zp1.shape))
    for j, lj in enumerate(wave):
        x = lam / lj
        on = (x > 1.0) & (x < zp1)
        if not np.any(on):
            continue
        laf = np.where(x < 2.2, a_laf[j, 0] * x**1.2,
                       np.where(x < 5.7, a_laf[j, 1] * x**3.7, a_laf[j, 2] * x**5.5))
        dla = np.where(x < 3.0, a_dla[j, 0] * x**2, a_dla[j, 1] * x**3)
        tau += np.where(on, laf + dla, 0.0)
    return tau


def _tau_laf_continuum(x: np.ndarray, zp1: np.ndarray) -> np.ndarray:
    """Lyman-continuum optical depth of the LAF (eqs. 25-26), ``x = lam / LYMAN_LIMIT``."""
    low = 0.3248 * (x**1.2 - zp1**-0.9 * x**2.1)
    mid = np.where(x < 2.2,
                   2.545e-2 * zp1**1.6 * x**2.1 + 0.3248 * x**1.2 - 0.2496 * x**2.1,
                   2.545e-2 * (zp1**1.6 * x**2.1 - x**3.7))
    high = np.where(x < 2.2,
                    5.221e-4 * zp1**3.4 * x**2.1 + 0.3248 * x**1.2 - 3.140e-2 * x**2.1,
                    np.where(x < 5.7,
                             5.221e-4 * zp1**3.4 * x**2.1 + 0.2182 * x**2.1
                             - 2.545e-2 * x**3.7,
                             5.221e-4 * (zp1**3.4 * x**2.1 - x**5.5)))
    return np.where(zp1 < 2.2, low, np.where(zp1 < 5.7, mid, high))


def _tau_dla_continuum(x: np.ndarray, zp1: np.ndarray) -> np.ndarray:
    """Lyman-continuum optical depth of the DLAs (eqs. 28-29)."""
    low = 0.2113 * zp1**2 - 0.07661 * zp1**2.3 * x**-0.3 - 0.1347 * x**2
    high = np.where(x < 3.0,
                    0.6340 + 0.04696 * zp1**3 - 0.01779 * zp1**3.3 * x**-0.3
                    - 0.1347 * x**2 - 0.2905 * x**-0.3,
                    0.04696 * zp1**3 - 0.01779 * zp1**3.3 * x**-0.3 - 0.02916 * x**3)
    return np.where(zp1 < 3.0, low, high)


def inoue_transmission(lam_obs: np.ndarray, z: np.ndarray | float) -> np.ndarray:
    """Mean IGM transmission ``exp(-tau)`` at observed wavelengths (Angstrom).

    ``lam_obs`` and ``z`` broadcast together; wavelengths redward of the source's
    Lyman-alpha are untouched (1).
    """
    lam = np.asarray(lam_obs, float)
    zp1 = 1.0 + np.asarray(z, float)
    lam, zp1 = np.broadcast_arrays(lam, zp1)
    out = np.ones(lam.shape)
    hit = lam < 1215.67 * zp1
    if not np.any(hit):
        return out
    lh, zh = lam[hit], zp1[hit]
    tau = _tau_lyman_series(lh, zh)
    x = lh / LYMAN_LIMIT
    cont = x < zh
    with np.errstate(over="ignore", invalid="ignore"):
        tau_c = _tau_laf_continuum(x, zh) + _tau_dla_continuum(x, zh)
    tau = tau + np.where(cont, np.clip(np.nan_to_num(tau_c, nan=0.0), 0.0, None), 0.0)
    out[hit] = np.exp(-tau)
    return out
