"""What a cutout's pixels say: where there are no data, and the central object's footprint.

* :func:`missing_pixels`: pixels without data are those that are not finite, that have no
  weight (inverse variance 0 or not finite), or that are exactly 0 in a run touching the
  cutout's border (the zero padding services put where a cutout reaches beyond the survey);
  they become image 0 and inverse variance 0 in a scene store;
* :func:`central_footprint`: the central object's pixels in a segmentation of the cutout's
  detection image (the chi-mean of the bands' S/N, ``sum_b (f_b / sigma_b) / sqrt(C)``, as
  simulated stores define footprints), smoothed by a Gaussian of ``fwhm`` pixels,
  thresholded at ``threshold`` times the smoothed noise and deblended (photutils); the
  footprint is the segment under the object's position, else the nearest within 2 pixels.
"""

from __future__ import annotations

import numpy as np


def missing_pixels(image: np.ndarray, ivar: np.ndarray | None) -> np.ndarray:
    """Boolean (C, H, W): pixels without data (see the module docstring)."""
    from scipy import ndimage

    missing = ~np.isfinite(image)
    if ivar is not None:
        missing |= ~np.isfinite(ivar) | (ivar <= 0)
    for b in range(image.shape[0]):
        zero = image[b] == 0
        if not zero.any():
            continue
        labels, _ = ndimage.label(zero)
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0],
                                           labels[:, -1]]))
        border = border[border > 0]
        if border.size:
            missing[b] |= np.isin(labels, border)
    return missing


def detection_image(image: np.ndarray, ivar: np.ndarray) -> np.ndarray:
    """Chi-mean detection image ``sum_b f_b sqrt(ivar_b) / sqrt(n_b)`` (n_b: bands with data
    at the pixel; 0 where none has data)."""
    snr = image * np.sqrt(np.clip(ivar, 0, None))
    n = (ivar > 0).sum(axis=0)
    return np.where(n > 0, snr.sum(axis=0) / np.sqrt(np.maximum(n, 1)), 0.0)


def central_footprint(image: np.ndarray, ivar: np.ndarray, x: float, y: float,
                      threshold: float = 1.5, npixels: int = 5, fwhm: float = 2.0,
                      reach: float = 2.0) -> np.ndarray | None:
    """The central object's footprint (boolean H x W), or None if no segment is there.

    Parameters
    ----------
    image, ivar
        (C, H, W) pixels and inverse variance (0 where there are no data).
    x, y
        The object's position (0-based pixels).
    threshold
        Detection-image S/N per (smoothed) pixel of the footprint.
    npixels
        Fewest connected pixels of a segment.
    fwhm
        FWHM (pixels) of the Gaussian smoothing the detection image.
    reach
        Farthest (pixels) a segment may lie from the position and still be the object's.
    """
    from astropy.convolution import convolve
    from photutils.segmentation import deblend_sources, detect_sources, make_2dgaussian_kernel

    det = detection_image(image, ivar)
    size = max(3, int(2 * np.ceil(1.5 * fwhm) + 1))
    kernel = make_2dgaussian_kernel(fwhm, size=size)
    smooth = convolve(det, kernel, normalize_kernel=True, boundary="fill", fill_value=0.0)
    noise = float(np.sqrt(np.sum(np.asarray(kernel.array) ** 2)))
    segm = detect_sources(smooth, threshold * noise, npixels)
    if segm is None:
        return None
    segm = deblend_sources(smooth, segm, npixels, progress_bar=False)
    labels = segm.data
    h, w = labels.shape
    px, py = int(np.clip(np.floor(x + 0.5), 0, w - 1)), int(np.clip(np.floor(y + 0.5), 0, h - 1))
    label = labels[py, px]
    if label == 0:
        yy, xx = np.nonzero(labels)
        if yy.size == 0:
            return None
        dist = np.hypot(xx - x, yy - y)
        k = int(np.argmin(dist))
        if dist[k] > reach:
            return None
        label = labels[yy[k], xx[k]]
    return labels == label


def footprint_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Half-open box ``(x0, y0, x1, y1)`` of a non-empty footprint."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
