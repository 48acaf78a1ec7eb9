"""AB magnitudes and fluxes: the one conversion every part of the package uses.

Fluxes are in a unit whose AB zeropoint is given (``NJY_ZEROPOINT`` = 31.4 for nJy, the
unit of every scene store this package writes): ``m = zeropoint - 2.5 log10(f)``.
"""

from __future__ import annotations

import numpy as np

#: AB magnitude of a flux of 1 nJy (3631 Jy = 10^(0.4 * 31.4) nJy)
NJY_ZEROPOINT = 31.4


def mag_to_flux(mag: np.ndarray | float, zeropoint: float = NJY_ZEROPOINT) -> np.ndarray:
    """Flux (in the unit of ``zeropoint``; nJy by default) of AB magnitudes."""
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=float) - zeropoint))


def flux_to_mag(flux: np.ndarray | float, zeropoint: float = NJY_ZEROPOINT,
                fill: float = np.nan) -> np.ndarray:
    """AB magnitudes of fluxes; ``fill`` where the flux is not positive (or not finite)."""
    flux = np.asarray(flux, dtype=float)
    good = np.isfinite(flux) & (flux > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(good, zeropoint - 2.5 * np.log10(np.where(good, flux, 1.0)), fill)
