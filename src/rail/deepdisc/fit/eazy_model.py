"""The EAZY model: templates through the filters on EAZY's grid, stored as plain arrays.

The model (:class:`EazyModel`) is what eazy-py's ``PhotoZ`` builds before fitting: the
templates integrated through the filters on EAZY's redshift grid (``TemplateGrid``, with
eazy's IGM), the template error function evaluated on that grid (``TemplateError``) and the
apparent-magnitude prior (``PhotoZ.read_prior``, or :func:`training_prior` from a training
set). It is built once (:func:`build_model`) and stored as plain arrays in an HDF5 file (no
pickles), together with the filter curves as an EAZY ``FILTER.RES`` text and the provenance
of every template and filter. :mod:`rail.deepdisc.fit.eazyfit` fits photometry with it.

eazy-py is an optional dependency (``pip install 'pz-rail-deepdisc[eazy]'``) imported only
when a model is built or used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from rail.deepdisc.errors import InputError, ModelFileError, OptionError
from rail.deepdisc.fit.eazy_templates import import_eazy, load_templates
from rail.deepdisc.spectra.bands import FilterMap
from rail.deepdisc.spectra.filters import FilterCurve, eazy_res_text, resolve_filters
from rail.deepdisc.store.file_format import check_format

FORMAT = "deepdisc-eazy-model"
VERSION = 1
#: the arrays of a model file
_ARRAYS = ("zgrid", "tempfilt", "tef", "pivot", "prior_mags", "prior_data")
#: arrays added later, with their value in files written before them
_OPTIONAL_ARRAYS = ("zeropoints",)


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
    zeropoints
        (NFILT,) factors on the fluxes and errors of each band before fitting (EAZY's zero
        points; :mod:`rail.deepdisc.fit.eazy_zeropoints`); ones when none were fitted.
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
    zeropoints: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.zeropoints is None:
            self.zeropoints = np.ones(self.nfilt)

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
            for name in _ARRAYS + _OPTIONAL_ARRAYS:
                f.create_dataset(name, data=np.asarray(getattr(self, name)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> EazyModel:
        """Read a model written by :meth:`save`.

        Raises
        ------
        ModelFileError
            If the file is not an EAZY model of this version.
        """
        path = os.fspath(path)
        try:
            f = h5py.File(path, "r")
        except OSError as err:
            raise ModelFileError(f"cannot read EAZY model {path}: {err}") from err
        with f:
            check_format(path, f.attrs.get("format"), f.attrs.get("version"), FORMAT, VERSION,
                         f"{FORMAT} file", ModelFileError)
            try:
                arrays = {k: f[k][()] for k in _ARRAYS}
                arrays.update({k: f[k][()] for k in _OPTIONAL_ARRAYS if k in f})
                meta = json.loads(f.attrs["meta"])
            except (KeyError, ValueError) as err:
                raise ModelFileError(f"EAZY model {path} is incomplete or damaged: {err}") \
                    from None
            res = f.attrs.get("filters_res", "")
        return cls(meta=meta, filters_res=res.decode() if isinstance(res, bytes) else res,
                   **arrays)


def redshift_grid(zmin: float, zmax: float, zstep: float) -> np.ndarray:
    """EAZY's grid: steps of ``zstep (1 + z)`` from ``zmin`` up to (not including) ``zmax``."""
    if not (zmax > zmin >= 0 and zstep > 0):
        raise OptionError(f"bad redshift grid zmin={zmin}, zmax={zmax}, zstep={zstep}: it "
                          "needs zmax > zmin >= 0 and zstep > 0")
    eazy = import_eazy()
    return np.asarray(eazy.utils.log_zgrid(zr=[zmin, zmax], dz=zstep), float)


def build_model(filters: Sequence[str], templates: str, *, zmin: float = 0.0,
                zmax: float = 3.0, zstep: float = 0.01, template_error_file: str = "",
                template_error_amplitude: float = 0.2, prior_file: str = "",
                prior_floor: float = 0.01, add_igm: bool = True,
                filter_search_dirs: Sequence[str] = (), n_workers: int = 1,
                meta: dict[str, Any] | None = None,
                band_filters: FilterMap | None = None) -> EazyModel:
    """Build an :class:`EazyModel` (all inputs are checked before the template grid).

    Parameters
    ----------
    filters
        One filter name per band (see :mod:`rail.deepdisc.spectra.filters`).
    templates
        Template specification (see
        :func:`rail.deepdisc.fit.eazy_templates.load_templates`).
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
    n_workers
        Processes for the template grid (1: this process).
    band_filters
        The filters of bands that a survey file defines (band -> filter, e.g. a photometry
        table's, :func:`rail.deepdisc.store.tables.table_filters`).

    Raises
    ------
    OptionError, InputError
        For filters without curves, a bad grid or unreadable template/error/prior files.
    """
    eazy = import_eazy()
    curves = [c.resampled() for c in
              resolve_filters(filters, filter_search_dirs, what="EAZY filters",
                              filters=band_filters)]
    zgrid = redshift_grid(zmin, zmax, zstep)
    tspec = load_templates(templates)
    pivot = np.array([c.pivot for c in curves])
    tef = _template_error(eazy, template_error_file, template_error_amplitude, pivot, zgrid)
    prior_mags, prior_data = _prior_file(eazy, prior_file, prior_floor, zgrid)
    fdefs = [_filter_definition(eazy, c) for c in curves]
    tempfilt = template_grid(tspec.templates, zgrid, fdefs, add_igm=add_igm,
                             n_workers=n_workers).astype(np.float32)
    if not np.all(np.isfinite(tempfilt)):
        raise InputError(f"the EAZY template grid of {tspec.description} holds non-finite "
                         "fluxes")
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


def read_template_error(path: str) -> tuple[np.ndarray, np.ndarray]:
    """An EAZY template error file's (rest wavelength, error) columns.

    Raises
    ------
    InputError
        If the file is missing or not two numeric columns of positive wavelengths, naming it.
    """
    if not os.path.isfile(path):
        raise InputError(f"template error file {path} does not exist")
    try:
        data = np.loadtxt(path, ndmin=2)
    except ValueError as err:
        raise InputError(f"template error file {path}: not numeric columns ({err})") from None
    if data.shape[1] < 2 or data.shape[0] < 2 or not np.all(np.isfinite(data[:, :2])) \
            or not np.all(data[:, 0] > 0):
        raise InputError(f"template error file {path}: expected two columns (rest "
                         "wavelength in Angstrom > 0, error), finite")
    return data[:, 0], data[:, 1]


def _template_error(eazy: Any, path: str, amplitude: float, pivot: np.ndarray,
                    zgrid: np.ndarray) -> np.ndarray:
    """(NZ, NFILT) EAZY template error function times its amplitude (zeros without one)."""
    if not path:
        return np.zeros((zgrid.size, pivot.size))
    read_template_error(path)
    try:
        te = eazy.templates.TemplateError(file=path, filter_wavelengths=pivot,
                                          scale=float(amplitude))
        return np.array([te(z) for z in zgrid], float)
    except Exception as err:  # eazy raises many kinds on bad files
        raise InputError(f"cannot read template error file {path}: {err}") from err


def _prior_file(eazy: Any, path: str, floor: float, zgrid: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """An EAZY prior file on the grid (``PhotoZ.read_prior``); empty without one."""
    if not path:
        return np.zeros(0), np.zeros((zgrid.size, 0))
    if not os.path.isfile(path):
        raise InputError(f"prior file {path} does not exist")
    try:
        return eazy.photoz.PhotoZ.read_prior(zgrid=zgrid, prior_file=os.path.abspath(path),
                                             prior_floor=floor)
    except Exception as err:  # eazy raises many kinds on bad files
        raise InputError(f"cannot read prior file {path}: {err}") from err


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
                  add_igm: bool = True, n_workers: int = 1) -> np.ndarray:
    """Templates through filters on the redshift grid, (NZ, NTEMP, NFILT).

    The same integral as eazy-py's ``TemplateGrid`` (template f_nu redshifted, times eazy's
    IGM transmission, flux-conserving resampling onto the filter's wavelengths, then
    ``int T f_nu / lambda dlambda / int T / lambda dlambda``), using the templates' own
    eazy methods; only the resampling loop is vectorised (see :func:`interp_conserve`).
    Milky-Way extinction is not applied (catalogs are assumed corrected).
    """
    tasks = [(t, np.asarray(zgrid, float), list(fdefs), add_igm) for t in templates]
    if n_workers > 1 and len(tasks) > 1:
        from rail.deepdisc.workers import process_pool

        with process_pool(n_workers) as pool:
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
    InputError
        If fewer than 10 training objects have a finite redshift and magnitude.
    """
    z = np.asarray(z, float)
    mag = np.asarray(mag, float)
    ok = np.isfinite(z) & np.isfinite(mag) & (z >= 0)
    if ok.sum() < 10:
        raise InputError(f"a training prior needs at least 10 objects with a redshift and a "
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
    w = trapz_weights(np.asarray(zgrid, float))
    norm = w @ data
    data = np.where(norm > 0, data / np.where(norm > 0, norm, 1.0), 0.0)
    data = data + floor
    data /= (w @ data)[None, :]
    return mags, data


def trapz_weights(zgrid: np.ndarray) -> np.ndarray:
    """Trapezoid-rule weights of a grid: ``w @ f`` integrates ``f`` over the grid."""
    dz = np.diff(zgrid)
    w = np.zeros_like(zgrid, dtype=float)
    w[:-1] += 0.5 * dz
    w[1:] += 0.5 * dz
    return w
