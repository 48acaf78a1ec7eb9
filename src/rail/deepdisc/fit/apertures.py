"""Aperture and Kron photometry of one scene, in every band with the same apertures.

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
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

import numpy as np

from rail.deepdisc.errors import SceneStoreError
from rail.deepdisc.fit.photometry_setup import PhotometrySetup
from rail.deepdisc.fit.photometry_table import (
    FLAG_EDGE,
    FLAG_MASKED,
    FLAG_NO_BACKGROUND,
    FLAG_NO_FOOTPRINT,
    FLAG_NO_PSF,
)


def _errors(setup: PhotometrySetup, image: np.ndarray, ivar: np.ndarray | None,
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


def _psf_match(setup: PhotometrySetup, image: np.ndarray, mask: np.ndarray
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


def _circular(setup: PhotometrySetup, image: np.ndarray, err: np.ndarray, mask: np.ndarray,
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


def _kron_apertures(setup: PhotometrySetup, image: np.ndarray, err: np.ndarray,
                    mask: np.ndarray, segm: Any, labels: np.ndarray
                    ) -> tuple[Any, np.ndarray, list[Any]]:
    """Kron apertures of the footprints ``labels`` on the chi-mean detection image.

    Returns the photutils detection catalog, the catalog rows of the labels and their
    apertures (None where photutils could not define one).
    """
    from photutils.segmentation import SourceCatalog

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = SourceCatalog(_detection_image(image, err, mask), segm, mask=mask.any(axis=0),
                            kron_params=tuple(setup.cfg.kron_params),
                            aperture_mask_method="correct")
        rows = np.searchsorted(det.labels, labels)
        all_apertures = det.kron_aperture
        if not isinstance(all_apertures, list):
            all_apertures = [all_apertures]
    return det, rows, [all_apertures[i] for i in rows]


def _aperture_flags(apertures: list[Any], mask: np.ndarray) -> np.ndarray:
    """FLAG_EDGE and FLAG_MASKED of each aperture (``mask``: (H, W) pixels without data)."""
    h, w = mask.shape
    flags = np.zeros(len(apertures), dtype=np.int64)
    for j, a in enumerate(apertures):
        if a is None:
            continue
        bb = a.bbox
        if bb.ixmin < 0 or bb.iymin < 0 or bb.ixmax > w or bb.iymax > h:
            flags[j] |= FLAG_EDGE
        if mask.any() and np.any(a.to_mask(method="center").get_values(mask)):
            flags[j] |= FLAG_MASKED
    return flags


def _kron(setup: PhotometrySetup, image: np.ndarray, err: np.ndarray, mask: np.ndarray,
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
    measured = np.isin(labels, np.unique(segmap[segmap > 0]))
    if not measured.any():
        return flux, ferr, flags, measured
    segm = SegmentationImage(segmap.astype(np.int32))
    width = 0
    if setup.cfg.local_background:
        width = max(round(setup.annulus_pix[1] - setup.annulus_pix[0]), 4)
    det, rows, apertures = _kron_apertures(setup, image, err, mask, segm, labels[measured])
    reff = np.array([np.nan if a is None else
                     (a.r if isinstance(a, CircularAperture) else np.sqrt(a.a * a.b))
                     for a in apertures])
    idx = np.flatnonzero(measured)
    flags[idx] = _aperture_flags(apertures, mask.any(axis=0))
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


def measure_scene(setup: PhotometrySetup, image: np.ndarray, ivar: np.ndarray | None,
                  segmap: np.ndarray | None, x: np.ndarray, y: np.ndarray,
                  labels: np.ndarray | None = None, boxes: np.ndarray | None = None,
                  scores: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Fluxes of the given positions in one scene, all bands.

    Parameters
    ----------
    setup
        From :func:`rail.deepdisc.fit.photometry_setup.prepare`.
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
    if not setup.corrected:
        flags |= FLAG_NO_PSF
    if setup.cfg.method == "aperture":
        image, mask = _psf_match(setup, image, mask)
        flux, ferr, f = _circular(setup, image, err, mask, segmap, x, y)
        return {"flux": flux, "flux_err": ferr, "flags": flags | f}
    seg, labels = _footprints(image, err, mask, segmap, labels, boxes, scores)
    flux, ferr, f, measured = _kron(setup, image, err, mask, seg, labels)
    flags |= f
    if not measured.all():
        miss = ~measured
        cflux, cerr, cf = _circular(setup, image, err, mask, seg, x[miss], y[miss])
        flux[miss], ferr[miss] = cflux, cerr
        flags[miss] |= cf | FLAG_NO_FOOTPRINT
    return {"flux": flux, "flux_err": ferr, "flags": flags}


def _footprints(image: np.ndarray, err: np.ndarray, mask: np.ndarray,
                segmap: np.ndarray | None, labels: np.ndarray | None,
                boxes: np.ndarray | None, scores: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """The segmentation and target labels for ``kron``: the store's, or from boxes."""
    if boxes is not None:
        det = _detection_image(image, err, mask)
        n = len(boxes)
        order = np.argsort(scores, kind="stable") if scores is not None else np.arange(n)
        return _boxes_segmap(det, boxes, order), np.arange(1, n + 1)
    if segmap is None or labels is None:
        raise SceneStoreError("method 'kron' needs footprints: a /segmap (forced) or "
                              "detection boxes")
    return segmap, np.asarray(labels)
