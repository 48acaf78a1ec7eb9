"""Mosaic noise: drizzle-like correlated Gaussian noise under a varying exposure map.

Correlation: each band's noise is white noise smoothed by a separable kernel ``g x g``,
where ``g`` is the mean overlap of a drizzle drop (a box of ``pixfrac x native pixel``
output pixels, at a uniformly random sub-pixel position) with the output pixels: the box
convolved with the pixel twice, sampled at integer lags. NIRCam's short-wavelength pixels
(0.031") drizzled onto 0.04" pixels correlate little, the long-wavelength ones (0.063")
more. The kernel has unit L2 norm, so the per-pixel rms stays the band's sigma.

Depth: ``sigma_b(x, y) = sigma0_b v(x, y)``, with ``v = t^-1/2`` for an exposure map ``t``
(a gradient across the mosaic and a strip of double exposure through its middle, as where
two pointings overlap), normalised to median 1. ``sigma0_b`` gives the band's 5-sigma depth
in a 0.2"-radius aperture at the median exposure, counting the correlation:
``f5 = 5 sigma0 sqrt(pi r^2 c)`` with ``c = ||m * K||^2 / ||m||^2`` (``m``: the aperture's
exact-overlap weights, ``K`` the kernel).
"""

from __future__ import annotations

import numpy as np

#: native NIRCam pixels (arcsec): short- and long-wavelength channels
NATIVE_SW, NATIVE_LW = 0.031, 0.063
#: drizzle pixfrac
PIXFRAC = 0.8


def drizzle_kernel_1d(width_px: float, half: int = 2, samples: int = 2001) -> np.ndarray:
    """``g``: box of ``width_px`` convolved with the unit pixel twice, at lags
    ``-half..half``, unit L2 norm."""
    t = np.linspace(-half - 1.5, half + 1.5, samples)
    dt = t[1] - t[0]
    box = (np.abs(t) <= width_px / 2).astype(float)
    pix = (np.abs(t) <= 0.5).astype(float)
    prof = np.convolve(np.convolve(box, pix, mode="same") * dt, pix, mode="same") * dt
    g = np.interp(np.arange(-half, half + 1), t, prof)
    return g / np.sqrt(np.sum(g**2))


def band_kernel(band_native: float, scale: float) -> np.ndarray:
    """The 1-D kernel of a band with native pixels ``band_native`` (arcsec)."""
    return drizzle_kernel_1d(PIXFRAC * band_native / scale)


def correlation_factor(g: np.ndarray, radius_px: float) -> float:
    """Aperture variance with the correlated noise over that with white noise."""
    from photutils.aperture import CircularAperture
    from scipy.signal import fftconvolve

    half = int(np.ceil(radius_px)) + 1
    m = CircularAperture((half, half), radius_px).to_mask(method="exact").to_image(
        (2 * half + 1, 2 * half + 1))
    k = np.outer(g, g)
    return float(np.sum(fftconvolve(m, k) ** 2) / np.sum(m**2))


def exposure_variation(ny: int, nx: int) -> np.ndarray:
    """``v(x, y)``: relative noise (median 1) of the exposure map (float32)."""
    x = np.arange(nx, dtype=np.float32) / nx
    y = np.arange(ny, dtype=np.float32) / ny
    strip = 1.0 / (1.0 + np.exp(-(0.08 - np.abs(y - 0.5)) * ny / 20.0))
    t = 1.0 + 0.3 * x[None, :] + 0.9 * strip[:, None]
    v = t**-0.5
    return (v / np.median(v)).astype(np.float32)


def correlated_noise(rng: np.random.Generator, shape: tuple[int, int], g: np.ndarray
                     ) -> np.ndarray:
    """Unit-rms correlated noise (float32)."""
    from scipy.ndimage import correlate1d

    white = rng.standard_normal(shape, dtype=np.float32)
    out = correlate1d(white, g.astype(np.float32), axis=0, mode="wrap")
    return correlate1d(out, g.astype(np.float32), axis=1, mode="wrap")
