"""The PSF in scene photometry: encircled energy, half-light radii and matching kernels.

Scene stores made by the simulator keep each band's PSF model (root attribute ``psf``, see
:func:`rail.deepdisc.sim.psf.psf_description`). From it this module draws the PSF with the
pixel response at the store's pixel scale and measures its growth curve (for aperture
corrections and the default aperture radius), and builds the kernels that degrade every
band to the broadest PSF (for colours in matched circular apertures).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from rail.deepdisc.errors import SceneStoreError
from rail.deepdisc.store.scenes import StoreInfo

#: radius (pixels) beyond which the growth curve is taken as flat
RMAX_PIX = 150.0


def has_psf_model(info: StoreInfo) -> bool:
    """Whether the store carries a PSF model."""
    return bool(info.attrs.get("psf"))


def _psf_json(info: StoreInfo, band: str) -> str:
    """The store's PSF description (canonical JSON) after checking it covers ``band``."""
    text = info.attrs.get("psf")
    if not text:
        raise SceneStoreError("the scene store has no PSF model (root attribute 'psf')")
    try:
        description = json.loads(text)
    except (TypeError, ValueError) as err:
        raise SceneStoreError(f"the scene store's PSF model is not JSON: {err}") from None
    if band not in description.get("wavelength_nm", {}):
        raise SceneStoreError(f"the scene store's PSF model has no band {band!r}")
    return json.dumps(description, sort_keys=True)


def _draw_psf(psf_json: str, band: str, size: int, pixel_scale: float) -> np.ndarray:
    """The band's PSF drawn (with the pixel response) on a size x size stamp, flux 1."""
    from rail.deepdisc.sim.psf import draw_method, make_psf

    description = json.loads(psf_json)
    psf = make_psf(description, band)
    return psf.withFlux(1.0).drawImage(nx=size, ny=size, scale=pixel_scale,
                                       method=draw_method(description, band)).array


@lru_cache(maxsize=64)
def _growth_curve(psf_json: str, band: str, pixel_scale: float, rmax_pix: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    from photutils.aperture import CircularAperture, aperture_photometry

    half = int(np.ceil(rmax_pix)) + 2
    img = _draw_psf(psf_json, band, 2 * half + 1, pixel_scale)
    radii = np.concatenate([np.linspace(0.25, 4.0, 31)[:-1],
                            np.geomspace(4.0, rmax_pix, 120)])
    apertures = [CircularAperture((half, half), r) for r in radii]
    table = aperture_photometry(img, apertures, method="exact")
    ee = np.array([float(table[f"aperture_sum_{i}"][0]) for i in range(radii.size)])
    return radii, np.maximum.accumulate(np.clip(ee, 1e-6, 1.0))


def _store_growth_curve(info: StoreInfo, band: str, rmax_pix: float = RMAX_PIX
                        ) -> tuple[np.ndarray, np.ndarray]:
    return _growth_curve(_psf_json(info, band), band, float(info.pixel_scale_arcsec),
                         float(rmax_pix))


def psf_encircled_energy(info: StoreInfo, band: str, radius_pix: np.ndarray | float,
                         rmax_pix: float = RMAX_PIX) -> np.ndarray:
    """Fraction of a point source's flux inside circles of the given radii (pixels).

    The PSF is the band's model stored with the scenes, drawn with the pixel response at the
    store's pixel scale. Radii beyond ``rmax_pix`` use the value at ``rmax_pix``.

    Raises
    ------
    SceneStoreError
        If the store has no PSF model for the band.
    """
    radii, ee = _store_growth_curve(info, band, rmax_pix)
    return np.interp(np.asarray(radius_pix, float), radii, ee)


def psf_half_light_radius(info: StoreInfo, band: str) -> float:
    """Radius (pixels) holding half of a point source's flux, from the PSF model."""
    radii, ee = _store_growth_curve(info, band)
    return float(np.interp(0.5, ee, radii))


def _matching_kernel(psf: np.ndarray, target: np.ndarray) -> np.ndarray:
    """photutils' kernel from ``psf`` to ``target``, scaled to map PSF onto PSF.

    ``make_kernel`` matches normalised shapes and returns a unit-sum kernel; the stamps hold
    different fractions of their PSFs' light, so the kernel is rescaled to map the band's
    PSF onto the target's (not its renormalised stamp): the matched PSF then equals the
    target within the stamp and colours of any source are kept.
    """
    from photutils.psf_matching import make_kernel

    return make_kernel(psf / psf.sum(), target / target.sum()) * (target.sum() / psf.sum())


def psf_matching_kernels(info: StoreInfo, bands: Sequence[str], radius_pix: float
                         ) -> tuple[str, list[np.ndarray | None], np.ndarray, np.ndarray]:
    """Kernels that degrade every band's PSF to the broadest one (photutils ``make_kernel``).

    Returns
    -------
    target, kernels, correction, noise_factor
        The broadest band (largest half-light radius); per band the kernel (None for the
        target), the point-source aperture correction 1 / EE(radius) of the matched PSF
        (measured on the matched PSF image itself; equal to the target's), and the factor
        by which the convolution changes the aperture-sum noise for locally white noise,
        sqrt(sum(g^2) / sum(w)) with ``w`` the aperture weights and ``g`` their correlation
        with the kernel.
    """
    from photutils.aperture import CircularAperture, aperture_photometry
    from scipy.signal import fftconvolve

    r50 = [psf_half_light_radius(info, b) for b in bands]
    target = bands[int(np.argmax(r50))]
    half = max(int(np.ceil(6.0 * radius_pix)), 40)
    size, scale = 2 * half + 1, float(info.pixel_scale_arcsec)
    target_psf = _draw_psf(_psf_json(info, target), target, size, scale)
    aperture = CircularAperture((half, half), radius_pix)
    weights = aperture.to_mask(method="exact").to_image((size, size))
    kernels: list[np.ndarray | None] = []
    corr, noise = np.ones(len(bands)), np.ones(len(bands))
    for i, band in enumerate(bands):
        matched = target_psf
        kern: Any = None
        if band != target:
            psf = _draw_psf(_psf_json(info, band), band, size, scale)
            kern = _matching_kernel(psf, target_psf)
            matched = fftconvolve(psf, kern, mode="same")
            g = fftconvolve(weights, kern[::-1, ::-1], mode="same")
            noise[i] = np.sqrt(np.sum(g**2) / np.sum(weights))
        kernels.append(kern)
        ee = float(aperture_photometry(matched, aperture, method="exact")["aperture_sum"][0])
        corr[i] = 1.0 / ee
    return target, kernels, corr, noise
