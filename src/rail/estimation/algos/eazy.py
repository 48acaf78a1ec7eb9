"""EAZY (eazy-py; Brammer, van Dokkum & Coppi 2008) as RAIL stages.

``EazyInformer`` builds the template grid once (templates through the filters on EAZY's
redshift grid, with eazy's IGM), the template error function and the optional magnitude
prior, and stores them in an HDF5 model (arrays only, no pickles; see
:class:`rail.deepdisc.fit.eazy_model.EazyModel`). ``EazyEstimator`` fits the photometry chunk by
chunk with eazy-py's non-negative least-squares kernel and returns ``qp.interp`` p(z) on
EAZY's grid, with ``zmode``, ``zmean``, ``zmedian``, ``zbest`` (eazy's maximum-likelihood
redshift, parabola-refined), ``chi2`` and ``n_filters`` in the ancil. The numerics live in
:mod:`rail.deepdisc.fit.eazy_model` and :mod:`rail.deepdisc.fit.eazyfit`, the options in
:mod:`rail.deepdisc.fit.eazy_options`; eazy-py is an optional dependency (extra ``eazy``)
imported only when a stage runs.

With no options the stages read RAIL's DC2 files (magnitude columns ``mag_<b>_lsst``,
non-detections 99 with RAIL's 1-sigma ``mag_limits``, ``DC2LSST_*`` filter curves) and fit
BPZ's CWW+SB4 templates (extended redward, see :mod:`rail.deepdisc.fit.templates`), which
pz-rail-base ships. ``templates_file`` takes EAZY ``.param`` files (comma-separated to
combine, e.g. fsps QSF 12 v3 with blue_sfhz_13) or a built-in set name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import qp
from rail.core.common_params import SharedParams
from rail.core.data import ModelHandle, TableHandle
from rail.estimation.estimator import CatEstimator
from rail.estimation.informer import CatInformer

from rail.deepdisc.errors import InputError, ModelFileError, OptionError
from rail.deepdisc.fit.eazy_model import EazyModel, build_model, training_prior
from rail.deepdisc.fit.eazy_options import EazyFitOptions, EazyModelOptions
from rail.deepdisc.fit.eazyfit import fit
from rail.deepdisc.fit.templates import BUILTIN_SETS
from rail.deepdisc.magnitudes import flux_to_mag, mag_to_flux
from rail.deepdisc.parallel import PartedEstimatorMixin, PartedQPHandle
from rail.deepdisc.stages import StrictConfigMixin
from rail.deepdisc.store.provenance import provenance


class EazyModelHandle(ModelHandle):
    """Model handle for :class:`rail.deepdisc.fit.eazy_model.EazyModel` files (HDF5, no pickle)."""

    suffix = "hdf5"
    interactive_type = "rail.deepdisc.fit.eazy_model.EazyModel"

    @classmethod
    def _open(cls, path: str, **kwargs: Any) -> EazyModel:
        return EazyModel.load(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any) -> EazyModel:
        return EazyModel.load(path)

    @classmethod
    def _write(cls, data: EazyModel, path: str, **kwargs: Any) -> None:
        if not isinstance(data, EazyModel):
            raise TypeError(f"EazyModelHandle can only write an EazyModel, not {type(data)}")
        data.save(path)


def _options(stage: Any, cls: type) -> Any:
    """The stage's own options, checked (an OptionError names the stage and option)."""
    try:
        return cls.from_mapping(stage.config)
    except OptionError as err:
        raise OptionError(f"{stage.name}: {err}") from None


def _check_columns(stage: Any, columns: list[str]) -> None:
    """Raise InputError naming input columns the stage needs but the input lacks."""
    handle = stage.get_handle("input", allow_missing=True)
    try:
        stage._check_column_names(handle, columns)
    except KeyError as err:
        source = handle.path if handle.path not in (None, "", "None") else "(in memory)"
        if len(err.args) < 2:  # the table has no group hdf5_groupname
            raise InputError(f"{stage.name}: input {source} has no group "
                             f"{stage.config.hdf5_groupname!r} (hdf5_groupname)") from None
        raise InputError(f"{stage.name}: input {source} lacks columns "
                         f"{sorted(err.args[1])} (bands/err_bands)") from None


class EazyInformer(StrictConfigMixin, CatInformer):
    """Build the EAZY template grid for a set of bands (the model EazyEstimator fits with).

    The training data are only checked for the band columns: EAZY's templates need no
    training; the training set gives the apparent-magnitude prior p(z | m) (EAZY needs one
    to break the Lyman/Balmer-break degeneracy; :func:`rail.deepdisc.fit.eazy_model.training_prior`)
    unless ``prior_file`` names an EAZY prior file or ``training_prior`` is False. Options:
    :class:`rail.deepdisc.fit.eazy_options.EazyModelOptions` (templates, template error,
    prior, grid step, IGM) and RAIL's ``zmin``, ``zmax``, ``bands``/``err_bands``,
    ``filter_list`` (one filter curve name per band) and ``redshift_col``.
    """

    path_options = EazyModelOptions.path_options()
    path_keywords = BUILTIN_SETS
    name = "EazyInformer"
    entrypoint_function = "inform"
    interactive_function = "eazy_informer"
    config_options = CatInformer.config_options.copy()
    config_options.update({k: SharedParams.copy_param(k) for k in (
        "redshift_col", "zmin", "zmax", "bands", "err_bands", "filter_list")})
    config_options.update(EazyModelOptions.stage_params())
    outputs = [("model", EazyModelHandle)]

    def run(self) -> None:
        c = self.config
        opts = _options(self, EazyModelOptions)
        if not (len(c.bands) == len(c.err_bands) == len(c.filter_list)):
            raise OptionError(f"{self.name}: bands ({len(c.bands)}), err_bands "
                              f"({len(c.err_bands)}) and filter_list ({len(c.filter_list)}) "
                              "must have the same length")
        _check_columns(self, list(c.bands) + list(c.err_bands))
        model = build_model(
            list(c.filter_list), opts.templates_file or "cww", zmin=c.zmin, zmax=c.zmax,
            zstep=opts.zstep, template_error_file=opts.template_error_file,
            template_error_amplitude=opts.template_error_amplitude,
            prior_file=opts.prior_file, prior_floor=opts.prior_floor, add_igm=opts.add_igm,
            n_proc=opts.n_proc,
            meta={"bands": list(c.bands), "err_bands": list(c.err_bands),
                  "prior": "file" if opts.prior_file else "none",
                  "prior_band": opts.prior_band if opts.prior_file else "",
                  "provenance": provenance(c.to_dict(), f"rail.estimation.algos.eazy."
                                                         f"{self.name}")})
        if not opts.prior_file and opts.training_prior:
            self._add_training_prior(model, opts)
        self.model = model
        self.add_data("model", model)

    def _add_training_prior(self, model: EazyModel, opts: EazyModelOptions) -> None:
        c = self.config
        data = self.get_data("input")
        if c.hdf5_groupname:
            data = data[c.hdf5_groupname]
        missing = [k for k in (c.redshift_col, opts.prior_band) if k not in data]
        if missing:
            raise InputError(f"{self.name}: the training prior needs columns {missing} in the "
                             "training data (or set training_prior=False or prior_file)")
        mag = np.asarray(data[opts.prior_band], float)
        if opts.input_type == "flux":
            mag = flux_to_mag(mag, opts.flux_zeropoint)
        else:
            mag = np.where((mag > 0) & (mag < 50), mag, np.nan)  # drop 99 / -99 sentinels
        model.prior_mags, model.prior_data = training_prior(
            np.asarray(data[c.redshift_col], float), mag, model.zgrid, floor=opts.prior_floor)
        model.meta.update(prior="training", prior_band=opts.prior_band)


class EazyEstimator(StrictConfigMixin, PartedEstimatorMixin, CatEstimator):
    """Fit photometry with an EAZY model; p(z) as ``qp.interp`` on EAZY's redshift grid.

    ``input_type`` says whether ``bands``/``err_bands`` are AB magnitudes and their errors
    (RAIL's convention: ``nondetect_val`` marks non-detections, fitted as zero flux with the
    band's 1-sigma ``mag_limits`` as error; ``nonobserved_val`` or non-finite values mark
    bands without data) or linear fluxes and errors in a unit whose AB zero point is
    ``flux_zeropoint`` (31.4 for nJy; non-finite values mark missing data; negative fluxes
    are used as measured). Objects with no usable band get a flat p(z) and NaN point
    estimates. Options: :class:`rail.deepdisc.fit.eazy_options.EazyFitOptions` and RAIL's
    ``bands``, ``err_bands``, ``nondetect_val``, ``nonobserved_val`` and ``mag_limits``.
    """

    name = "EazyEstimator"
    entrypoint_function = "estimate"
    interactive_function = "eazy_estimator"
    config_options = CatEstimator.config_options.copy()
    config_options.update({k: SharedParams.copy_param(k) for k in (
        "bands", "err_bands", "nondetect_val", "nonobserved_val", "mag_limits")})
    config_options.update(EazyFitOptions.stage_params())
    inputs = [("model", EazyModelHandle), ("input", TableHandle)]
    outputs = [("output", PartedQPHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        super().__init__(args, **kwargs)
        self._opts: EazyFitOptions | None = None

    def open_model(self, **kwargs: Any) -> EazyModel:
        model = super().open_model(**kwargs)
        if isinstance(model, str):  # pragma: no cover - defensive
            model = EazyModel.load(model)
        if not isinstance(model, EazyModel):
            raise ModelFileError(f"{self.name}: the model must be an EazyModel (from "
                                 f"EazyInformer), got {type(model).__name__}")
        self.model = model
        return model

    def _check_config(self) -> None:
        c, m = self.config, self.model
        self._opts = _options(self, EazyFitOptions)
        if not (len(c.bands) == len(c.err_bands) == m.nfilt):
            raise OptionError(f"{self.name}: bands ({len(c.bands)}) and err_bands "
                              f"({len(c.err_bands)}) must match the model's {m.nfilt} filters "
                              f"({[f['name'] for f in m.meta.get('filters', [])]})")
        if self._opts.input_type == "mag":
            missing = [b for b in c.bands if b not in c.mag_limits]
            if missing:
                raise OptionError(f"{self.name}: mag_limits has no 1-sigma limit for "
                                  f"{missing}, needed for their non-detections")
        if m.has_prior and self._prior_band() not in c.bands:
            raise OptionError(f"{self.name}: the model has a magnitude prior "
                              f"({m.meta.get('prior')}, band {self._prior_band()!r}); set "
                              "prior_band to one of bands")
        _check_columns(self, list(c.bands) + list(c.err_bands))

    def _prior_band(self) -> str:
        return self._opts.prior_band or self.model.meta.get("prior_band", "")

    def _initialize_run(self) -> None:
        super()._initialize_run()
        self._check_config()

    def _photometry(self, data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        c, zp = self.config, self._opts.flux_zeropoint
        cols = [np.asarray(data[b], float) for b in c.bands]
        errs = [np.asarray(data[e], float) for e in c.err_bands]
        if self._opts.input_type == "flux":
            return np.stack(cols, axis=1), np.stack(errs, axis=1)
        fnu, efnu = [], []
        for band, mag, err in zip(c.bands, cols, errs, strict=True):
            nondet = np.isnan(mag) if np.isnan(c.nondetect_val) else \
                np.isclose(mag, c.nondetect_val)
            unobs = ~np.isfinite(mag) | np.isclose(mag, c.nonobserved_val)
            unobs &= ~nondet
            det = ~nondet & ~unobs & np.isfinite(err) & (err > 0)
            f = np.full(mag.shape, np.nan)
            e = np.full(mag.shape, np.nan)
            f[det] = mag_to_flux(mag[det], zp)
            e[det] = f[det] * err[det] * np.log(10.0) / 2.5
            f[nondet] = 0.0
            e[nondet] = mag_to_flux(float(c.mag_limits[band]), zp)
            fnu.append(f)
            efnu.append(e)
        return np.stack(fnu, axis=1), np.stack(efnu, axis=1)

    def _process_chunk(self, start: int, end: int, data: Any, first: bool) -> None:
        opts = self._opts
        fnu, efnu = self._photometry(data)
        prior_mag = None
        if self.model.has_prior:
            k = list(self.config.bands).index(self._prior_band())
            prior_mag = flux_to_mag(fnu[:, k], opts.flux_zeropoint)
        res = fit(self.model, fnu, efnu, sys_err=opts.sys_err, prior_mag=prior_mag,
                  n_proc=opts.n_proc)
        pdf = res.pdf
        pdf[~res.fitted] = 1.0  # no usable band: flat p(z)
        ens = qp.Ensemble(qp.interp, data={"xvals": res.zgrid, "yvals": pdf})
        ens.set_ancil({"zmode": res.zmode, "zmean": res.zmean, "zmedian": res.zmedian,
                       "zbest": res.zbest, "chi2": res.chi2,
                       "n_filters": res.n_filters.astype(np.int32)})
        self._do_chunk_output(ens, start, end, first, data=data)
