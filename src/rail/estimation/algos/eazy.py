"""EAZY (eazy-py; Brammer, van Dokkum & Coppi 2008) as RAIL stages.

``EazyInformer`` builds the template grid once (templates through the filters on EAZY's
redshift grid, with eazy's IGM), the template error function and the optional magnitude
prior, and stores them in an HDF5 model (arrays only, no pickles; see
:class:`rail.deepdisc.fit.eazyfit.EazyModel`). ``EazyEstimator`` fits the photometry chunk by
chunk with eazy-py's non-negative least-squares kernel and returns ``qp.interp`` p(z) on
EAZY's grid, with ``zmode``, ``zmean``, ``zmedian``, ``zbest`` (eazy's maximum-likelihood
redshift, parabola-refined), ``chi2`` and ``n_filters`` in the ancil. The numerics live in
:mod:`rail.deepdisc.fit.eazyfit`; eazy-py is an optional dependency (extra ``eazy``) imported
only when a stage runs.

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
from ceci.config import StageParameter as Param
from rail.core.common_params import SharedParams
from rail.core.data import ModelHandle, QPHandle, TableHandle
from rail.estimation.estimator import CatEstimator
from rail.estimation.informer import CatInformer

from rail.deepdisc.fit.eazyfit import EazyModel, build_model, fit, training_prior
from rail.deepdisc.stages import StrictConfigMixin
from rail.deepdisc.store.provenance import provenance

INPUT_TYPES = ("mag", "flux")


class EazyModelHandle(ModelHandle):
    """Model handle for :class:`rail.deepdisc.fit.eazyfit.EazyModel` files (HDF5, no pickle)."""

    suffix = "hdf5"
    interactive_type = "rail.deepdisc.fit.eazyfit.EazyModel"

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


def _check_columns(stage: Any, columns: list[str]) -> None:
    """Raise ValueError naming input columns the stage needs but the input lacks."""
    handle = stage.get_handle("input", allow_missing=True)
    try:
        stage._check_column_names(handle, columns)
    except KeyError as err:
        missing = sorted(err.args[1]) if len(err.args) > 1 else err.args
        raise ValueError(f"{stage.name}: input {handle.path or '(in memory)'} lacks columns "
                         f"{missing} (bands/err_bands)") from None


class EazyInformer(StrictConfigMixin, CatInformer):
    """Build the EAZY template grid for a set of bands (the model EazyEstimator fits with).

    The training data are only checked for the band columns: EAZY's templates need no
    training; the training set gives the apparent-magnitude prior p(z | m) (EAZY needs one
    to break the Lyman/Balmer-break degeneracy; :func:`rail.deepdisc.fit.eazyfit.training_prior`)
    unless ``prior_file`` names an EAZY prior file or ``training_prior`` is False. Config:
    ``templates_file`` (EAZY .param file(s) or a built-in set: ``cww``, ``cosmos``,
    ``oracle``; '' = ``cww``), ``template_error_file`` and ``template_error_amplitude``,
    ``prior_file``/``training_prior``/``prior_band``/``prior_floor``, ``zmin``, ``zmax``,
    ``zstep`` (grid step in dz/(1+z)), ``add_igm``, ``bands``/``err_bands``, ``input_type``
    and ``filter_list`` (one filter curve name per band).
    """

    path_options = ("templates_file", "template_error_file", "prior_file")
    path_keywords = ("cww", "cosmos", "oracle")
    name = "EazyInformer"
    entrypoint_function = "inform"
    interactive_function = "eazy_informer"
    config_options = CatInformer.config_options.copy()
    config_options.update(
        templates_file=Param(str, "", msg="EAZY templates .param file(s), comma-separated, "
                                          "or a built-in set (cww, cosmos, oracle); '' = cww"),
        template_error_file=Param(str, "", msg="EAZY template error function file ('' none)"),
        template_error_amplitude=Param(float, 0.2, msg="template error amplitude (TEMP_ERR_A2)"),
        prior_file=Param(str, "", msg="EAZY apparent-magnitude prior file ('': see "
                                      "training_prior)"),
        training_prior=Param(bool, True, msg="without prior_file, build p(z | m) from the "
                                             "training set's redshifts and prior_band"),
        prior_band=SharedParams.copy_param("ref_band"),
        prior_floor=Param(float, 0.01, msg="floor of the normalised prior (PRIOR_FLOOR)"),
        redshift_col=SharedParams.copy_param("redshift_col"),
        input_type=Param(str, "mag", msg=f"what bands hold: one of {INPUT_TYPES}"),
        flux_zeropoint=Param(float, 31.4, msg="AB magnitude of a flux of 1 in the flux "
                                              "columns (31.4 for nJy)"),
        zmin=SharedParams.copy_param("zmin"),
        zmax=SharedParams.copy_param("zmax"),
        zstep=Param(float, 0.01, msg="redshift grid step in dz / (1 + z) (Z_STEP)"),
        add_igm=Param(bool, True, msg="apply eazy's IGM attenuation to the templates"),
        bands=SharedParams.copy_param("bands"),
        err_bands=SharedParams.copy_param("err_bands"),
        filter_list=SharedParams.copy_param("filter_list"),
        n_proc=Param(int, 0, msg="processes for the template grid (0: serial)"),
    )
    outputs = [("model", EazyModelHandle)]

    def run(self) -> None:
        c = self.config
        if not (len(c.bands) == len(c.err_bands) == len(c.filter_list)):
            raise ValueError(f"{self.name}: bands ({len(c.bands)}), err_bands "
                             f"({len(c.err_bands)}) and filter_list ({len(c.filter_list)}) "
                             "must have the same length")
        if c.input_type not in INPUT_TYPES:
            raise ValueError(f"{self.name}: input_type must be one of {INPUT_TYPES}, got "
                             f"{c.input_type!r}")
        _check_columns(self, list(c.bands) + list(c.err_bands))
        model = build_model(
            list(c.filter_list), c.templates_file or "cww", zmin=c.zmin, zmax=c.zmax,
            zstep=c.zstep, template_error_file=c.template_error_file,
            template_error_amplitude=c.template_error_amplitude, prior_file=c.prior_file,
            prior_floor=c.prior_floor, add_igm=c.add_igm, n_proc=c.n_proc,
            meta={"bands": list(c.bands), "err_bands": list(c.err_bands),
                  "prior": "file" if c.prior_file else "none",
                  "prior_band": c.prior_band if c.prior_file else "",
                  "provenance": provenance(c.to_dict(), f"rail.estimation.algos.eazy."
                                                         f"{self.name}")})
        if not c.prior_file and c.training_prior:
            self._add_training_prior(model)
        self.model = model
        self.add_data("model", model)

    def _add_training_prior(self, model: EazyModel) -> None:
        c = self.config
        data = self.get_data("input")
        if c.hdf5_groupname:
            data = data[c.hdf5_groupname]
        missing = [k for k in (c.redshift_col, c.prior_band) if k not in data]
        if missing:
            raise ValueError(f"{self.name}: the training prior needs columns {missing} in the "
                             "training data (or set training_prior=False or prior_file)")
        mag = np.asarray(data[c.prior_band], float)
        if c.input_type == "flux":
            with np.errstate(divide="ignore", invalid="ignore"):
                mag = np.where(mag > 0, c.flux_zeropoint - 2.5 * np.log10(mag), np.nan)
        else:
            mag = np.where((mag > 0) & (mag < 50), mag, np.nan)  # drop 99 / -99 sentinels
        model.prior_mags, model.prior_data = training_prior(
            np.asarray(data[c.redshift_col], float), mag, model.zgrid, floor=c.prior_floor)
        model.meta.update(prior="training", prior_band=c.prior_band)


class EazyEstimator(StrictConfigMixin, CatEstimator):
    """Fit photometry with an EAZY model; p(z) as ``qp.interp`` on EAZY's redshift grid.

    ``input_type`` says whether ``bands``/``err_bands`` are AB magnitudes and their errors
    (RAIL's convention: ``nondetect_val`` marks non-detections, fitted as zero flux with the
    band's 1-sigma ``mag_limits`` as error; ``nonobserved_val`` or non-finite values mark
    bands without data) or linear fluxes and errors in a unit whose AB zero point is
    ``flux_zeropoint`` (31.4 for nJy; non-finite values mark missing data; negative fluxes
    are used as measured). Objects with no usable band get a flat p(z) and NaN point
    estimates.
    """

    name = "EazyEstimator"
    entrypoint_function = "estimate"
    interactive_function = "eazy_estimator"
    config_options = CatEstimator.config_options.copy()
    config_options.update(
        bands=SharedParams.copy_param("bands"),
        err_bands=SharedParams.copy_param("err_bands"),
        input_type=Param(str, "mag", msg=f"what bands hold: one of {INPUT_TYPES}"),
        flux_zeropoint=Param(float, 31.4, msg="AB magnitude of a flux of 1 in the flux "
                                              "columns (31.4 for nJy)"),
        nondetect_val=SharedParams.copy_param("nondetect_val"),
        nonobserved_val=SharedParams.copy_param("nonobserved_val"),
        mag_limits=SharedParams.copy_param("mag_limits"),
        sys_err=Param(float, 0.01, msg="fractional systematic flux error (SYS_ERR)"),
        prior_band=Param(str, "", msg="column whose magnitude the model's prior uses "
                                      "('' = the model's prior_band)"),
        n_proc=Param(int, 0, msg="processes over the redshift grid (0: this one)"),
    )
    inputs = [("model", EazyModelHandle), ("input", TableHandle)]
    outputs = [("output", QPHandle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        super().__init__(args, **kwargs)
        self._checked = False

    def open_model(self, **kwargs: Any) -> EazyModel:
        model = super().open_model(**kwargs)
        if isinstance(model, str):  # pragma: no cover - defensive
            model = EazyModel.load(model)
        if not isinstance(model, EazyModel):
            raise TypeError(f"{self.name}: the model must be an EazyModel (from "
                            f"EazyInformer), got {type(model).__name__}")
        self.model = model
        return model

    def _check_config(self) -> None:
        c, m = self.config, self.model
        if c.input_type not in INPUT_TYPES:
            raise ValueError(f"{self.name}: input_type must be one of {INPUT_TYPES}, got "
                             f"{c.input_type!r}")
        if not (len(c.bands) == len(c.err_bands) == m.nfilt):
            raise ValueError(f"{self.name}: bands ({len(c.bands)}) and err_bands "
                             f"({len(c.err_bands)}) must match the model's {m.nfilt} filters "
                             f"({[f['name'] for f in m.meta.get('filters', [])]})")
        if c.input_type == "mag":
            missing = [b for b in c.bands if b not in c.mag_limits]
            if missing:
                raise ValueError(f"{self.name}: mag_limits has no 1-sigma limit for "
                                 f"{missing}, needed for their non-detections")
        if m.has_prior and self._prior_band() not in c.bands:
            raise ValueError(f"{self.name}: the model has a magnitude prior "
                             f"({m.meta.get('prior')}, band {self._prior_band()!r}); set "
                             "prior_band to one of bands")
        cols = list(c.bands) + list(c.err_bands)
        _check_columns(self, cols)

    def _prior_band(self) -> str:
        return self.config.prior_band or self.model.meta.get("prior_band", "")

    def _initialize_run(self) -> None:
        super()._initialize_run()
        self._check_config()

    def _photometry(self, data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        zp = float(c.flux_zeropoint)
        cols = [np.asarray(data[b], float) for b in c.bands]
        errs = [np.asarray(data[e], float) for e in c.err_bands]
        if c.input_type == "flux":
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
            f[det] = 10.0 ** (-0.4 * (mag[det] - zp))
            e[det] = f[det] * err[det] * np.log(10.0) / 2.5
            f[nondet] = 0.0
            e[nondet] = 10.0 ** (-0.4 * (float(c.mag_limits[band]) - zp))
            fnu.append(f)
            efnu.append(e)
        return np.stack(fnu, axis=1), np.stack(efnu, axis=1)

    def _process_chunk(self, start: int, end: int, data: Any, first: bool) -> None:
        c = self.config
        fnu, efnu = self._photometry(data)
        prior_mag = None
        if self.model.has_prior:
            k = list(c.bands).index(self._prior_band())
            f = fnu[:, k]
            with np.errstate(divide="ignore", invalid="ignore"):
                prior_mag = np.where(f > 0, c.flux_zeropoint - 2.5 * np.log10(f), np.nan)
        res = fit(self.model, fnu, efnu, sys_err=c.sys_err, prior_mag=prior_mag,
                  n_proc=c.n_proc)
        pdf = res.pdf
        pdf[~res.fitted] = 1.0  # no usable band: flat p(z)
        ens = qp.Ensemble(qp.interp, data={"xvals": res.zgrid, "yvals": pdf})
        ens.set_ancil({"zmode": res.zmode, "zmean": res.zmean, "zmedian": res.zmedian,
                       "zbest": res.zbest, "chi2": res.chi2,
                       "n_filters": res.n_filters.astype(np.int32)})
        self._do_chunk_output(ens, start, end, first, data=data)

