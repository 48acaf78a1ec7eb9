"""Multi-band photometry of scene-store objects for template fitting (photutils).

Two measurements, both run on every band with the same apertures so colours are matched:

``aperture``
    Circular apertures of radius ``aperture_radius`` (arcsec) at the catalog positions
    (forced) or at detection positions. The local background is the sigma-clipped median in
    an annulus with all segmentation footprints masked; its uncertainty is propagated.
    Fluxes are corrected to total for a point source with the PSF's encircled energy at the
    aperture radius (the PSF model stored with the scenes), so they are *point-source total*
    fluxes: for resolved galaxies they stay below the total flux, but colours are matched.
``kron``
    Elliptical Kron apertures (photutils ``SourceCatalog``; Kron 1980 first-moment radius
    times ``kron_params[0]``) defined once on a chi-mean detection image and applied to every
    band; pixels of neighbouring footprints are replaced by their mirror image across the
    source centre (SourceExtractor's ``MASK_TYPE=CORRECT``); local background in a
    rectangular annulus with footprints masked. Each flux is then corrected for the PSF light
    outside the aperture with the encircled energy at the aperture's circularised radius
    sqrt(a b). Footprints come from ``/segmap`` (forced) or, for detections, from the
    detection boxes (pixels of the box whose detection-image S/N exceeds 1, the box with the
    higher score winning overlaps). Objects without a footprint fall back to ``aperture``.

Errors come from ``/ivar`` (1/sqrt(ivar); pixels with ivar = 0 are masked), or from the
store's ``noise_sigma`` attribute, or from the sigma-clipped scatter of background pixels.

Magnitudes follow RAIL's conventions: AB magnitudes from the store's zero point;
an object with S/N < ``nondetect_snr`` (or a non-positive flux) in a band is a non-detection,
with ``mag = nondetect_val`` (99) and ``mag_err`` its 1-sigma limiting magnitude; a band with
no data for an object gets ``mag = mag_err = nonobserved_val`` (-99) and NaN fluxes.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from rail.deepdisc.store.scenes import SceneChunk, SceneStore, StoreInfo

log = logging.getLogger(__name__)

METHODS = ("aperture", "kron")

#: flag bits (OR-ed over bands into the ``flags`` column)
FLAG_EDGE = 1  #: the aperture extends beyond the scene
FLAG_MASKED = 2  #: pixels without data (ivar = 0) inside the aperture
FLAG_NO_FOOTPRINT = 4  #: ``kron`` asked but the object has no footprint: circular aperture used
FLAG_NO_PSF = 8  #: no PSF model, fluxes are not aperture-corrected
FLAG_NO_BACKGROUND = 16  #: too few background pixels: no local background subtracted

#: columns a detections table must have
DETECTION_COLUMNS = ("scene", "x", "y", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")

_MAG_ERR = 2.5 / np.log(10.0)


@dataclass(frozen=True)
class PhotometryConfig:
    """How fluxes are measured.

    Attributes
    ----------
    method
        ``aperture`` or ``kron`` (see the module docstring).
    aperture_radius
        Circular aperture radius in arcsec; None: 3 x the largest PSF half-light radius of
        the bands (about 1.5 FWHM; at least 2 pixels), which needs the store's PSF model.
    background_annulus
        Inner and outer radius (arcsec) of the local-background annulus; None: 2 and 4 x
        the aperture radius. For ``kron`` the annulus width sets photutils' rectangular
        ``local_bkg_width``.
    local_background
        Subtract a local background. Off by default: scene stores hold background-subtracted
        images, and on simulated JADES scenes the local estimate (contaminated by the faint
        wings of galaxies beyond their footprints) raises the oracle BPZ sigma_IQR of bright
        objects from 0.028 to 0.039. Turn it on for mosaics with residual backgrounds.
    kron_params
        photutils' Kron parameters: scale, minimum unscaled Kron radius (pixels), minimum
        circular radius (pixels).
    aperture_correction
        Correct fluxes for the PSF light outside the aperture (needs the PSF model).
    psf_match
        ``aperture``: convolve every band to the broadest PSF first (needs the PSF model).
    nondetect_snr
        S/N below which a band is a non-detection.
    nondetect_val, nonobserved_val
        Magnitudes of non-detections and of bands without data (RAIL's conventions).
    bands
        Bands to measure (default: all of the store's).
    """

    method: str = "kron"
    aperture_radius: float | None = None
    background_annulus: tuple[float, float] | None = None
    local_background: bool = False
    kron_params: tuple[float, ...] = (2.5, 1.4, 0.0)
    aperture_correction: bool = True
    psf_match: bool = True
    nondetect_snr: float = 1.0
    nondetect_val: float = 99.0
    nonobserved_val: float = -99.0
    bands: tuple[str, ...] | None = None

    def validate(self) -> None:
        """Raise ValueError naming the first bad option."""
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.aperture_radius is not None and not self.aperture_radius > 0:
            raise ValueError(f"aperture_radius must be > 0 arcsec, got {self.aperture_radius}")
        if self.background_annulus is not None:
            ann = tuple(self.background_annulus)
            if len(ann) != 2 or not 0 < ann[0] < ann[1]:
                raise ValueError("background_annulus must be (inner, outer) arcsec with "
                                 f"0 < inner < outer, got {self.background_annulus}")
        kp = tuple(self.kron_params)
        if len(kp) not in (2, 3) or not kp[0] > 0 or not kp[1] > 0 or (len(kp) == 3
                                                                      and kp[2] < 0):
            raise ValueError("kron_params must be (scale > 0, min Kron radius > 0[, min "
                             f"circular radius >= 0]), got {self.kron_params}")
        if not self.nondetect_snr >= 0:
            raise ValueError(f"nondetect_snr must be >= 0, got {self.nondetect_snr}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (for provenance)."""
        return asdict(self)


# --- PSF encircled energy --------------------------------------------------------------

@lru_cache(maxsize=64)
def _growth_curve(psf_json: str, band: str, pixel_scale: float, rmax_pix: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    from photutils.aperture import CircularAperture, aperture_photometry

    from rail.deepdisc.sim.psf import make_psf

    half = int(np.ceil(rmax_pix)) + 2
    psf = make_psf(json.loads(psf_json), band)
    img = psf.withFlux(1.0).drawImage(nx=2 * half + 1, ny=2 * half + 1, scale=pixel_scale)
    radii = np.concatenate([np.linspace(0.25, 4.0, 31)[:-1],
                            np.geomspace(4.0, rmax_pix, 120)])
    apertures = [CircularAperture((half, half), r) for r in radii]
    table = aperture_photometry(img.array, apertures, method="exact")
    ee = np.array([float(table[f"aperture_sum_{i}"][0]) for i in range(radii.size)])
    return radii, np.maximum.accumulate(np.clip(ee, 1e-6, 1.0))


def psf_encircled_energy(info: StoreInfo, band: str, radius_pix: np.ndarray | float,
                         rmax_pix: float = 150.0) -> np.ndarray:
    """Fraction of a point source's flux inside circles of the given radii (pixels).

    The PSF is the band's model stored with the scenes (attribute ``psf``, see
    :func:`rail.deepdisc.sim.psf.psf_description`), drawn with the pixel response at the
    store's pixel scale. Radii beyond ``rmax_pix`` use the value at ``rmax_pix``.

    Raises
    ------
    ValueError
        If the store has no PSF model.
    """
    psf_json = info.attrs.get("psf")
    if not psf_json:
        raise ValueError("the scene store has no PSF model (root attribute 'psf')")
    psf_json = json.dumps(json.loads(psf_json), sort_keys=True)
    radii, ee = _growth_curve(psf_json, band, float(info.pixel_scale_arcsec), float(rmax_pix))
    return np.interp(np.asarray(radius_pix, float), radii, ee)


def psf_half_light_radius(info: StoreInfo, band: str) -> float:
    """Radius (pixels) holding half of a point source's flux, from the PSF model."""
    psf_json = info.attrs.get("psf")
    if not psf_json:
        raise ValueError("the scene store has no PSF model (root attribute 'psf')")
    psf_json = json.dumps(json.loads(psf_json), sort_keys=True)
    radii, ee = _growth_curve(psf_json, band, float(info.pixel_scale_arcsec), 150.0)
    return float(np.interp(0.5, ee, radii))


# --- magnitudes ------------------------------------------------------------------------

def fluxes_to_mags(flux: np.ndarray, flux_err: np.ndarray, zeropoint: float,
                   nondetect_snr: float = 1.0, nondetect_val: float = 99.0,
                   nonobserved_val: float = -99.0) -> tuple[np.ndarray, np.ndarray]:
    """AB magnitudes and errors with RAIL's conventions for non-detections.

    Detections (finite flux > ``nondetect_snr`` x error and > 0) get
    ``zeropoint - 2.5 log10(flux)`` and ``1.0857 err / flux``; non-detections get
    ``nondetect_val`` with the 1-sigma limiting magnitude ``zeropoint - 2.5 log10(err)`` as
    error; bands without data (non-finite flux or error, or error <= 0) get
    ``nonobserved_val`` for both.
    """
    flux = np.asarray(flux, float)
    err = np.asarray(flux_err, float)
    observed = np.isfinite(flux) & np.isfinite(err) & (err > 0)
    detected = observed & (flux > 0) & (flux > nondetect_snr * err)
    limit = observed & ~detected
    mag = np.full(flux.shape, float(nonobserved_val))
    mag_err = np.full(flux.shape, float(nonobserved_val))
    with np.errstate(divide="ignore", invalid="ignore"):
        mag[detected] = zeropoint - 2.5 * np.log10(flux[detected])
        mag_err[detected] = _MAG_ERR * err[detected] / flux[detected]
        mag[limit] = nondetect_val
        mag_err[limit] = zeropoint - 2.5 * np.log10(err[limit])
    return mag, mag_err


# --- set-up shared by all chunks -------------------------------------------------------

def _psf_image(info: StoreInfo, band: str, size: int) -> np.ndarray:
    """The band's PSF drawn (with the pixel response) on a size x size stamp, flux 1."""
    from rail.deepdisc.sim.psf import make_psf

    psf = make_psf(json.loads(info.attrs["psf"]), band)
    return psf.withFlux(1.0).drawImage(nx=size, ny=size,
                                       scale=float(info.pixel_scale_arcsec)).array


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
    from photutils.psf_matching import make_kernel
    from scipy.signal import fftconvolve

    r50 = [psf_half_light_radius(info, b) for b in bands]
    target = bands[int(np.argmax(r50))]
    half = max(int(np.ceil(6.0 * radius_pix)), 40)
    size = 2 * half + 1
    tpsf = _psf_image(info, target, size)
    aperture = CircularAperture((half, half), radius_pix)
    weights = aperture.to_mask(method="exact").to_image((size, size))
    kernels: list[np.ndarray | None] = []
    corr, noise = np.ones(len(bands)), np.ones(len(bands))
    for i, band in enumerate(bands):
        psf = tpsf if band == target else _psf_image(info, band, size)
        if band == target:
            kernels.append(None)
            matched = psf
        else:
            # make_kernel matches normalised shapes and returns a unit-sum kernel; the
            # stamps hold different fractions of their PSFs' light, so rescale to map the
            # band's PSF onto the target's (not its renormalised stamp): the matched PSF
            # then equals the target within the stamp and colours of any source are kept.
            kern = make_kernel(psf / psf.sum(), tpsf / tpsf.sum()) * (tpsf.sum() / psf.sum())
            kernels.append(kern)
            matched = fftconvolve(psf, kern, mode="same")
            g = fftconvolve(weights, kern[::-1, ::-1], mode="same")
            noise[i] = np.sqrt(np.sum(g**2) / np.sum(weights))
        ee = float(aperture_photometry(matched, aperture, method="exact")["aperture_sum"][0])
        corr[i] = 1.0 / ee
    return target, kernels, corr, noise


@dataclass
class _Setup:
    cfg: PhotometryConfig
    info: StoreInfo
    bands: list[str]
    band_index: np.ndarray
    radius_pix: float
    annulus_pix: tuple[float, float]
    has_psf: bool
    noise_sigma: np.ndarray | None
    aperture_corr: np.ndarray  # circular apertures, per band (1 without correction)
    noise_factor: np.ndarray  # circular apertures on PSF-matched images, per band
    kernels: list[np.ndarray | None]
    notes: dict[str, Any] = field(default_factory=dict)

    def ee(self, b: int, radius_pix: np.ndarray) -> np.ndarray:
        if not (self.has_psf and self.cfg.aperture_correction):
            return np.ones_like(np.asarray(radius_pix, float))
        return psf_encircled_energy(self.info, self.bands[b], radius_pix)


def prepare(store: SceneStore, cfg: PhotometryConfig) -> _Setup:
    """Check the configuration against a store and precompute what all chunks share.

    Raises
    ------
    ValueError
        For bands the store lacks or an automatic radius without a PSF model.
    """
    cfg.validate()
    info = store.info
    bands = list(cfg.bands) if cfg.bands else list(info.bands)
    missing = [b for b in bands if b not in info.bands]
    if missing:
        raise ValueError(f"bands {missing} are not in the scene store {store.path} "
                         f"(it has {list(info.bands)})")
    has_psf = bool(info.attrs.get("psf"))
    scale = float(info.pixel_scale_arcsec)
    if cfg.aperture_radius is None:
        if not has_psf:
            raise ValueError(f"scene store {store.path} has no PSF model: give "
                             "aperture_radius (arcsec) explicitly")
        r50 = max(psf_half_light_radius(info, b) for b in bands) * scale
        radius = max(3.0 * r50, 2.0 * scale)
    else:
        radius = float(cfg.aperture_radius)
    ann = cfg.background_annulus or (2.0 * radius, 4.0 * radius)
    nb = len(bands)
    setup = _Setup(cfg=cfg, info=info, bands=bands,
                   band_index=np.array([info.bands.index(b) for b in bands]),
                   radius_pix=radius / scale, annulus_pix=(ann[0] / scale, ann[1] / scale),
                   has_psf=has_psf, noise_sigma=None, aperture_corr=np.ones(nb),
                   noise_factor=np.ones(nb), kernels=[None] * nb,
                   notes={"method": cfg.method, "aperture_radius_arcsec": radius,
                          "background_annulus_arcsec": list(ann)})
    if "noise_sigma" in info.attrs:
        sig = np.asarray(info.attrs["noise_sigma"], float)
        if sig.shape == (len(info.bands),):
            setup.noise_sigma = sig[setup.band_index]
    if not has_psf:
        log.warning("scene store %s has no PSF model: no PSF matching or aperture "
                    "correction", store.path)
        setup.notes["psf"] = "none: the store has no PSF model"
        return setup
    if cfg.method == "aperture" and cfg.psf_match and nb > 1:
        target, kernels, corr, noise = psf_matching_kernels(info, bands, setup.radius_pix)
        setup.kernels, setup.noise_factor = kernels, noise
        setup.notes["psf_matched_to"] = target
        setup.notes["noise_factor"] = dict(zip(bands, noise.round(4).tolist(), strict=True))
    else:
        corr = 1.0 / np.array([float(setup.ee(b, setup.radius_pix)) for b in range(nb)])
    if cfg.aperture_correction:
        setup.aperture_corr = corr
        setup.notes["point_source_aperture_correction"] = dict(
            zip(bands, corr.round(5).tolist(), strict=True))
    return setup


# --- per-scene measurement -------------------------------------------------------------

def _errors(setup: _Setup, image: np.ndarray, ivar: np.ndarray | None,
            segmap: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel 1-sigma errors and no-data masks, (C, H, W) each."""
    if ivar is not None:
        mask = ~(ivar > 0) | ~np.isfinite(image)
        with np.errstate(divide="ignore"):
            err = np.where(mask, 0.0, 1.0 / np.sqrt(np.where(mask, 1.0, ivar)))
        return err, mask
    mask = ~np.isfinite(image)
    if setup.noise_sigma is not None:
        sig = setup.noise_sigma
    else:
        from astropy.stats import sigma_clipped_stats

        bkg = np.ones(image.shape[1:], bool) if segmap is None else segmap == 0
        sig = np.array([sigma_clipped_stats(image[b][bkg & ~mask[b]], sigma=3.0)[2]
                        for b in range(image.shape[0])])
    err = np.broadcast_to(sig[:, None, None], image.shape).astype(float)
    return np.where(mask, 0.0, err), mask


def _psf_match(setup: _Setup, image: np.ndarray, mask: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Convolve each band with its matching kernel; pixels near no-data become masked."""
    from scipy.signal import fftconvolve

    if all(k is None for k in setup.kernels):
        return image, mask
    image, mask = image.copy(), mask.copy()
    for b, kern in enumerate(setup.kernels):
        if kern is None:
            continue
        image[b] = fftconvolve(np.where(mask[b], 0.0, image[b]), kern, mode="same")
        if mask[b].any():
            mask[b] = fftconvolve(mask[b].astype(float), np.abs(kern), mode="same") > 1e-3
    return image, mask


def _edge_flags(x: np.ndarray, y: np.ndarray, r: np.ndarray, shape: tuple[int, int]
                ) -> np.ndarray:
    h, w = shape
    out = (x - r < -0.5) | (y - r < -0.5) | (x + r > w - 0.5) | (y + r > h - 0.5)
    return np.where(out, FLAG_EDGE, 0)


@lru_cache(maxsize=16)
def _annulus_offsets(r_in: float, r_out: float) -> np.ndarray:
    """Integer pixel offsets (dy, dx) with r_in <= distance <= r_out."""
    n = int(np.ceil(r_out))
    dy, dx = np.mgrid[-n:n + 1, -n:n + 1]
    d = np.hypot(dx, dy)
    keep = (d >= r_in) & (d <= r_out)
    return np.column_stack([dy[keep], dx[keep]])


def annulus_background(image: np.ndarray, exclude: np.ndarray, x: np.ndarray, y: np.ndarray,
                       r_in: float, r_out: float, min_pixels: int = 10
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sigma-clipped median background in annuli, all objects and bands at once.

    Parameters
    ----------
    image, exclude
        (C, H, W) pixels and pixels to leave out (no data, source footprints).
    x, y
        Annulus centres (pixels); the annulus is taken around the nearest pixel.
    r_in, r_out
        Annulus radii (pixels).

    Returns
    -------
    background, error, good
        (n, C) per-pixel background, uncertainty of that background (sigma / sqrt(N) x
        1.2533 for a median) and whether at least ``min_pixels`` pixels were usable.
    """
    from astropy.stats import sigma_clip

    _, h, w = image.shape
    offs = _annulus_offsets(float(r_in), float(r_out))
    xi = np.rint(x).astype(np.int64)[:, None] + offs[None, :, 1]
    yi = np.rint(y).astype(np.int64)[:, None] + offs[None, :, 0]
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    xi, yi = np.clip(xi, 0, w - 1), np.clip(yi, 0, h - 1)
    vals = np.ma.masked_array(image[:, yi, xi], exclude[:, yi, xi] | ~inside[None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clipped = sigma_clip(vals, sigma=3.0, maxiters=10, axis=-1, masked=True)
        count = clipped.count(axis=-1)
        med = np.ma.median(clipped, axis=-1).filled(np.nan)
        std = clipped.std(axis=-1).filled(np.nan)
    good = (count >= min_pixels) & np.isfinite(med)
    err = 1.2533 * std / np.sqrt(np.maximum(count, 1))
    return (np.where(good, med, 0.0).T, np.where(good, err, 0.0).T, good.T)


def _circular(setup: _Setup, image: np.ndarray, err: np.ndarray, mask: np.ndarray,
              segmap: np.ndarray | None, x: np.ndarray, y: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Circular-aperture photometry of all positions in all bands (one photutils call each)."""
    from photutils.aperture import CircularAperture, aperture_photometry

    n, nb = x.size, image.shape[0]
    flux = np.full((n, nb), np.nan)
    ferr = np.full((n, nb), np.nan)
    flags = _edge_flags(x, y, np.full(n, setup.radius_pix), image.shape[1:])
    if n == 0:
        return flux, ferr, flags
    aps = CircularAperture(np.column_stack([x, y]), setup.radius_pix)
    if setup.cfg.local_background:
        exclude = mask if segmap is None else (mask | (segmap > 0)[None])
        bkg, bkg_err, good = annulus_background(image, exclude, x, y, *setup.annulus_pix)
        flags |= np.where(good.all(axis=1), 0, FLAG_NO_BACKGROUND)
    for b in range(nb):
        table = aperture_photometry(image[b], aps, error=err[b], mask=mask[b], method="exact")
        total = np.asarray(table["aperture_sum"], float)
        var = (np.asarray(table["aperture_sum_err"], float) * setup.noise_factor[b]) ** 2
        area_ok = np.asarray(aps.area_overlap(image[b], mask=mask[b]), float)
        full = np.asarray(aps.area_overlap(image[b]), float)
        flags |= np.where(area_ok < full - 1e-6, FLAG_MASKED, 0)
        if setup.cfg.local_background:
            total = total - bkg[:, b] * area_ok
            var = var + (bkg_err[:, b] * area_ok) ** 2
        no_data = area_ok <= 0
        corr = setup.aperture_corr[b]
        flux[:, b] = np.where(no_data, np.nan, total * corr)
        ferr[:, b] = np.where(no_data, np.nan, np.sqrt(var) * corr)
    return flux, ferr, flags


def _detection_image(image: np.ndarray, err: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Chi-mean detection image: sum_b image_b / err_b / sqrt(C) over bands with data."""
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(mask | (err <= 0), 0.0, image / np.where(err > 0, err, 1.0))
    return snr.sum(axis=0) / np.sqrt(image.shape[0])


def _kron(setup: _Setup, image: np.ndarray, err: np.ndarray, mask: np.ndarray,
          segmap: np.ndarray, labels: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Kron photometry of the footprints ``labels`` in every band.

    Returns flux, error, flags and a boolean ``measured`` per label (False: no footprint).
    """
    from photutils.aperture import CircularAperture
    from photutils.segmentation import SegmentationImage, SourceCatalog

    n, nb = labels.size, image.shape[0]
    flux = np.full((n, nb), np.nan)
    ferr = np.full((n, nb), np.nan)
    flags = np.zeros(n, dtype=np.int64)
    present = np.unique(segmap[segmap > 0])
    measured = np.isin(labels, present)
    if not measured.any():
        return flux, ferr, flags, measured
    segm = SegmentationImage(segmap.astype(np.int32))
    width = 0
    if setup.cfg.local_background:
        width = max(round(setup.annulus_pix[1] - setup.annulus_pix[0]), 4)
    allmask = mask.any(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = SourceCatalog(_detection_image(image, err, mask), segm, mask=allmask,
                            kron_params=tuple(setup.cfg.kron_params),
                            aperture_mask_method="correct")
        rows = np.searchsorted(det.labels, labels[measured])
        all_apertures = det.kron_aperture
        if not isinstance(all_apertures, list):
            all_apertures = [all_apertures]
        apertures = [all_apertures[i] for i in rows]
    reff = np.array([np.nan if a is None else
                     (a.r if isinstance(a, CircularAperture) else np.sqrt(a.a * a.b))
                     for a in apertures])
    idx = np.flatnonzero(measured)
    for j, a in zip(idx, apertures, strict=True):
        if a is None:
            continue
        bb = a.bbox
        if bb.ixmin < 0 or bb.iymin < 0 or bb.ixmax > image.shape[2] or \
                bb.iymax > image.shape[1]:
            flags[j] |= FLAG_EDGE
    for b in range(nb):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cat = SourceCatalog(image[b], segm, error=err[b], mask=mask[b],
                                detection_catalog=det, local_bkg_width=width)
            kf = np.atleast_1d(np.asarray(cat.kron_flux, float))[rows]
            ke = np.atleast_1d(np.asarray(cat.kron_fluxerr, float))[rows]
        corr = 1.0 / setup.ee(b, np.nan_to_num(reff, nan=setup.radius_pix))
        flux[idx, b] = kf * corr
        ferr[idx, b] = ke * corr
    if allmask.any():
        for j, a in zip(idx, apertures, strict=True):
            if a is not None and np.any(a.to_mask(method="center").get_values(allmask)):
                flags[j] |= FLAG_MASKED
    return flux, ferr, flags, measured


def _boxes_segmap(det_snr: np.ndarray, boxes: np.ndarray, order: np.ndarray,
                  threshold: float = 1.0) -> np.ndarray:
    """Footprints of detections: box pixels above ``threshold``, later in ``order`` wins."""
    seg = np.zeros(det_snr.shape, dtype=np.int32)
    h, w = det_snr.shape
    above = det_snr > threshold
    for k in order:
        x0, y0, x1, y1 = (int(v) for v in boxes[k])
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        region = seg[y0:y1, x0:x1]
        region[above[y0:y1, x0:x1]] = k + 1
    return seg


def measure_scene(setup: _Setup, image: np.ndarray, ivar: np.ndarray | None,
                  segmap: np.ndarray | None, x: np.ndarray, y: np.ndarray,
                  labels: np.ndarray | None = None, boxes: np.ndarray | None = None,
                  scores: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Fluxes of the given positions in one scene, all bands.

    Parameters
    ----------
    setup
        From :func:`prepare`.
    image, ivar
        (C_store, H, W) pixels and inverse variance of the scene (ivar may be None).
    segmap
        (H, W) footprints, or None.
    x, y
        Positions (pixels) of the targets.
    labels
        Forced mode: each target's ``object_id`` in ``segmap`` (``kron``).
    boxes, scores
        Detection mode: (n, 4) boxes ``x0, y0, x1, y1`` and optional scores; footprints for
        ``kron`` are built from them.

    Returns
    -------
    dict
        ``flux`` and ``flux_err`` (n, C) and ``flags`` (n,).
    """
    image = np.asarray(image, float)[setup.band_index]
    ivar = None if ivar is None else np.asarray(ivar, float)[setup.band_index]
    err, mask = _errors(setup, image, ivar, segmap)
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    flags = np.zeros(x.size, dtype=np.int64)
    if not (setup.has_psf and setup.cfg.aperture_correction):
        flags |= FLAG_NO_PSF
    if setup.cfg.method == "aperture":
        image, mask = _psf_match(setup, image, mask)
        flux, ferr, f = _circular(setup, image, err, mask, segmap, x, y)
        return {"flux": flux, "flux_err": ferr, "flags": flags | f}
    if boxes is not None:
        det = _detection_image(image, err, mask)
        order = np.argsort(scores, kind="stable") if scores is not None else np.arange(x.size)
        seg = _boxes_segmap(det, boxes, order)
        labels = np.arange(1, x.size + 1)
    elif segmap is None or labels is None:
        raise ValueError("method 'kron' needs footprints: a /segmap (forced) or detection boxes")
    else:
        seg = segmap
    flux, ferr, f, measured = _kron(setup, image, err, mask, seg, np.asarray(labels))
    flags |= f
    if not measured.all():
        miss = ~measured
        cflux, cerr, cf = _circular(setup, image, err, mask, seg, x[miss], y[miss])
        flux[miss], ferr[miss] = cflux, cerr
        flags[miss] |= cf | FLAG_NO_FOOTPRINT
    return {"flux": flux, "flux_err": ferr, "flags": flags}


# --- whole stores ----------------------------------------------------------------------

def read_detections(table: Mapping[str, Any], n_scenes: int) -> dict[str, np.ndarray]:
    """Check a detections table (columns :data:`DETECTION_COLUMNS`) and return its columns.

    Raises
    ------
    ValueError
        Naming missing columns, unequal lengths or scene indices outside the store.
    """
    missing = [c for c in DETECTION_COLUMNS if c not in table]
    if missing:
        raise ValueError(f"detections table lacks columns {missing}; it has {sorted(table)}")
    cols = {k: np.asarray(v) for k, v in table.items() if np.ndim(v) == 1}
    lengths = {len(cols[c]) for c in DETECTION_COLUMNS}
    if len(lengths) != 1:
        raise ValueError(f"detections table columns have different lengths {sorted(lengths)}")
    scene = cols["scene"].astype(np.int64)
    if scene.size and (scene.min() < 0 or scene.max() >= n_scenes):
        raise ValueError(f"detections table has scene indices outside 0..{n_scenes - 1}")
    cols["scene"] = scene
    return cols


def iter_measurements(store: SceneStore, cfg: PhotometryConfig, *,
                      detections: Mapping[str, Any] | None = None,
                      objects_per_chunk: int = 10000, rank: int = 0, size: int = 1,
                      setup: _Setup | None = None
                      ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Measure this rank's chunks of scenes.

    Yields
    ------
    rows, columns
        The output row numbers (store object rows in forced mode, detection-table rows
        otherwise) and the output columns for them (see :func:`output_columns`).
    """
    setup = setup or prepare(store, cfg)
    det = None if detections is None else read_detections(detections, store.n_scenes)
    if det is None and cfg.method == "kron" and not store.has_segmap:
        raise ValueError(f"method 'kron' needs /segmap, which scene store {store.path} lacks;"
                         " use method 'aperture' or give detections")
    if det is not None:
        det_order = np.argsort(det["scene"], kind="stable")
        det_scene = det["scene"][det_order]
    need = ["scene", "object_id", "x", "y", "ra", "dec", "redshift"]
    objects_all = None
    if det is not None and "object_id" in det:
        objects_all = store.objects(["object_id", "redshift"])
    for chunk in store.iter_chunks(objects_per_chunk=objects_per_chunk, rank=rank, size=size):
        if det is None:
            rows = np.arange(chunk.obj_start, chunk.obj_end)
            base = {k: chunk.objects[k] for k in need}
        else:
            lo, hi = np.searchsorted(det_scene, [chunk.scene_start, chunk.scene_end])
            rows = det_order[lo:hi]
            base = _detection_base(det, rows, chunk, objects_all)
        meas = _measure_chunk(setup, chunk, base, det, rows)
        yield rows, output_columns(setup, base, meas)


def _detection_base(det: dict[str, np.ndarray], rows: np.ndarray, chunk: SceneChunk,
                    objects_all: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    from astropy.io import fits
    from astropy.wcs import WCS

    n = rows.size
    base = {"scene": det["scene"][rows], "x": det["x"][rows].astype(float),
            "y": det["y"][rows].astype(float)}
    base["object_id"] = (det["object_id"][rows].astype(np.int64) if "object_id" in det
                         else np.full(n, -1, np.int64))
    z = np.full(n, np.nan)
    if objects_all is not None and n:
        ids = objects_all["object_id"]
        order = np.argsort(ids)
        pos = np.clip(np.searchsorted(ids[order], base["object_id"]), 0, max(ids.size - 1, 0))
        hit = (base["object_id"] >= 0) & (ids.size > 0)
        if ids.size:
            hit &= ids[order][pos] == base["object_id"]
            z[hit] = objects_all["redshift"][order][pos[hit]]
    base["redshift"] = z
    ra, dec = np.full(n, np.nan), np.full(n, np.nan)
    for i in range(len(chunk)):
        sel = base["scene"] == chunk.scene_start + i
        if sel.any():
            wcs = WCS(fits.Header.fromstring(_text(chunk.scenes["wcs"][i])))
            ra[sel], dec[sel] = wcs.all_pix2world(base["x"][sel], base["y"][sel], 0)
    base["ra"], base["dec"] = ra, dec
    return base


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _measure_chunk(setup: _Setup, chunk: SceneChunk, base: dict[str, np.ndarray],
                   det: dict[str, np.ndarray] | None, rows: np.ndarray
                   ) -> dict[str, np.ndarray]:
    n, nb = base["x"].size, len(setup.bands)
    out = {"flux": np.full((n, nb), np.nan), "flux_err": np.full((n, nb), np.nan),
           "flags": np.zeros(n, np.int64)}
    scenes = base["scene"]
    for i in range(len(chunk)):
        sel = np.flatnonzero(scenes == chunk.scene_start + i)
        if sel.size == 0:
            continue
        kwargs: dict[str, Any] = {}
        if det is None:
            kwargs["labels"] = base["object_id"][sel]
        else:
            r = rows[sel]
            kwargs["boxes"] = np.column_stack([det[c][r] for c in DETECTION_COLUMNS[3:]])
            kwargs["scores"] = det["score"][r] if "score" in det else None
        res = measure_scene(setup, chunk.images[i],
                            None if chunk.ivar is None else chunk.ivar[i],
                            None if chunk.segmap is None else chunk.segmap[i],
                            base["x"][sel], base["y"][sel], **kwargs)
        for k in out:
            out[k][sel] = res[k]
    return out


def output_columns(setup: _Setup, base: dict[str, np.ndarray],
                   meas: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Assemble the output table of a chunk (column order is the file's)."""
    cfg = setup.cfg
    out: dict[str, np.ndarray] = {
        "object_id": np.asarray(base["object_id"], np.int64),
        "scene": np.asarray(base["scene"], np.int64),
        "x": np.asarray(base["x"], float), "y": np.asarray(base["y"], float),
        "ra": np.asarray(base["ra"], float), "dec": np.asarray(base["dec"], float),
        "redshift": np.asarray(base["redshift"], float),
    }
    zp = setup.info.zeropoint_ab
    for b, band in enumerate(setup.bands):
        f, e = meas["flux"][:, b], meas["flux_err"][:, b]
        mag, mag_err = fluxes_to_mags(f, e, zp, cfg.nondetect_snr, cfg.nondetect_val,
                                      cfg.nonobserved_val)
        out[f"flux_{band}"] = f
        out[f"flux_err_{band}"] = e
        out[f"mag_{band}"] = mag
        out[f"mag_err_{band}"] = mag_err
    out["flags"] = np.asarray(meas["flags"], np.int32)
    return out


def empty_table(setup: _Setup) -> dict[str, np.ndarray]:
    """The output columns with no rows (a store or detections table without objects)."""
    base = {k: np.zeros(0) for k in ("object_id", "scene", "x", "y", "ra", "dec", "redshift")}
    nb = len(setup.bands)
    meas = {"flux": np.zeros((0, nb)), "flux_err": np.zeros((0, nb)),
            "flags": np.zeros(0, np.int64)}
    return output_columns(setup, base, meas)


def measure_store(path: str, cfg: PhotometryConfig, *,
                  detections: Mapping[str, Any] | None = None,
                  objects_per_chunk: int = 10000, progress: bool = False
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Photometry of every object (or detection) of a scene store, in order.

    Returns
    -------
    table, notes
        The output columns (one row per store object in ``/objects`` order, or per
        detection in the detections table's order) and notes for provenance (radii,
        aperture corrections).
    """
    from tqdm.auto import tqdm

    with SceneStore(path) as store:
        setup = prepare(store, cfg)
        n = store.n_objects if detections is None else \
            len(read_detections(detections, store.n_scenes)["scene"])
        parts = []
        with tqdm(total=n, desc="photometry", unit="obj", disable=not progress) as bar:
            for rows, cols in iter_measurements(store, cfg, detections=detections,
                                                objects_per_chunk=objects_per_chunk,
                                                setup=setup):
                parts.append((rows, cols))
                bar.update(rows.size)
    return (assemble(parts, n) if n else empty_table(setup)), setup.notes


def assemble(parts: Sequence[tuple[np.ndarray, dict[str, np.ndarray]]], n: int
             ) -> dict[str, np.ndarray]:
    """Put chunk results back into output-row order (every row must be covered once)."""
    if not parts:
        raise ValueError("no rows were measured")
    names = list(parts[0][1])
    out = {k: np.empty(n, dtype=parts[0][1][k].dtype) for k in names}
    seen = np.zeros(n, dtype=np.int64)
    for rows, cols in parts:
        seen[rows] += 1
        for k in names:
            out[k][rows] = cols[k]
    if not np.all(seen == 1):
        raise RuntimeError("photometry rows are missing or duplicated")
    return out


def mag_limits(table: Mapping[str, np.ndarray], bands: Sequence[str], zeropoint: float,
               prefix: str = "mag_") -> dict[str, float]:
    """Median 1-sigma limiting magnitude per band of a photometry table.

    Keys are ``<prefix><band>`` (the magnitude column names), as BPZ's ``mag_limits`` wants.
    """
    out = {}
    for band in bands:
        err = np.asarray(table[f"flux_err_{band}"], float)
        err = err[np.isfinite(err) & (err > 0)]
        if err.size == 0:
            raise ValueError(f"band {band} has no finite flux errors")
        out[f"{prefix}{band}"] = float(zeropoint - 2.5 * np.log10(np.median(err)))
    return out
