"""Per-band PSFs: an elliptical double Moffat (core + wings), not an Airy pattern.

``PSF(r) = (1 - w) M(r; fwhm, beta_core) + w M(r; wing_scale fwhm, beta_wing)`` with
``M`` a Moffat profile ``(1 + (r / alpha)^2)^-beta`` of unit integral, on elliptical radii
(axis ratio ``1 - e`` along angle ``theta``). The core FWHM scales linearly with the band's
pivot wavelength from 0.030" at F090W to ~0.146" at F444W (diffraction-limited JWST
sizes); wings hold 15% of the light at 3x the width. The PSF is truncated at
``truncation`` (8) x FWHM (the image written *is* the model: renormalised to unit sum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: core FWHM (arcsec) at 0.898 um (F090W) and its slope with wavelength
FWHM_F090W = 0.030
FWHM_SLOPE = 1.016
#: the F090W pivot wavelength (A)
LAM_F090W = 8983.0


@dataclass(frozen=True)
class DoubleMoffat:
    """One band's PSF (sizes in arcsec, angle in radians)."""

    fwhm: float
    ellipticity: float
    angle: float
    beta_core: float = 3.5
    beta_wing: float = 2.2
    wing_fraction: float = 0.15
    wing_scale: float = 3.0
    truncation: float = 8.0

    @property
    def radius(self) -> float:
        """Truncation radius (arcsec)."""
        return self.truncation * self.fwhm

    def profile(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Surface density (unnormalised beyond the analytic one) at offsets (arcsec)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        q = 1.0 - self.ellipticity
        u = (c * dx + s * dy) / np.sqrt(q)
        v = (-s * dx + c * dy) * np.sqrt(q)
        r2 = u * u + v * v
        out = np.zeros(np.broadcast_shapes(np.shape(dx), np.shape(dy)))
        for frac, fwhm, beta in ((1.0 - self.wing_fraction, self.fwhm, self.beta_core),
                                 (self.wing_fraction, self.wing_scale * self.fwhm,
                                  self.beta_wing)):
            alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
            out += frac * (beta - 1.0) / (np.pi * alpha**2) * (1.0 + r2 / alpha**2) ** -beta
        return np.where(r2 <= self.radius**2, out, 0.0)

    def image(self, scale: float, half: int | None = None) -> np.ndarray:
        """The PSF sampled at the centres of pixels of side ``scale`` (arcsec), without a
        pixel response, on a square of side ``2 half + 1`` (default: covering the
        truncation radius), unit sum."""
        if half is None:
            half = int(np.ceil(self.radius / scale))
        t = (np.arange(2 * half + 1) - half) * scale
        img = self.profile(t[None, :], t[:, None])
        return img / img.sum()


def band_psfs(pivots_aa: dict[str, float], seed: int = 0) -> dict[str, DoubleMoffat]:
    """The PSF of each band (pivot wavelength in A): FWHM from the wavelength, a small
    ellipticity (0.02-0.06) and orientation fixed by ``seed``."""
    rng = np.random.default_rng([seed, 77])
    out = {}
    for band, lam in pivots_aa.items():
        out[band] = DoubleMoffat(fwhm=FWHM_F090W * (lam / LAM_F090W) ** FWHM_SLOPE,
                                 ellipticity=float(rng.uniform(0.02, 0.06)),
                                 angle=float(rng.uniform(0, np.pi)))
    return out
