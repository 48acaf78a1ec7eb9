"""Intergalactic-medium attenuation (Madau 1995, ApJ 441, 18).

The mean transmission of the Lyman-series forest (Ly-alpha to Ly-delta) and of
Lyman-continuum absorption by intervening systems, as a function of observed
wavelength and source redshift. This is the same model BPZ applies to its
templates, so the simulator and BPZ agree on the IGM.
"""

from __future__ import annotations

import numpy as np

#: Lyman series wavelengths (Angstrom) and Madau (1995) line coefficients
_LYMAN_LINES = np.array([1215.67, 1025.72, 972.54, 949.74])
_LYMAN_COEFFS = np.array([3.6e-3, 1.7e-3, 1.2e-3, 9.3e-4])
_LYMAN_LIMIT = 911.75


def madau_transmission(wave_obs: np.ndarray, z: np.ndarray | float) -> np.ndarray:
    """Mean IGM transmission ``exp(-tau)`` at observed wavelengths.

    Parameters
    ----------
    wave_obs
        Observed-frame wavelengths in Angstrom; any shape broadcastable with ``z``.
    z
        Source redshift(s).

    Returns
    -------
    numpy.ndarray
        Transmission in [0, 1], broadcast shape of the inputs.
    """
    wave_obs = np.asarray(wave_obs, dtype=float)
    zp1 = 1.0 + np.asarray(z, dtype=float)
    wave_obs, zp1 = np.broadcast_arrays(wave_obs, zp1)
    trans = np.ones(wave_obs.shape)
    # only wavelengths blueward of the source's Ly-alpha are attenuated
    hit = wave_obs < _LYMAN_LINES[0] * zp1
    if not hit.any():
        return trans
    w, zp = wave_obs[hit], zp1[hit]
    lnw = np.log(w)
    tau = np.zeros(w.shape)
    for lam, coeff in zip(_LYMAN_LINES, _LYMAN_COEFFS, strict=True):
        absorbed = (w < lam * zp) & (w >= lam)  # absorbers between z = 0 and the source
        tau[absorbed] += coeff * np.exp(3.46 * (lnw[absorbed] - np.log(lam)))
    # Lyman continuum from Lyman-limit systems (Madau 1995, footnote 3 fit)
    xc = w / _LYMAN_LIMIT
    lc = (xc < zp) & (xc > 1.0)
    if lc.any():
        x, zl = xc[lc], zp[lc]
        tau_lc = (
            0.25 * x**3 * (zl**0.46 - x**0.46)
            + 9.4 * x**1.5 * (zl**0.18 - x**0.18)
            - 0.7 * x**3 * (x**-1.32 - zl**-1.32)
            - 0.023 * (zl**1.68 - x**1.68)
        )
        tau[lc] += np.maximum(tau_lc, 0.0)
    trans[hit] = np.exp(-tau)
    return trans
