"""Dust attenuation of spectra: the Calzetti et al. (2000) law."""

from __future__ import annotations

import numpy as np


def calzetti_transmission(wave: np.ndarray, ebv: float) -> np.ndarray:
    """Calzetti et al. (2000) dust transmission for a colour excess E(B-V).

    Uses astro-sedpy's ``attenuation.calzetti`` (R_V = 4.05).

    Parameters
    ----------
    wave
        Rest-frame wavelengths in Angstrom.
    ebv
        Colour excess E(B-V) in magnitudes (<= 0: no dust).
    """
    if ebv <= 0:
        return np.ones_like(wave, dtype=float)
    from sedpy.attenuation import calzetti

    r_v = 4.05
    tau_v = ebv * r_v / 1.0857362047581294
    return np.exp(-calzetti(wave, tau_v=tau_v, R_v=r_v))
