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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.fit.eazy_model import EazyModel, trapz_weights
from rail.deepdisc.fit.eazy_options import EazyInputOptions
from rail.deepdisc.magnitudes import mag_to_flux

#: objects fitted together (memory: ~1 kB per object and template)
_OBJECTS_AT_ONCE = 20000
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

    def ensemble(self, ancil: Mapping[str, np.ndarray] | None = None) -> Any:
        """A ``qp.interp`` ensemble of p(z) (flat for unfitted objects) with the point
        estimates, ``chi2`` and ``n_filters`` (and ``ancil``) as ancillary columns."""
        import qp

        pdf = self.pdf
        pdf[~self.fitted] = 1.0  # no usable band: flat p(z)
        ens = qp.Ensemble(qp.interp, data={"xvals": self.zgrid, "yvals": pdf})
        ens.set_ancil({"zmode": self.zmode, "zmean": self.zmean, "zmedian": self.zmedian,
                       "zbest": self.zbest, "chi2": self.chi2,
                       "n_filters": self.n_filters.astype(np.int32), **(ancil or {})})
        return ens

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


def catalog_fluxes(data: Mapping[str, Any], config: Any, opts: EazyInputOptions
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(N, NFILT) fluxes and errors of a catalog's band columns, for :func:`fit`.

    ``config`` holds RAIL's ``bands``, ``err_bands``, ``nondetect_val``,
    ``nonobserved_val`` and ``mag_limits``. Linear columns (``input_type = flux``) are used
    as they are. Magnitude columns follow RAIL's conventions: ``nondetect_val`` marks a
    non-detection, fitted as zero flux with the band's 1-sigma ``mag_limits`` as error;
    ``nonobserved_val`` or non-finite values mark bands without data (NaN here).
    """
    zp = opts.flux_zeropoint
    cols = [np.asarray(data[b], float) for b in config.bands]
    errs = [np.asarray(data[e], float) for e in config.err_bands]
    if opts.input_type == "flux":
        return np.stack(cols, axis=1), np.stack(errs, axis=1)
    fnu, efnu = [], []
    for band, mag, err in zip(config.bands, cols, errs, strict=True):
        nondet = np.isnan(mag) if np.isnan(config.nondetect_val) else \
            np.isclose(mag, config.nondetect_val)
        unobs = ~np.isfinite(mag) | np.isclose(mag, config.nonobserved_val)
        unobs &= ~nondet
        det = ~nondet & ~unobs & np.isfinite(err) & (err > 0)
        f = np.full(mag.shape, np.nan)
        e = np.full(mag.shape, np.nan)
        f[det] = mag_to_flux(mag[det], zp)
        e[det] = f[det] * err[det] * np.log(10.0) / 2.5
        f[nondet] = 0.0
        if nondet.any():
            if band not in config.mag_limits:
                raise OptionError(f"mag_limits has no 1-sigma limit for {band}, needed for "
                                  "its non-detections")
            e[nondet] = mag_to_flux(float(config.mag_limits[band]), zp)
        fnu.append(f)
        efnu.append(e)
    return np.stack(fnu, axis=1), np.stack(efnu, axis=1)


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


def template_fits(templates: np.ndarray, fnu: np.ndarray, efnu: np.ndarray,
                  tef: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-negative template fits of many objects, as eazy-py's ``template_lsq`` (NNLS).

    Parameters
    ----------
    templates
        (NTEMP, NFILT) template fluxes shared by all objects, or (N, NTEMP, NFILT) one set
        per object (e.g. each at its own redshift).
    fnu, efnu
        (N, NFILT) fluxes and errors; bands with ``efnu <= 0`` or non-finite values are not
        used.
    tef
        (NFILT,) or (N, NFILT) template error function at the redshift(s).

    Returns
    -------
    chi2, coeffs, fmodel
        (N,) chi-square over the used bands (0 for objects with fewer than 2 bands, which
        eazy-py does not fit), (N, NTEMP) coefficients and (N, NFILT) model fluxes.
    """
    from rail.deepdisc.fit.nnls import nnls_batch

    ok = (efnu > 0) & np.isfinite(fnu) & np.isfinite(efnu)
    f = np.where(ok, fnu, 0.0)
    rms = np.sqrt(np.where(ok, efnu, 1.0) ** 2 + (tef * np.maximum(f, 0.0)) ** 2)
    t = np.broadcast_to(templates, (fnu.shape[0], *np.shape(templates)[-2:]))
    a = np.where(ok[:, :, None], np.swapaxes(t, 1, 2) / rms[:, :, None], 0.0)  # (N, F, T)
    norm = np.sqrt(np.einsum("nft,nft->nt", a, a))  # eazy's template renormalisation
    a = a / np.where(norm > 0, norm, 1.0)[:, None, :]
    coeffs, chi2 = nnls_batch(a, np.where(ok, f / rms, 0.0))
    coeffs = coeffs / np.where(norm > 0, norm, 1.0)
    fitted = ok.sum(axis=1) >= 2
    fmodel = np.einsum("nt,ntf->nf", coeffs, t)
    return np.where(fitted, chi2, 0.0), coeffs, fmodel


def _fit_redshifts(args: tuple) -> tuple[np.ndarray, np.ndarray]:
    izs, tempfilt, fnu, efnu, tef, _zgrid, _renorm = args
    chi2 = np.zeros((fnu.shape[0], len(izs)), dtype=fnu.dtype)
    for k, iz in enumerate(izs):
        for s in range(0, fnu.shape[0], _OBJECTS_AT_ONCE):
            e = min(s + _OBJECTS_AT_ONCE, fnu.shape[0])
            chi2[s:e, k] = template_fits(tempfilt[iz].astype(float), fnu[s:e], efnu[s:e],
                                         tef[iz])[0]
    return izs, chi2


def fit(model: EazyModel, fnu: np.ndarray, efnu: np.ndarray, *, sys_err: float = 0.01,
        prior_mag: np.ndarray | None = None, n_workers: int = 1) -> FitResult:
    """Fit photometry with the model, as eazy-py's ``PhotoZ.fit_catalog`` + ``compute_lnp``.

    Parameters
    ----------
    fnu, efnu
        (N, NFILT) flux densities and 1-sigma errors in one linear unit. Non-finite values
        or errors <= 0 mark a band as not observed for that object. Negative fluxes are
        valid measurements. Both are multiplied by the model's zero points.
    sys_err
        Fractional systematic error added in quadrature for positive fluxes (``SYS_ERR``).
    prior_mag
        Apparent AB magnitude per object for the prior (ignored without a model prior).
    n_workers
        Worker processes over the redshift grid (1: this process).
    """
    fnu = np.asarray(fnu, float)
    efnu_in = np.asarray(efnu, float)
    if fnu.ndim != 2 or fnu.shape != efnu_in.shape or fnu.shape[1] != model.nfilt:
        raise InputError(f"photometry has shape {fnu.shape} / {efnu_in.shape}; the model has "
                         f"{model.nfilt} filters")
    ok = np.isfinite(fnu) & np.isfinite(efnu_in) & (efnu_in > 0)
    fnu, efnu_in = fnu * model.zeropoints, efnu_in * model.zeropoints  # as eazy: fnu * zp
    f = np.where(ok, fnu, 0.0)
    e = np.sqrt(np.where(ok, efnu_in, 0.0) ** 2 + (sys_err * np.maximum(f, 0.0)) ** 2)
    chi2 = _chi2_grid(model, f, np.where(ok, e, -99.0), n_workers)
    fitted = (chi2 != 0).any(axis=1) & np.isfinite(chi2).any(axis=1)
    loglike = _log_likelihood(model, chi2, f, e, ok)
    if prior_mag is not None and model.has_prior:
        loglike = loglike + prior_lnp(model, prior_mag)
    return FitResult(zgrid=model.zgrid, lnp=_normalised_lnp(model, loglike, ok),
                     chi2=chi2.min(axis=1, initial=np.inf, where=chi2 != 0),
                     n_filters=ok.sum(axis=1), fitted=fitted)


def _chi2_grid(model: EazyModel, f: np.ndarray, e: np.ndarray, n_workers: int) -> np.ndarray:
    """(N, NZ) chi-square of eazy-py's NNLS fit at every redshift (float32, as eazy-py)."""
    f32, e32 = f.astype(np.float32), e.astype(np.float32)
    nz = model.zgrid.size
    blocks = np.array_split(np.arange(nz), n_workers * 4 if n_workers > 1 else 1)
    tasks = [(b, model.tempfilt, f32, e32, model.tef, model.zgrid, True)
             for b in blocks if b.size]
    if n_workers > 1 and f.shape[0] > 0:
        from rail.deepdisc.workers import process_pool

        with process_pool(n_workers) as pool:
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
