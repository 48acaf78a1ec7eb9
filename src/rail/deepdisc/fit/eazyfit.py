"""EAZY (eazy-py) template fitting, split into a reusable model and a chunked fit.

The model (:class:`EazyModel`) is what eazy-py's ``PhotoZ`` builds before fitting: the
templates integrated through the filters on EAZY's redshift grid (``TemplateGrid``, with
eazy's IGM), the template error function evaluated on that grid (``TemplateError``) and the
apparent-magnitude prior (``PhotoZ.read_prior``). It is built once and stored as plain arrays
in an HDF5 file (no pickles), together with the filter curves as an EAZY ``FILTER.RES``
text and the provenance of every template and filter.

:func:`fit` then fits any number of objects with eazy-py's own per-redshift non-negative
least-squares kernel (``eazy.photoz.fit_by_redshift`` -> ``template_lsq``) and turns the
chi-square into the redshift posterior exactly as ``PhotoZ.compute_lnp`` does (template-error
normalisation, prior, the 1100 A clip beyond the reddest valid band), and the
maximum-likelihood redshift as ``PhotoZ.get_maxlnp_redshift`` does. Working from arrays lets
a RAIL estimator fit chunk by chunk without template files at estimation time; a test checks
the result against a full ``eazy.photoz.PhotoZ`` run.

eazy-py is an optional dependency (``pip install 'pz-rail-deepdisc[eazy]'``) imported only
when a model is built or used.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rail.deepdisc.fit.filters import FilterCurve, eazy_res_text, resolve_filters
from rail.deepdisc.fit.templates import BUILTIN_SETS, builtin_templates

FORMAT = "deepdisc-eazy-model"
VERSION = 1
#: eazy-py's default clip: p(z) = 0 where 1100 A (1+z) is redder than the reddest valid band
CLIP_WAVELENGTH = 1100.0


def import_eazy():
    """Import eazy-py's modules quietly, or explain how to install it."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import eazy.filters
            import eazy.photoz
            import eazy.templates
            import eazy.utils
    except ImportError as err:
        raise ImportError("EAZY needs the optional dependency eazy-py: "
                          "pip install 'pz-rail-deepdisc[eazy]'") from err
    return eazy


# --- templates -------------------------------------------------------------------------

def parse_param_file(path: str | os.PathLike) -> list[tuple[str, float]]:
    """Template paths and wavelength scales listed in an EAZY templates ``.param`` file.

    Relative template paths are resolved against the ``.param`` file's directory and then
    each of its parents (EAZY's own files name templates relative to the folder holding
    ``templates/``).

    Raises
    ------
    ValueError
        If the file is unreadable or empty, or a listed template is not found (naming it).
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fin:
            lines = fin.readlines()
    except OSError as err:
        raise ValueError(f"cannot read EAZY templates file {path}: {err}") from err
    out = []
    base = Path(path).resolve().parent
    for k, line in enumerate(lines, 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) < 2:
            raise ValueError(f"{path}:{k}: expected 'N template_file [to_angstrom]'")
        name = parts[1]
        try:
            scale = float(parts[2]) if len(parts) > 2 else 1.0
        except ValueError:
            raise ValueError(f"{path}:{k}: bad wavelength scale {parts[2]!r}") from None
        candidates = [Path(name)] if os.path.isabs(name) else \
            [d / name for d in (base, *base.parents)]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise ValueError(f"{path}:{k}: template file {name!r} not found (looked in "
                             f"{base} and its parents)")
        out.append((os.fspath(found), scale))
    if not out:
        raise ValueError(f"EAZY templates file {path} lists no templates")
    return out


@dataclass
class TemplateSpec:
    """Templates loaded for EAZY: eazy ``Template`` objects and where each came from."""

    templates: list[Any]
    names: list[str]
    sources: list[str]
    description: str


def load_templates(spec: str) -> TemplateSpec:
    """Load templates for EAZY.

    Parameters
    ----------
    spec
        A built-in set name (``cww``, ``cosmos``, ``oracle``; see
        :mod:`rail.deepdisc.fit.templates`), an EAZY ``.param`` file, or several of these
        joined by commas (their templates are concatenated), e.g.
        ``".../fsps_full/tweak_fsps_QSF_12_v3.param,.../sfhz/blue_sfhz_13.param"``.

    Raises
    ------
    ValueError
        Naming the unreadable file or unknown set, before any fitting.
    """
    eazy = import_eazy()
    items = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not items:
        raise ValueError("no EAZY templates given")
    templates, names, sources = [], [], []
    for item in items:
        if item in BUILTIN_SETS:
            tset = builtin_templates(item)
            for t in tset.templates:
                with contextlib.redirect_stdout(io.StringIO()):
                    templates.append(eazy.templates.Template(arrays=(t.wave, t.flux),
                                                             name=t.name))
                names.append(t.name)
                sources.append(t.source)
            continue
        for fpath, scale in parse_param_file(item):
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    templ = eazy.templates.Template(file=fpath, to_angstrom=scale)
            except Exception as err:  # eazy raises many kinds on bad files
                raise ValueError(f"cannot read EAZY template {fpath} (listed in {item}): "
                                 f"{err}") from err
            if not np.all(np.isfinite(templ.flux)) or templ.wave.size < 2:
                raise ValueError(f"EAZY template {fpath} (listed in {item}) holds no usable "
                                 "spectrum")
            templates.append(templ)
            names.append(Path(fpath).name)
            sources.append(fpath)
    return TemplateSpec(templates, names, sources, ",".join(items))


# --- the model -------------------------------------------------------------------------

@dataclass
class EazyModel:
    """Everything a fit needs, as arrays (see the module docstring).

    Attributes
    ----------
    zgrid
        EAZY's redshift grid (steps of ``zstep (1 + z)``).
    tempfilt
        (NZ, NTEMP, NFILT) template fluxes through the filters (eazy ``TemplateGrid``).
    tef
        (NZ, NFILT) template error function times its amplitude (zeros: none).
    pivot
        Filter pivot wavelengths (Angstrom).
    prior_mags, prior_data
        Apparent-magnitude prior grid (``PhotoZ.read_prior``); empty when there is none.
    meta
        JSON-able: filters, templates, settings and provenance.
    filters_res
        The filter curves as an EAZY ``FILTER.RES`` text.
    """

    zgrid: np.ndarray
    tempfilt: np.ndarray
    tef: np.ndarray
    pivot: np.ndarray
    prior_mags: np.ndarray
    prior_data: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    filters_res: str = ""

    @property
    def nfilt(self) -> int:
        return int(self.tempfilt.shape[2])

    @property
    def has_prior(self) -> bool:
        return self.prior_mags.size > 0

    def save(self, path: str | os.PathLike) -> None:
        """Write the model as HDF5 (atomically, via a temporary name)."""
        from rail.deepdisc.store.atomic import atomic_output

        with atomic_output(path, "EAZY model") as tmp, h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["meta"] = json.dumps(self.meta, sort_keys=True)
            f.attrs["filters_res"] = self.filters_res
            for name in ("zgrid", "tempfilt", "tef", "pivot", "prior_mags", "prior_data"):
                f.create_dataset(name, data=np.asarray(getattr(self, name)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> EazyModel:
        """Read a model written by :meth:`save`.

        Raises
        ------
        ValueError
            If the file is not an EAZY model of this version.
        """
        path = os.fspath(path)
        try:
            f = h5py.File(path, "r")
        except OSError as err:
            raise ValueError(f"cannot read EAZY model {path}: {err}") from err
        with f:
            fmt = f.attrs.get("format")
            fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
            if fmt != FORMAT or int(f.attrs.get("version", -1)) != VERSION:
                raise ValueError(f"{path} is not a {FORMAT} version {VERSION} file "
                                 f"(format={fmt!r})")
            arrays = {k: f[k][()] for k in ("zgrid", "tempfilt", "tef", "pivot",
                                             "prior_mags", "prior_data")}
            meta = json.loads(f.attrs["meta"])
            res = f.attrs.get("filters_res", "")
        return cls(meta=meta, filters_res=res.decode() if isinstance(res, bytes) else res,
                   **arrays)


def redshift_grid(zmin: float, zmax: float, zstep: float) -> np.ndarray:
    """EAZY's grid: steps of ``zstep (1 + z)`` from ``zmin`` up to (not including) ``zmax``."""
    if not (zmax > zmin >= 0 and zstep > 0):
        raise ValueError(f"bad redshift grid zmin={zmin}, zmax={zmax}, zstep={zstep}")
    eazy = import_eazy()
    return np.asarray(eazy.utils.log_zgrid(zr=[zmin, zmax], dz=zstep), float)


def build_model(filters: Sequence[str], templates: str, *, zmin: float = 0.0,
                zmax: float = 3.0, zstep: float = 0.01, template_error_file: str = "",
                template_error_amplitude: float = 0.2, prior_file: str = "",
                prior_floor: float = 0.01, add_igm: bool = True,
                filter_search_dirs: Sequence[str] = (), n_proc: int = 0,
                meta: dict[str, Any] | None = None) -> EazyModel:
    """Build an :class:`EazyModel` (all inputs are checked before the template grid).

    Parameters
    ----------
    filters
        One filter name per band (see :mod:`rail.deepdisc.fit.filters`).
    templates
        Template specification (see :func:`load_templates`).
    zmin, zmax, zstep
        Redshift grid (:func:`redshift_grid`).
    template_error_file, template_error_amplitude
        EAZY template error function file (two columns: rest Angstrom, error) and its
        amplitude (``TEMP_ERR_A2``); '' for none.
    prior_file, prior_floor
        EAZY apparent-magnitude prior file (``prior_F160W_TAO.dat`` layout) and its floor;
        '' for none.
    add_igm
        Apply eazy's IGM attenuation (Asada et al. 2024 with CGM, eazy's default).
    n_proc
        Processes for the template grid (0: serial).

    Raises
    ------
    ValueError
        For filters without curves, unreadable template/error/prior files or a bad grid.
    """
    eazy = import_eazy()
    curves = [c.resampled() for c in
              resolve_filters(filters, filter_search_dirs, what="EAZY filters")]
    zgrid = redshift_grid(zmin, zmax, zstep)
    tspec = load_templates(templates)
    pivot = np.array([c.pivot for c in curves])
    tef = np.zeros((zgrid.size, len(curves)))
    if template_error_file:
        if not os.path.isfile(template_error_file):
            raise ValueError(f"template error file {template_error_file} does not exist")
        try:
            te = eazy.templates.TemplateError(file=template_error_file,
                                              filter_wavelengths=pivot,
                                              scale=float(template_error_amplitude))
            tef = np.array([te(z) for z in zgrid], float)
        except Exception as err:
            raise ValueError(f"cannot read template error file {template_error_file}: "
                             f"{err}") from err
    prior_mags, prior_data = np.zeros(0), np.zeros((zgrid.size, 0))
    if prior_file:
        if not os.path.isfile(prior_file):
            raise ValueError(f"prior file {prior_file} does not exist")
        try:
            prior_mags, prior_data = eazy.photoz.PhotoZ.read_prior(
                zgrid=zgrid, prior_file=os.path.abspath(prior_file), prior_floor=prior_floor)
        except Exception as err:
            raise ValueError(f"cannot read prior file {prior_file}: {err}") from err
    fdefs = [_filter_definition(eazy, c) for c in curves]
    tempfilt = template_grid(tspec.templates, zgrid, fdefs, add_igm=add_igm,
                             n_proc=n_proc).astype(np.float32)
    if not np.all(np.isfinite(tempfilt)):
        raise ValueError("the EAZY template grid holds non-finite fluxes")
    info = {
        "filters": [{"name": c.name, "source": c.source, "pivot": float(c.pivot)}
                    for c in curves],
        "templates": [{"name": n, "source": s}
                      for n, s in zip(tspec.names, tspec.sources, strict=True)],
        "templates_file": tspec.description,
        "template_error_file": template_error_file,
        "template_error_amplitude": float(template_error_amplitude),
        "prior_file": prior_file, "prior_floor": float(prior_floor),
        "zmin": float(zmin), "zmax": float(zmax), "zstep": float(zstep),
        "add_igm": bool(add_igm), "eazy_version": _eazy_version(),
    }
    info.update(meta or {})
    return EazyModel(zgrid=zgrid, tempfilt=tempfilt, tef=tef, pivot=pivot,
                     prior_mags=np.asarray(prior_mags, float),
                     prior_data=np.asarray(prior_data, float), meta=info,
                     filters_res=eazy_res_text(curves))


def interp_conserve(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Flux-conserving resampling, vectorised; the same numbers as ``eazy.utils.interp_conserve``.

    Each output value is the trapezoid-rule mean of the linearly interpolated ``fp`` over the
    bin between the midpoints of neighbouring ``x`` (zero outside ``xp``). eazy-py loops over
    the output points in Python (or uses grizli's compiled version when installed); this is
    its cumulative-integral form.
    """
    mid = np.sort(np.concatenate([0.5 * (x[1:] + x[:-1]), [x[0], x[-1]]]))
    fmid = np.interp(mid, xp, fp, left=0.0, right=0.0)
    fmid[(mid > xp.max()) | (mid < xp.min())] = 0.0
    fullx = np.concatenate([xp, mid])
    fully = np.concatenate([fp, fmid])
    order = np.argsort(fullx, kind="stable")
    fullx, fully = fullx[order], fully[order]
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (fully[1:] + fully[:-1]) * np.diff(fullx))])
    # position of each midpoint in the merged grid (midpoints were appended after xp)
    where = np.empty(fullx.size, dtype=np.int64)
    where[order] = np.arange(fullx.size)
    at = cum[where[xp.size:]]
    return np.diff(at) / np.diff(mid)


def _integrate_template(args: tuple) -> np.ndarray:
    """(NZ, NFILT) fluxes of one template, as ``eazy.photoz._integrate_tempfilt`` (no MW)."""
    from scipy.integrate import trapezoid

    templ, zgrid, fdefs, add_igm = args
    eazy = import_eazy()
    rtype = eazy.photoz.TEMPLATE_REDSHIFT_TYPE
    out = np.zeros((zgrid.size, len(fdefs)))
    for iz, z in enumerate(zgrid):
        igmz = templ.igm_absorption(z=z) if add_igm else 1.0
        fnu = templ.flux_fnu(z=z, redshift_type=rtype) * igmz
        lz = templ.wave * (1 + z)
        for j, filt in enumerate(fdefs):
            tf = interp_conserve(filt.wave, lz, fnu)
            out[iz, j] = trapezoid(filt.throughput * tf / filt.wave, filt.wave) / filt.norm
    return out


def template_grid(templates: Sequence[Any], zgrid: np.ndarray, fdefs: Sequence[Any], *,
                  add_igm: bool = True, n_proc: int = 0) -> np.ndarray:
    """Templates through filters on the redshift grid, (NZ, NTEMP, NFILT).

    The same integral as eazy-py's ``TemplateGrid`` (template f_nu redshifted, times eazy's
    IGM transmission, flux-conserving resampling onto the filter's wavelengths, then
    ``int T f_nu / lambda dlambda / int T / lambda dlambda``), using the templates' own
    eazy methods; only the resampling loop is vectorised (see :func:`interp_conserve`).
    Milky-Way extinction is not applied (catalogs are assumed corrected).
    """
    tasks = [(t, np.asarray(zgrid, float), list(fdefs), add_igm) for t in templates]
    if n_proc > 0 and len(tasks) > 1:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        with ProcessPoolExecutor(n_proc, mp_context=get_context("spawn")) as pool:
            parts = list(pool.map(_integrate_template, tasks))
    else:
        parts = [_integrate_template(t) for t in tasks]
    return np.stack(parts, axis=1)


def _filter_definition(eazy, curve: FilterCurve):
    return eazy.filters.FilterDefinition(name=curve.name, wave=curve.wave,
                                         throughput=curve.throughput)


def _eazy_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("eazy")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def training_prior(z: np.ndarray, mag: np.ndarray, zgrid: np.ndarray, *,
                   mag_step: float = 0.25, sigma_mag: float = 0.5, sigma_z: float = 0.03,
                   floor: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """An apparent-magnitude prior p(z | m) from a training set, in EAZY's prior layout.

    EAZY's own priors (``prior_F160W_TAO.dat``) are p(z | m) of a mock catalog tabulated in
    magnitude steps; this builds the same table from the training objects: for each
    magnitude of a grid, a Gaussian kernel density in ln(1 + z) (width ``sigma_z``) of the
    objects weighted by a Gaussian in magnitude (width ``sigma_mag``). Each column is
    normalised on ``zgrid``, given the floor ``floor`` and normalised again, as
    ``PhotoZ.read_prior`` does.

    Returns
    -------
    prior_mags, prior_data
        Magnitude grid (M,) and p(z | m) (NZ, M).

    Raises
    ------
    ValueError
        If fewer than 10 training objects have a finite redshift and magnitude.
    """
    z = np.asarray(z, float)
    mag = np.asarray(mag, float)
    ok = np.isfinite(z) & np.isfinite(mag) & (z >= 0)
    if ok.sum() < 10:
        raise ValueError(f"a training prior needs at least 10 objects with a redshift and a "
                         f"prior-band magnitude; {ok.sum()} have both")
    z, mag = z[ok], mag[ok]
    lo, hi = np.floor(np.percentile(mag, 0.5)), np.ceil(np.percentile(mag, 99.5))
    mags = np.arange(lo, hi + mag_step / 2, mag_step)
    wm = np.exp(-0.5 * ((mags[None, :] - mag[:, None]) / sigma_mag) ** 2)  # (N, M)
    x = np.log1p(np.asarray(zgrid, float))
    data = np.zeros((x.size, mags.size))
    for start in range(0, z.size, 2000):
        sl = slice(start, start + 2000)
        kz = np.exp(-0.5 * ((x[None, :] - np.log1p(z[sl])[:, None]) / sigma_z) ** 2)
        data += kz.T @ wm[sl]
    w = _trapz_weights(np.asarray(zgrid, float))
    norm = w @ data
    data = np.where(norm > 0, data / np.where(norm > 0, norm, 1.0), 0.0)
    data = data + floor
    data /= (w @ data)[None, :]
    return mags, data


# --- fitting ---------------------------------------------------------------------------

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
        w = _trapz_weights(self.zgrid)
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


def _trapz_weights(zgrid: np.ndarray) -> np.ndarray:
    dz = np.diff(zgrid)
    w = np.zeros_like(zgrid, dtype=float)
    w[:-1] += 0.5 * dz
    w[1:] += 0.5 * dz
    return w


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
        raise ValueError(f"photometry has shape {fnu.shape} / {efnu_in.shape}; the model has "
                         f"{model.nfilt} filters")
    ok = np.isfinite(fnu) & np.isfinite(efnu_in) & (efnu_in > 0)
    f = np.where(ok, fnu, 0.0)
    e = np.sqrt(np.where(ok, efnu_in, 0.0) ** 2 + (sys_err * np.maximum(f, 0.0)) ** 2)
    f32, e32 = f.astype(np.float32), np.where(ok, e, -99.0).astype(np.float32)
    nz = model.zgrid.size
    renorm = True
    blocks = np.array_split(np.arange(nz), max(1, n_proc) * 4 if n_proc > 0 else 1)
    tasks = [(b, model.tempfilt, f32, e32, model.tef, model.zgrid, renorm)
             for b in blocks if b.size]
    chi2 = np.zeros((fnu.shape[0], nz), dtype=np.float32)
    if n_proc > 0 and fnu.shape[0] > 0:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        with ProcessPoolExecutor(n_proc, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_fit_redshifts, tasks))
    else:
        results = [_fit_redshifts(t) for t in tasks]
    for izs, c2 in results:
        chi2[:, izs] = c2
    nuse = ok.sum(axis=1)
    fitted = (chi2 != 0).any(axis=1) & np.isfinite(chi2).any(axis=1)
    # PhotoZ.compute_tef_lnp: -0.5 sum(log(var)) over valid bands, per redshift
    loglike = -chi2.astype(float) / 2.0
    fpos2 = np.maximum(f, 0.0) ** 2
    for iz in range(nz):
        var = np.where(ok, e**2 + model.tef[iz][None, :] ** 2 * fpos2, 1.0)
        loglike[:, iz] -= 0.5 * np.sum(np.where(ok, np.log(var), 0.0), axis=1)
    if prior_mag is not None and model.has_prior:
        loglike = loglike + prior_lnp(model, prior_mag)
    # PhotoZ.compute_lnp: no support where 1100 A (1+z) is redder than the reddest band
    reddest = np.max(ok * model.pivot[None, :], axis=1)
    red_mask = CLIP_WAVELENGTH * (1 + model.zgrid)[None, :] > reddest[:, None]
    loglike[red_mask] = -np.inf
    loglike[~np.isfinite(loglike)] = -1e20
    lnpmax = loglike.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        log_norm = np.log(np.exp(loglike - lnpmax) @ _trapz_weights(model.zgrid))[:, None]
    lnp = loglike - lnpmax - log_norm
    lnp[~np.isfinite(lnp)] = -1e20
    return FitResult(zgrid=model.zgrid, lnp=lnp, chi2=chi2.min(axis=1, initial=np.inf,
                                                               where=chi2 != 0),
                     n_filters=nuse, fitted=fitted)
