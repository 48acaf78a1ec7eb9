"""EAZY fitting: any number of objects with an :class:`~rail.deepdisc.fit.eazy_model.EazyModel`.

:func:`fit` fits photometry with eazy-py's own per-redshift non-negative least-squares kernel
(``eazy.photoz.fit_by_redshift`` -> ``template_lsq``) and turns the chi-square into the
redshift posterior exactly as ``PhotoZ.compute_lnp`` does (template-error normalisation,
prior, the 1100 A clip beyond the reddest valid band), and the maximum-likelihood redshift
as ``PhotoZ.get_maxlnp_redshift`` does. Working from arrays lets a RAIL estimator fit chunk
by chunk without template files at estimation time; a test checks the result against a full
``eazy.photoz.PhotoZ`` run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rail.deepdisc.errors import InputError
from rail.deepdisc.fit.eazy_model import EazyModel, trapz_weights
from rail.deepdisc.fit.eazy_templates import import_eazy

#: eazy-py's default clip: p(z) = 0 where 1100 A (1+z) is redder than the reddest valid band
CLIP_WAVELENGTH = 1100.0


@dataclass
class FitResult:
    """Per-object results of :func:`fit` (``lnp`` is log p(z) on ``zgrid``)."""

    zgrid: np.ndarray
    lnp: np.ndarray
    chi2: np.ndarray
    n_filters: np.ndarray
    fitted: np.ndarray

    @property
    def pdf(self) -> np.ndarray:
        """p(z) on the grid, normalised to unit integral (zeros for unfitted objects)."""
        return np.where(self.fitted[:, None], np.exp(self.lnp), 0.0)

    @property
    def zmode(self) -> np.ndarray:
        z = self.zgrid[np.argmax(self.lnp, axis=1)]
        return np.where(self.fitted, z, np.nan)

    @property
    def zmean(self) -> np.ndarray:
        w = trapz_weights(self.zgrid)
        p = self.pdf
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (p * self.zgrid) @ w / (p @ w)
        return np.where(self.fitted, z, np.nan)

    @property
    def zmedian(self) -> np.ndarray:
        p = self.pdf
        cdf = np.concatenate([np.zeros((p.shape[0], 1)), np.cumsum(
            0.5 * (p[:, 1:] + p[:, :-1]) * np.diff(self.zgrid), axis=1)], axis=1)
        out = np.full(p.shape[0], np.nan)
        for i in np.flatnonzero(self.fitted & (cdf[:, -1] > 0)):
            out[i] = np.interp(0.5 * cdf[i, -1], cdf[i], self.zgrid)
        return out

    @property
    def zbest(self) -> np.ndarray:
        """Maximum of p(z) refined by a parabola through the peak (eazy's ``zml``)."""
        nz = self.zgrid.size
        iz = np.argmax(self.lnp, axis=1)
        z = self.zgrid[iz].astype(float)
        inner = self.fitted & (iz > 0) & (iz < nz - 1)
        if inner.any():
            i = iz[inner]
            x = np.stack([self.zgrid[i - 1], self.zgrid[i], self.zgrid[i + 1]], axis=1)
            y = np.take_along_axis(self.lnp[inner], np.stack([i - 1, i, i + 1], axis=1), 1)
            dx, dx2, dy = np.diff(x, axis=1).T, np.diff(x**2, axis=1).T, np.diff(y, axis=1).T
            with np.errstate(invalid="ignore", divide="ignore"):
                c2 = (dy[1] / dx[1] - dy[0] / dx[0]) / (dx2[1] / dx[1] - dx2[0] / dx[0])
                c1 = (dy[0] - c2 * dx2[0]) / dx[0]
                vertex = -c1 / 2 / c2
            good = np.isfinite(vertex) & (c2 < 0)
            z[np.flatnonzero(inner)[good]] = vertex[good]
        return np.where(self.fitted, z, np.nan)


def prior_lnp(model: EazyModel, mag: np.ndarray) -> np.ndarray:
    """log prior (N, NZ) for apparent magnitudes ``mag`` (as ``PhotoZ._get_prior_mag``).

    Objects with a non-finite or non-positive magnitude get a flat (zero) log prior, as in
    eazy-py.
    """
    mag = np.asarray(mag, float)
    out = np.zeros((mag.size, model.zgrid.size))
    if not model.has_prior:
        return out
    pm, pd = model.prior_mags, model.prior_data
    ok = np.isfinite(mag) & (mag > 0)
    mc = np.clip(mag[ok], pm[0], pm[-1] - 0.02)
    ix = np.interp(mc, pm, np.arange(pm.size))
    i0 = np.floor(ix).astype(int)
    f = ix - i0
    prior = pd[:, i0] * (1 - f) + pd[:, np.minimum(i0 + 1, pm.size - 1)] * f
    out[ok] = np.log(prior.T)
    return out


def _fit_redshifts(args: tuple) -> tuple[np.ndarray, np.ndarray]:
    izs, tempfilt, fnu, efnu, tef, zgrid, renorm = args
    eazy = import_eazy()
    zp = np.ones(fnu.shape[1], dtype=fnu.dtype)
    chi2 = np.zeros((fnu.shape[0], len(izs)), dtype=fnu.dtype)
    for k, iz in enumerate(izs):
        _, c2, _ = eazy.photoz.fit_by_redshift(iz, zgrid[iz], tempfilt[iz], fnu, efnu,
                                                tef[iz], zp, 0, "nnls", renorm, 1.0)
        chi2[:, k] = c2
    return izs, chi2


def fit(model: EazyModel, fnu: np.ndarray, efnu: np.ndarray, *, sys_err: float = 0.01,
        prior_mag: np.ndarray | None = None, n_proc: int = 0) -> FitResult:
    """Fit photometry with the model, as eazy-py's ``PhotoZ.fit_catalog`` + ``compute_lnp``.

    Parameters
    ----------
    fnu, efnu
        (N, NFILT) flux densities and 1-sigma errors in one linear unit. Non-finite values
        or errors <= 0 mark a band as not observed for that object. Negative fluxes are
        valid measurements.
    sys_err
        Fractional systematic error added in quadrature for positive fluxes (``SYS_ERR``).
    prior_mag
        Apparent AB magnitude per object for the prior (ignored without a model prior).
    n_proc
        Worker processes over the redshift grid (0: this process).
    """
    fnu = np.asarray(fnu, float)
    efnu_in = np.asarray(efnu, float)
    if fnu.ndim != 2 or fnu.shape != efnu_in.shape or fnu.shape[1] != model.nfilt:
        raise InputError(f"photometry has shape {fnu.shape} / {efnu_in.shape}; the model has "
                         f"{model.nfilt} filters")
    ok = np.isfinite(fnu) & np.isfinite(efnu_in) & (efnu_in > 0)
    f = np.where(ok, fnu, 0.0)
    e = np.sqrt(np.where(ok, efnu_in, 0.0) ** 2 + (sys_err * np.maximum(f, 0.0)) ** 2)
    chi2 = _chi2_grid(model, f, np.where(ok, e, -99.0), n_proc)
    fitted = (chi2 != 0).any(axis=1) & np.isfinite(chi2).any(axis=1)
    loglike = _log_likelihood(model, chi2, f, e, ok)
    if prior_mag is not None and model.has_prior:
        loglike = loglike + prior_lnp(model, prior_mag)
    return FitResult(zgrid=model.zgrid, lnp=_normalised_lnp(model, loglike, ok),
                     chi2=chi2.min(axis=1, initial=np.inf, where=chi2 != 0),
                     n_filters=ok.sum(axis=1), fitted=fitted)


def _chi2_grid(model: EazyModel, f: np.ndarray, e: np.ndarray, n_proc: int) -> np.ndarray:
    """(N, NZ) chi-square of eazy-py's NNLS fit at every redshift (float32, as eazy-py)."""
    f32, e32 = f.astype(np.float32), e.astype(np.float32)
    nz = model.zgrid.size
    blocks = np.array_split(np.arange(nz), max(1, n_proc) * 4 if n_proc > 0 else 1)
    tasks = [(b, model.tempfilt, f32, e32, model.tef, model.zgrid, True)
             for b in blocks if b.size]
    if n_proc > 0 and f.shape[0] > 0:
        from rail.deepdisc.workers import process_pool

        with process_pool(n_proc) as pool:
            results = list(pool.map(_fit_redshifts, tasks))
    else:
        results = [_fit_redshifts(t) for t in tasks]
    chi2 = np.zeros((f.shape[0], nz), dtype=np.float32)
    for izs, c2 in results:
        chi2[:, izs] = c2
    return chi2


def _log_likelihood(model: EazyModel, chi2: np.ndarray, f: np.ndarray, e: np.ndarray,
                    ok: np.ndarray) -> np.ndarray:
    """-chi2 / 2 with ``PhotoZ.compute_tef_lnp``'s -0.5 sum(log(var)) over valid bands."""
    loglike = -chi2.astype(float) / 2.0
    fpos2 = np.maximum(f, 0.0) ** 2
    for iz in range(model.zgrid.size):
        var = np.where(ok, e**2 + model.tef[iz][None, :] ** 2 * fpos2, 1.0)
        loglike[:, iz] -= 0.5 * np.sum(np.where(ok, np.log(var), 0.0), axis=1)
    return loglike


def _normalised_lnp(model: EazyModel, loglike: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """log p(z), normalised on the grid, as ``PhotoZ.compute_lnp``.

    No support where 1100 A (1 + z) is redder than the reddest valid band.
    """
    reddest = np.max(ok * model.pivot[None, :], axis=1)
    red_mask = CLIP_WAVELENGTH * (1 + model.zgrid)[None, :] > reddest[:, None]
    loglike = loglike.copy()
    loglike[red_mask] = -np.inf
    loglike[~np.isfinite(loglike)] = -1e20
    lnpmax = loglike.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        log_norm = np.log(np.exp(loglike - lnpmax) @ trapz_weights(model.zgrid))[:, None]
    lnp = loglike - lnpmax - log_norm
    lnp[~np.isfinite(lnp)] = -1e20
    return lnp
