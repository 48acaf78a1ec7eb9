"""Pixel noise of simulated scenes: white, or correlated as in drizzled mosaics.

A band's noise is white Gaussian noise convolved with a kernel ``K`` and divided by
``||K||_2``, so the per-pixel standard deviation stays the band's ``sigma`` while
neighbouring pixels are correlated (their correlation is the autocorrelation of ``K``).
Kernels are given as ``{kind: gaussian, fwhm_pixels: F}`` or ``{kind: image, file: PATH}``
(a FITS image, odd side); :func:`kernel_from_spec` builds them, normalised to unit L2 norm.

A survey's depth is the 5-sigma flux in a circular aperture; the noise in that aperture is
``sigma * sqrt(N_pix * c)`` with ``c`` the correlation factor (:func:`correlation_factor`):
1 for white noise, > 1 for positively correlated noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError

#: kinds of noise-correlation kernels
KERNEL_KINDS = ("gaussian", "image")
#: largest kernel side (pixels)
MAX_KERNEL_SIDE = 63


def gaussian_kernel(fwhm_pixels: float) -> np.ndarray:
    """A unit-L2-norm Gaussian kernel of the given FWHM (pixels), out to 3 sigma."""
    sigma = float(fwhm_pixels) / 2.3548200450309493
    half = max(1, int(np.ceil(3.0 * sigma)))
    r = np.arange(-half, half + 1)
    g = np.exp(-0.5 * (r[:, None] ** 2 + r[None, :] ** 2) / sigma**2)
    return g / np.sqrt(np.sum(g**2))


@lru_cache(maxsize=32)
def read_kernel_file(path: str) -> np.ndarray:
    """A kernel from a FITS image (first HDU with data), checked and unit-L2-normalised.

    Raises
    ------
    InputError
        If the file cannot be read or is not a finite, 2-D, odd-sided image with power.
    """
    data = read_fits_image(path, "noise-correlation kernel")
    if data.shape[0] != data.shape[1] or data.shape[0] % 2 == 0 or \
            data.shape[0] > MAX_KERNEL_SIDE:
        raise InputError(f"noise-correlation kernel {path} is {data.shape[1]} x "
                         f"{data.shape[0]} pixels; it must be square with an odd side "
                         f"<= {MAX_KERNEL_SIDE}")
    norm = np.sqrt(np.sum(data**2))
    if not norm > 0:
        raise InputError(f"noise-correlation kernel {path} is all zeros")
    return data / norm


def read_fits_image(path: str, what: str) -> np.ndarray:
    """The first 2-D image of a FITS file, as float64, checked to be finite.

    Raises
    ------
    InputError
        Naming the file, if it cannot be read or holds no finite 2-D image.
    """
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            hdus = [h for h in hdul if h.data is not None]
            if not hdus:
                raise InputError(f"{what} {path} holds no image")
            data = np.asarray(hdus[0].data, dtype=float)
    except OSError as err:
        raise InputError(f"cannot read {what} {path}: {err}") from err
    if data.ndim != 2:
        raise InputError(f"{what} {path} is {data.ndim}-D; it must be a 2-D image")
    if not np.all(np.isfinite(data)):
        raise InputError(f"{what} {path} holds non-finite pixels")
    return data


def kernel_from_spec(spec: Mapping[str, Any] | None) -> np.ndarray | None:
    """The unit-L2-norm kernel of a noise-correlation spec (None: white noise)."""
    if not spec:
        return None
    if spec["kind"] == "gaussian":
        return gaussian_kernel(float(spec["fwhm_pixels"]))
    return read_kernel_file(str(spec["file"]))


def aperture_weights(radius_pix: float) -> np.ndarray:
    """Exact-overlap weights of a circular aperture of radius ``radius_pix`` (pixels)."""
    from photutils.aperture import CircularAperture

    half = int(np.ceil(radius_pix)) + 1
    mask = CircularAperture((half, half), radius_pix).to_mask(method="exact")
    return mask.to_image((2 * half + 1, 2 * half + 1))


def correlation_factor(kernel: np.ndarray | None, radius_pix: float) -> float:
    """Aperture variance with correlated noise over that with white noise of equal sigma.

    With ``n = sigma (w * K)`` (``w`` white, ``||K|| = 1``) the variance of the aperture
    sum ``sum(m n)`` is ``sigma^2 ||m * K||^2``, against ``sigma^2 ||m||^2`` for white
    noise (``m``: the aperture's weights).
    """
    if kernel is None:
        return 1.0
    from scipy.signal import fftconvolve

    m = aperture_weights(radius_pix)
    return float(np.sum(fftconvolve(m, kernel) ** 2) / np.sum(m**2))


def draw_noise(rng: np.random.Generator, shape: tuple[int, int, int], sigma: np.ndarray,
               kernels: Sequence[np.ndarray | None]) -> np.ndarray:
    """Noise of a (C, H, W) scene: per-band sigma, correlated where a band has a kernel.

    The white part is drawn first, exactly as without kernels, so scenes without
    correlated noise do not depend on whether kernels exist.
    """
    from scipy.signal import fftconvolve

    noise = rng.standard_normal(shape) * np.asarray(sigma)[:, None, None]
    for b, kernel in enumerate(kernels):
        if kernel is None:
            continue
        k = kernel.shape[0]
        white = rng.standard_normal((shape[1] + k - 1, shape[2] + k - 1))
        noise[b] = sigma[b] * fftconvolve(white, kernel, mode="valid")
    return noise

