"""Zero-point offsets of the bands, fitted on objects with known redshifts (EAZY's
iterative residual correction).

Photometry and templates never agree perfectly: calibration offsets, aperture corrections
and the templates' own mismatch leave each band's fluxes a few per cent off the best-fit
templates. EAZY (``PhotoZ.iterate_zp_templates`` + ``PhotoZ.residuals``) measures that from
objects with spectroscopic redshifts: the templates are fitted with the redshift fixed at
the spectroscopic one, and each band's flux is multiplied by the factor that removes the
median residual; fits and factors are iterated. The factors multiply fluxes and errors
alike (``fnu * zp``, ``efnu * zp``), as in eazy-py. The reference band (the prior's) keeps
factor 1: an overall scale only changes the templates' normalisation.

Templates at an object's redshift are interpolated linearly between the two EAZY grid
redshifts around it; the fit is eazy-py's non-negative least squares with the template
error function at that redshift (:func:`rail.deepdisc.fit.eazyfit.template_fits`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from rail.deepdisc.fit.eazy_model import EazyModel

log = logging.getLogger(__name__)

#: fewest usable measurements of a band for its zero point to be fitted (else 1)
MIN_OBJECTS_PER_BAND = 10
#: residuals farther than this many sigma from the model are left out of the median
CLIP_SIGMA = 5.0
#: zero points are kept within this factor of 1
MAX_FACTOR = 2.0


@dataclass
class ZeropointFit:
    """Fitted factors and what they rest on.

    Attributes
    ----------
    zeropoints
        (NFILT,) multiplicative factors on fluxes and errors.
    n_used
        (NFILT,) measurements each factor's last median used.
    n_objects
        Objects with a redshift inside the model's grid.
    """

    zeropoints: np.ndarray
    n_used: np.ndarray
    n_objects: int


def models_at_redshift(model: EazyModel, fnu: np.ndarray, efnu: np.ndarray, z: np.ndarray,
                       *, sys_err: float) -> np.ndarray:
    """(N, NFILT) best-fit template fluxes of each object with its redshift fixed at ``z``.

    Objects with a redshift outside the grid, or fewer than three valid bands, get NaN.
    """
    from rail.deepdisc.fit.eazyfit import template_fits

    zgrid = model.zgrid
    out = np.full(fnu.shape, np.nan)
    ok = np.isfinite(fnu) & np.isfinite(efnu) & (efnu > 0)
    inside = np.isfinite(z) & (z >= zgrid[0]) & (z <= zgrid[-1]) & (ok.sum(axis=1) >= 3)
    if not inside.any():
        return out
    i1 = np.clip(np.searchsorted(zgrid, z[inside]), 1, zgrid.size - 1)
    t = ((z[inside] - zgrid[i1 - 1]) / (zgrid[i1] - zgrid[i1 - 1]))[:, None]
    temp = (1 - t[:, :, None]) * model.tempfilt[i1 - 1] + t[:, :, None] * model.tempfilt[i1]
    tef = (1 - t) * model.tef[i1 - 1] + t * model.tef[i1]
    f = np.where(ok[inside], fnu[inside], 0.0)
    e = np.where(ok[inside],
                 np.sqrt(efnu[inside] ** 2 + (sys_err * np.maximum(f, 0.0)) ** 2), -99.0)
    out[inside] = template_fits(temp.astype(float), f, e, tef)[2]
    return out


def fit_zeropoints(model: EazyModel, fnu: np.ndarray, efnu: np.ndarray, z: np.ndarray, *,
                   sys_err: float = 0.01, snr_min: float = 3.0, iterations: int = 3,
                   reference: int | None = None) -> ZeropointFit:
    """Per-band factors that bring the fluxes onto the templates fitted at the redshifts.

    Parameters
    ----------
    model
        The EAZY model (its own ``zeropoints`` are ignored: the fit starts from 1).
    fnu, efnu
        (N, NFILT) fluxes and errors in one linear unit (non-finite or non-positive errors:
        no data).
    z
        (N,) redshifts (NaN: not used).
    sys_err
        Fractional systematic error added in quadrature, as in the fit.
    snr_min
        Smallest S/N of a measurement used in a band's median.
    iterations
        Fits and factor updates.
    reference
        Index of the band whose factor stays 1 (None: the factors' geometric mean is 1).
    """
    fnu = np.asarray(fnu, float)
    efnu = np.asarray(efnu, float)
    z = np.asarray(z, float)
    nfilt = fnu.shape[1]
    zp = np.ones(nfilt)
    n_used = np.zeros(nfilt, np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = fnu / efnu
    for it in range(iterations):
        f, e = fnu * zp, efnu * zp
        fmodel = models_at_redshift(model, f, e, z, sys_err=sys_err)
        sigma = np.sqrt(e**2 + (sys_err * np.maximum(f, 0.0)) ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            use = (snr > snr_min) & np.isfinite(fmodel) & (fmodel > 0) \
                & (np.abs(f - fmodel) < CLIP_SIGMA * sigma)
            ratio = f / fmodel
        step = np.ones(nfilt)
        for j in range(nfilt):
            n_used[j] = int(use[:, j].sum())
            if n_used[j] >= MIN_OBJECTS_PER_BAND:
                step[j] = float(np.median(ratio[use[:, j], j]))
        zp = np.clip(zp / step, 1 / MAX_FACTOR, MAX_FACTOR)
        zp /= zp[reference] if reference is not None else np.exp(np.mean(np.log(zp)))
        log.info("zero points, iteration %d: %s", it + 1, np.round(zp, 4).tolist())
    n_objects = int((np.isfinite(z) & (z >= model.zgrid[0]) & (z <= model.zgrid[-1])).sum())
    return ZeropointFit(zeropoints=zp, n_used=n_used, n_objects=n_objects)
