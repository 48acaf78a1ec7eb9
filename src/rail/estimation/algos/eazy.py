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
BPZ's CWW+SB4 templates (extended redward, see :mod:`rail.deepdisc.spectra.templates`), which
pz-rail-base ships. ``templates_file`` takes EAZY ``.param`` files (comma-separated to
combine, e.g. fsps QSF 12 v3 with blue_sfhz_13) or a built-in set name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rail.core.common_params import SharedParams
from rail.core.data import ModelHandle, QPHandle, TableHandle
from rail.core.stage import RailStage
from rail.estimation.estimator import CatEstimator
from rail.estimation.informer import CatInformer

from rail.deepdisc.errors import InputError, ModelFileError, OptionError
from rail.deepdisc.fit.eazy_data import SET_NAMES, resolve_template_set
from rail.deepdisc.fit.eazy_model import EazyModel, build_model
from rail.deepdisc.fit.eazy_options import EazyFitOptions, EazyModelOptions
from rail.deepdisc.fit.eazy_training import label_training, prior_magnitudes, train_on_labels
from rail.deepdisc.fit.eazyfit import catalog_fluxes, fit
from rail.deepdisc.folds import FoldOptions
from rail.deepdisc.magnitudes import flux_to_mag
from rail.deepdisc.options import copied_columns
from rail.deepdisc.parallel import PartedEstimatorMixin, PartedQPHandle
from rail.deepdisc.spectra.template_sets import BUILTIN_SETS
from rail.deepdisc.stages import StrictConfigMixin
from rail.deepdisc.store.provenance import provenance
from rail.deepdisc.store.tables import table_filters
from rail.deepdisc.workers import worker_count


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
    ``filter_list`` (one filter curve name per band) and ``redshift_col``. Bands that a
    survey file defines (a curve of its own) are found in the training table's ``filters``
    attribute, which ``ScenePhotometry`` writes (:mod:`rail.deepdisc.spectra.bands`).
    """

    path_options = EazyModelOptions.path_options()
    path_keywords = (*BUILTIN_SETS, *SET_NAMES, "auto")
    name = "EazyInformer"
    entrypoint_function = "inform"
    interactive_function = "eazy_informer"
    config_options = CatInformer.config_options.copy()
    config_options.update({k: SharedParams.copy_param(k) for k in (
        "redshift_col", "zmin", "zmax", "bands", "err_bands", "filter_list", "nondetect_val",
        "nonobserved_val", "mag_limits")})
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
        choice = resolve_template_set(opts.templates_file, opts.template_error_file,
                                      opts.eazy_photoz_dir)
        # bands a survey file defines: their curves travel in the photometry table's file
        band_filters = table_filters(self.get_handle("input", allow_missing=True).path)
        model = build_model(
            list(c.filter_list), choice.templates, zmin=c.zmin, zmax=c.zmax,
            zstep=opts.zstep, template_error_file=choice.template_error_file,
            template_error_amplitude=opts.template_error_amplitude,
            prior_file=opts.prior_file, prior_floor=opts.prior_floor, add_igm=opts.add_igm,
            n_workers=worker_count(opts.n_workers), band_filters=band_filters,
            meta={"bands": list(c.bands), "err_bands": list(c.err_bands),
                  "template_set": choice.name, "template_set_description": choice.description,
                  "prior": "file" if opts.prior_file else "none",
                  "prior_band": opts.prior_band if opts.prior_file else "",
                  "provenance": provenance(c.to_dict(), f"rail.estimation.algos.eazy."
                                                         f"{self.name}")})
        model = self._train_on_labels(model, opts)
        self.model = model
        self.add_data("model", model)

    def _train_on_labels(self, model: EazyModel, opts: EazyModelOptions) -> EazyModel:
        """The prior (unless a prior file is given) and the zero points, from the training
        objects with a redshift."""
        c = self.config
        settings = label_training(opts, list(c.bands))
        if not settings.prior and not settings.zeropoints:
            return model
        data = self.get_data("input")
        if c.hdf5_groupname:
            data = data[c.hdf5_groupname]
        needed = [c.redshift_col] + ([opts.prior_band] if settings.prior else [])
        missing = [k for k in needed if k not in data]
        if missing:
            raise InputError(f"{self.name}: the training prior and zero points need columns "
                             f"{missing} in the training data (or set training_prior=False "
                             "or prior_file, and zeropoints=False)")
        fnu, efnu = catalog_fluxes(data, c, opts)
        mag = prior_magnitudes(data, opts.prior_band, opts) if settings.prior else None
        model = train_on_labels(model, fnu, efnu, np.asarray(data[c.redshift_col], float),
                                mag, settings)
        if settings.prior:
            model.meta.update(prior="training", prior_band=opts.prior_band)
        return model


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
        self._opts = _options(self, EazyFitOptions)
        check_fit_config(self, self.model, self._opts)

    def _prior_band(self) -> str:
        return self._opts.prior_band or self.model.meta.get("prior_band", "")

    def _initialize_run(self) -> None:
        super()._initialize_run()
        self._check_config()

    def _process_chunk(self, start: int, end: int, data: Any, first: bool) -> None:
        opts = self._opts
        fnu, efnu = catalog_fluxes(data, self.config, opts)
        prior_mag = _prior_mags(self.model, self.config, opts, fnu)
        res = fit(self.model, fnu, efnu, sys_err=opts.sys_err, prior_mag=prior_mag,
                  n_workers=worker_count(opts.n_workers))
        copied = copied_columns(data, opts.ancil_columns, self.name)
        self._do_chunk_output(res.ensemble(copied), start, end, first, data=data)


def check_fit_config(stage: Any, model: EazyModel, opts: EazyFitOptions) -> None:
    """Raise OptionError (naming the stage) unless the stage's bands fit the model's."""
    c = stage.config
    if not (len(c.bands) == len(c.err_bands) == model.nfilt):
        raise OptionError(f"{stage.name}: bands ({len(c.bands)}) and err_bands "
                          f"({len(c.err_bands)}) must match the model's {model.nfilt} filters "
                          f"({[f['name'] for f in model.meta.get('filters', [])]})")
    if opts.input_type == "mag":
        missing = [b for b in c.bands if b not in c.mag_limits]
        if missing:
            raise OptionError(f"{stage.name}: mag_limits has no 1-sigma limit for "
                              f"{missing}, needed for their non-detections")
    band = opts.prior_band or model.meta.get("prior_band", "")
    if model.has_prior and band not in c.bands:
        raise OptionError(f"{stage.name}: the model has a magnitude prior "
                          f"({model.meta.get('prior')}, band {band!r}); set "
                          "prior_band to one of bands")
    _check_columns(stage, list(c.bands) + list(c.err_bands))


def _prior_mags(model: EazyModel, config: Any, opts: EazyFitOptions,
                fnu: np.ndarray) -> np.ndarray | None:
    """Magnitudes of the model's prior band (None without a prior)."""
    if not model.has_prior:
        return None
    band = opts.prior_band or model.meta.get("prior_band", "")
    return flux_to_mag(fnu[:, list(config.bands).index(band)], opts.flux_zeropoint)


class EazyCrossValidator(StrictConfigMixin, RailStage):
    """Out-of-fold EAZY posteriors of every labelled object of a catalog (k-fold).

    The model's template grid is kept; what ``EazyInformer`` learned from labels (the prior
    p(z | m) and the zero points, as recorded in the model) is learned again for each fold
    from the other folds' labelled objects, and the fold's objects are fitted with it
    (:mod:`rail.deepdisc.fit.eazy_crossval`). Folds come from the objects' ids (``id_col``)
    and ``seed`` (:func:`rail.deepdisc.folds.fold_of_ids`), so they are the network's.
    Output: ``qp.interp`` PDFs of the labelled rows in input order, with ``object_id``,
    ``redshift`` and ``fold`` besides EazyEstimator's columns. Options: EazyEstimator's,
    ``redshift_col``, ``id_col``, ``folds`` and ``seed``.
    """

    name = "EazyCrossValidator"
    entrypoint_function = "cross_validate"
    interactive_function = "eazy_cross_validator"
    config_options = RailStage.config_options.copy()
    config_options.update({k: SharedParams.copy_param(k) for k in (
        "bands", "err_bands", "nondetect_val", "nonobserved_val", "mag_limits",
        "redshift_col", "id_col", "hdf5_groupname")})
    config_options.update(EazyFitOptions.stage_params())
    config_options.update(FoldOptions.stage_params())
    inputs = [("model", EazyModelHandle), ("input", TableHandle)]
    outputs = [("output", QPHandle)]

    def cross_validate(self, model: Any, input_data: Any, **kwargs: Any) -> QPHandle:
        """Cross-validate EAZY on a labelled catalog.

        Parameters
        ----------
        model : EazyModel | str
            The model (from EazyInformer).
        input_data : dict | str
            The catalog (photometry and redshifts; NaN redshift: unlabelled).
        **kwargs : Any
            Options to change.

        Returns
        -------
        QPHandle
            The out-of-fold ensemble.
        """
        return self.run_on({"model": model, "input": input_data}, "output", **kwargs)

    def run(self) -> None:
        from rail.deepdisc.fit.eazy_crossval import cross_validate
        from rail.deepdisc.fit.eazy_training import LabelTraining
        from rail.deepdisc.folds import fold_of_ids

        c = self.config
        opts = _options(self, EazyFitOptions)
        folds = _options(self, FoldOptions)
        self.check_output_paths()
        model = self.get_data("model")
        check_fit_config(self, model, opts)
        data = self.get_data("input")
        if c.hdf5_groupname:
            data = data[c.hdf5_groupname]
        missing = [k for k in (c.redshift_col, c.id_col) if k not in data]
        if missing:
            raise InputError(f"{self.name}: the input lacks columns {missing} "
                             "(redshift_col, id_col)")
        z = np.asarray(data[c.redshift_col], float)
        ids = np.asarray(data[c.id_col]).astype(np.int64)
        labelled = np.isfinite(z)
        fold = np.full(z.size, -1, np.int64)
        fold[labelled] = fold_of_ids(ids[labelled], folds.folds, folds.seed)
        fnu, efnu = catalog_fluxes(data, c, opts)
        settings = LabelTraining(**{k: v for k, v in model.meta.get(
            "label_training", {"prior": False, "zeropoints": False}).items()
            if k in LabelTraining.__dataclass_fields__})
        cv = cross_validate(model, fnu, efnu, z, _prior_mags(model, c, opts, fnu), fold,
                            settings, sys_err=opts.sys_err, n_workers=worker_count(opts.n_workers))
        copied = {k: v[cv.rows] for k, v in
                  copied_columns(data, opts.ancil_columns, self.name).items()}
        self.add_data("output", cv.result.ensemble({
            **copied, "object_id": ids[cv.rows], "redshift": z[cv.rows], "fold": cv.fold}))
