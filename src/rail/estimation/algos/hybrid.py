"""The hybrid photo-z: the image network's PDFs fused with a template fitter's, as RAIL stages.

``HybridInformer`` fits the fusion exponents on labelled objects (the two ensembles of the
same objects, with known redshifts); ``HybridEstimator`` applies them to any two ensembles
of the same objects; ``HybridCrossValidator`` gives every labelled object a fused PDF whose
exponents were fitted without its fold's labels. qp in, qp out: the image ensemble from
``DeepDiscEstimator`` (or its cross-validation), the template ensemble from
``EazyEstimator`` or ``BPZliteEstimator`` on photometry of the same objects. The numerics
live in :mod:`rail.deepdisc.hybrid` (fusion designs and their fit in
:mod:`rail.deepdisc.hybrid.fusion`, options in :mod:`rail.deepdisc.hybrid.options`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from rail.core.data import ModelHandle, QPHandle
from rail.core.stage import RailStage

from rail.deepdisc.errors import InputError, ModelFileError
from rail.deepdisc.folds import FoldOptions
from rail.deepdisc.hybrid.options import FusionOptions
from rail.deepdisc.stages import StrictConfigMixin


class FusionModelHandle(ModelHandle):
    """The fitted fusion (JSON: design, coefficients, standardisation, provenance)."""

    suffix = "json"
    interactive_type = "dict"

    @classmethod
    def _open(cls, path: str, **kwargs: Any) -> dict:
        return cls._read(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any) -> dict:
        try:
            with open(path, encoding="utf-8") as fin:
                data = json.load(fin)
        except (OSError, ValueError) as err:
            raise ModelFileError(f"cannot read fusion model {path}: {err}") from None
        if not isinstance(data, dict) or data.get("format") != "deepdisc-fusion":
            raise ModelFileError(f"{path} is not a fusion model (format deepdisc-fusion)")
        return data

    @classmethod
    def _write(cls, data: Any, path: str, **kwargs: Any) -> None:
        from rail.deepdisc.store.atomic import atomic_output

        with atomic_output(path, "fusion model") as tmp:
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


def _inputs(stage: Any, opts: FusionOptions):
    from rail.deepdisc.hybrid.ensembles import prepare

    # without the template input nothing is mixed in: the image PDFs as they are
    return prepare(stage.get_data("image"), stage.get_data("templates"),
                   floor=opts.floor if opts.use_templates else 0.0, zmax=opts.zmax,
                   what=stage.name)


def _covariates(opts: FusionOptions, inputs: Any) -> np.ndarray | None:
    from rail.deepdisc.hybrid.fusion import covariate_matrix

    if opts.design != "gated":
        return None
    return covariate_matrix(inputs.image, inputs.templates, list(opts.features))


class _HybridStage(StrictConfigMixin, RailStage):
    """What the hybrid stages share: the two input ensembles and the fusion options."""

    config_options = RailStage.config_options.copy()
    config_options.update(FusionOptions.stage_params())

    def fusion_options(self) -> FusionOptions:
        from rail.deepdisc.errors import OptionError

        try:
            return FusionOptions.from_mapping(self.config)
        except OptionError as err:
            raise OptionError(f"{self.name}: {err}") from None


class HybridInformer(_HybridStage):
    """Fit how an image ensemble and a template ensemble of the same labelled objects are
    fused (:mod:`rail.deepdisc.hybrid.fusion`): the exponents that maximise the likelihood of
    the known redshifts (ancil ``redshift``). Output: a fusion model (JSON)."""

    name = "HybridInformer"
    entrypoint_function = "inform"
    interactive_function = "hybrid_informer"
    inputs = [("image", QPHandle), ("templates", QPHandle)]
    outputs = [("model", FusionModelHandle)]

    def inform(self, image: Any, templates: Any, **kwargs: Any) -> FusionModelHandle:
        """Fit the fusion.

        Parameters
        ----------
        image : qp.Ensemble | str
            The image network's PDFs of the labelled objects.
        templates : qp.Ensemble | str
            The template fitter's PDFs of the same objects, in the same order.
        **kwargs : Any
            Options to change.

        Returns
        -------
        FusionModelHandle
            The fitted fusion.
        """
        return self.run_on({"image": image, "templates": templates}, "model", **kwargs)

    def run(self) -> None:
        from rail.deepdisc.hybrid.fusion import fit_weights, image_only
        from rail.deepdisc.store.provenance import provenance

        opts = self.fusion_options()
        self.check_output_paths()
        inputs = _inputs(self, opts)
        if opts.use_templates:
            weights = fit_weights(inputs.log_img, inputs.log_tpl, None, inputs.redshift,
                                  inputs.grid, design=opts.design,
                                  covariates=_covariates(opts, inputs),
                                  features=list(opts.features))
        else:
            weights = image_only()
        self.add_data("model", {"format": "deepdisc-fusion", "version": 1,
                                "fusion": weights.to_dict(), "options": opts.as_dict(),
                                "provenance": provenance(opts.as_dict(), self.name)})


class HybridEstimator(_HybridStage):
    """Fuse an image ensemble with a template ensemble of the same objects, with a fitted
    fusion model (``HybridInformer``). Output: ``qp.interp`` PDFs with the image ensemble's
    ancillary columns and the fused ``zmode``, ``zmean``, ``zmedian``."""

    name = "HybridEstimator"
    entrypoint_function = "estimate"
    interactive_function = "hybrid_estimator"
    inputs = [("image", QPHandle), ("templates", QPHandle), ("model", FusionModelHandle)]
    outputs = [("output", QPHandle)]

    def estimate(self, image: Any, templates: Any, model: Any, **kwargs: Any) -> QPHandle:
        """Fuse two ensembles.

        Parameters
        ----------
        image : qp.Ensemble | str
            The image network's PDFs.
        templates : qp.Ensemble | str
            The template fitter's PDFs of the same objects, in the same order.
        model : dict | str
            The fusion model.
        **kwargs : Any
            Options to change.

        Returns
        -------
        QPHandle
            The fused PDFs.
        """
        return self.run_on({"image": image, "templates": templates, "model": model},
                           "output", **kwargs)

    def run(self) -> None:
        from rail.deepdisc.hybrid.ensembles import fused_ensemble
        from rail.deepdisc.hybrid.fusion import FusionWeights, apply_weights, image_only

        opts = self.fusion_options()
        self.check_output_paths()
        inputs = _inputs(self, opts)
        model = self.get_data("model")
        if not isinstance(model, dict) or "fusion" not in model:
            raise InputError(f"{self.name}: the model is not a fusion model")
        weights = FusionWeights.from_dict(model["fusion"]) if opts.use_templates else image_only()
        pdf = apply_weights(weights, inputs.log_img, inputs.log_tpl, None, inputs.grid,
                            _covariates(_as_design(opts, weights), inputs))
        self.add_data("output", fused_ensemble(pdf, inputs.grid, inputs.image))


def _as_design(opts: FusionOptions, weights: Any) -> FusionOptions:
    """The options with the design (and features) the model was fitted with."""
    from dataclasses import replace

    if weights.design == "gated":
        return replace(opts, design="gated", features=tuple(weights.features))
    return replace(opts, design="product")


class HybridCrossValidator(_HybridStage):
    """Out-of-fold hybrid PDFs of labelled objects: each fold's objects fused with exponents
    fitted on the other folds' labels (folds from the image ensemble's ``fold`` column, else
    from the objects' ids and ``seed``). Output: ``qp.interp`` PDFs with ``fold``."""

    name = "HybridCrossValidator"
    entrypoint_function = "cross_validate"
    interactive_function = "hybrid_cross_validator"
    config_options = _HybridStage.config_options.copy()
    config_options.update(FoldOptions.stage_params())
    inputs = [("image", QPHandle), ("templates", QPHandle)]
    outputs = [("output", QPHandle)]

    def cross_validate(self, image: Any, templates: Any, **kwargs: Any) -> QPHandle:
        """Fuse out of fold.

        Parameters
        ----------
        image : qp.Ensemble | str
            The image network's PDFs of the labelled objects (out of fold).
        templates : qp.Ensemble | str
            The template fitter's PDFs of the same objects (out of fold).
        **kwargs : Any
            Options to change.

        Returns
        -------
        QPHandle
            The out-of-fold fused PDFs.
        """
        return self.run_on({"image": image, "templates": templates}, "output", **kwargs)

    def run(self) -> None:
        from rail.deepdisc.hybrid.ensembles import fused_ensemble, ids_of
        from rail.deepdisc.hybrid.fusion import apply_weights, cross_fit, image_only

        opts = self.fusion_options()
        folds = FoldOptions.from_mapping(self.config)
        self.check_output_paths()
        inputs = _inputs(self, opts)
        fold = hybrid_folds(inputs.image, ids_of(inputs.image), inputs.redshift, folds)
        if opts.use_templates:
            pdf, fits = cross_fit(inputs.log_img, inputs.log_tpl, None, inputs.redshift, fold,
                                  inputs.grid, design=opts.design,
                                  covariates=_covariates(opts, inputs),
                                  features=list(opts.features))
        else:
            pdf = apply_weights(image_only(), inputs.log_img, inputs.log_tpl, None,
                                inputs.grid)
        self.add_data("output", fused_ensemble(pdf, inputs.grid, inputs.image,
                                               extra={"fold": fold}))


def hybrid_folds(image: Any, ids: np.ndarray | None, redshift: np.ndarray,
                 opts: FoldOptions) -> np.ndarray:
    """Fold of each row: the image ensemble's ``fold`` column, else from the ids (rows
    without a redshift: -1)."""
    from rail.deepdisc.folds import fold_of_ids

    ancil = image.ancil or {}
    if "fold" in ancil:
        return np.asarray(ancil["fold"]).reshape(-1).astype(np.int64)
    if ids is None:
        raise InputError("the image ensemble has neither a fold column nor object ids "
                         "(object_id or id) to assign folds by")
    fold = np.full(redshift.size, -1, np.int64)
    known = np.isfinite(redshift)
    fold[known] = fold_of_ids(ids[known], opts.folds, opts.seed)
    return fold
