"""The hybrid photo-z: the image network's PDFs fused with photometry's, as RAIL stages.

Three ensembles of the same objects go in: ``image`` (``DeepDiscEstimator`` or its
cross-validation), ``templates`` (``EazyEstimator``, or BPZ, on photometry of the same
objects) and ``photometric`` (``PhotometryNetEstimator``: the network trained on the
simulated survey's photometry); ``methods`` says which of them the fusion uses.
``HybridInformer`` fits the fusion exponents on labelled objects; ``HybridEstimator``
applies them; ``HybridCrossValidator`` gives every labelled object a fused PDF whose
exponents were fitted without its fold's labels. Rows are matched by id. The numerics live
in :mod:`rail.deepdisc.hybrid` (designs and fit in :mod:`rail.deepdisc.hybrid.fusion`,
options in :mod:`rail.deepdisc.hybrid.options`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from rail.core.data import ModelHandle, QPHandle
from rail.core.stage import RailStage

from rail.deepdisc.errors import InputError, ModelFileError, OptionError
from rail.deepdisc.folds import FoldOptions
from rail.deepdisc.hybrid.options import METHOD_INPUTS, FusionOptions
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


class _HybridStage(StrictConfigMixin, RailStage):
    """What the hybrid stages share: the three input ensembles and the fusion options."""

    config_options = RailStage.config_options.copy()
    config_options.update(FusionOptions.stage_params())
    inputs = [(tag, QPHandle) for tag in METHOD_INPUTS]

    def fusion_options(self) -> FusionOptions:
        try:
            return FusionOptions.from_mapping(self.config)
        except OptionError as err:
            raise OptionError(f"{self.name}: {err}") from None

    def fusion_inputs(self, opts: FusionOptions):
        """The used methods' ensembles on one grid, rows matched to the image's; without
        the image alone nothing is mixed into its PDFs (no floor)."""
        from rail.deepdisc.hybrid.ensembles import prepare

        ensembles = {tag: self.get_data(tag) for tag in METHOD_INPUTS}
        floor = opts.fusion_floor if len(opts.fusion_methods) > 1 else 0.0
        return prepare([ensembles[m] for m in opts.fusion_methods], floor=floor,
                       zmax=opts.fusion_zmax, what=self.name,
                       grid_from=list(ensembles.values()))

    def covariates(self, opts: FusionOptions, inputs: Any) -> np.ndarray | None:
        from rail.deepdisc.hybrid.fusion import covariate_matrix

        if opts.fusion_design != "gated":
            return None
        return covariate_matrix(inputs.ensembles, list(opts.fusion_features))


class HybridInformer(_HybridStage):
    """Fit how the methods' PDFs of the same labelled objects are fused
    (:mod:`rail.deepdisc.hybrid.fusion`): the exponents that maximise the likelihood of the
    known redshifts (ancil ``redshift``). Output: a fusion model (JSON)."""

    name = "HybridInformer"
    entrypoint_function = "inform"
    interactive_function = "hybrid_informer"
    outputs = [("model", FusionModelHandle)]

    def inform(self, image: Any, templates: Any, photometric: Any,
               **kwargs: Any) -> FusionModelHandle:
        """Fit the fusion.

        Parameters
        ----------
        image : qp.Ensemble | str
            The image network's PDFs of the labelled objects.
        templates : qp.Ensemble | str
            Template fitting's PDFs of the same objects.
        photometric : qp.Ensemble | str
            The photometry network's PDFs of the same objects.
        **kwargs : Any
            Options to change.

        Returns
        -------
        FusionModelHandle
            The fitted fusion.
        """
        return self.run_on({"image": image, "templates": templates,
                            "photometric": photometric}, "model", **kwargs)

    def run(self) -> None:
        from rail.deepdisc.hybrid.fusion import fit_weights, image_only
        from rail.deepdisc.store.provenance import provenance

        opts = self.fusion_options()
        self.check_output_paths()
        inputs = self.fusion_inputs(opts)
        if len(opts.fusion_methods) == 1:
            weights = image_only(1)
        else:
            weights = fit_weights(inputs.logs, inputs.redshift, inputs.grid,
                                  design=opts.fusion_design,
                                  covariates=self.covariates(opts, inputs),
                                  features=list(opts.fusion_features))
        self.add_data("model", {"format": "deepdisc-fusion", "version": 1,
                                "methods": list(opts.fusion_methods), "fusion": weights.to_dict(),
                                "options": opts.as_dict(),
                                "provenance": provenance(opts.as_dict(), self.name)})


class HybridEstimator(_HybridStage):
    """Fuse the methods' PDFs of the same objects with a fitted fusion model
    (``HybridInformer``; its methods and design are used). Output: ``qp.interp`` PDFs with
    the image ensemble's ancillary columns and the fused ``zmode``, ``zmean``,
    ``zmedian``."""

    name = "HybridEstimator"
    entrypoint_function = "estimate"
    interactive_function = "hybrid_estimator"
    inputs = [*_HybridStage.inputs, ("model", FusionModelHandle)]
    outputs = [("output", QPHandle)]

    def estimate(self, image: Any, templates: Any, photometric: Any, model: Any,
                 **kwargs: Any) -> QPHandle:
        """Fuse the ensembles.

        Parameters
        ----------
        image : qp.Ensemble | str
            The image network's PDFs.
        templates : qp.Ensemble | str
            Template fitting's PDFs of the same objects.
        photometric : qp.Ensemble | str
            The photometry network's PDFs of the same objects.
        model : dict | str
            The fusion model.
        **kwargs : Any
            Options to change.

        Returns
        -------
        QPHandle
            The fused PDFs.
        """
        return self.run_on({"image": image, "templates": templates,
                            "photometric": photometric, "model": model}, "output", **kwargs)

    def run(self) -> None:
        from dataclasses import replace

        from rail.deepdisc.hybrid.ensembles import fused_ensemble
        from rail.deepdisc.hybrid.fusion import FusionWeights, apply_weights

        self.check_output_paths()
        model = self.get_data("model")
        if not isinstance(model, dict) or "fusion" not in model:
            raise InputError(f"{self.name}: the model is not a fusion model")
        weights = FusionWeights.from_dict(model["fusion"])
        opts = replace(self.fusion_options(), fusion_methods=tuple(model["methods"]),
                       fusion_design=weights.design, fusion_features=tuple(weights.features)
                       or self.fusion_options().fusion_features)
        inputs = self.fusion_inputs(opts)
        pdf = apply_weights(weights, inputs.logs, inputs.grid, self.covariates(opts, inputs))
        self.add_data("output", fused_ensemble(pdf, inputs.grid, inputs.image))


class HybridCrossValidator(_HybridStage):
    """Out-of-fold hybrid PDFs of labelled objects: each fold's objects fused with exponents
    fitted on the other folds' labels (folds from the image ensemble's ``fold`` column,
    else from the objects' ids and ``seed``). Output: ``qp.interp`` PDFs with ``fold``."""

    name = "HybridCrossValidator"
    entrypoint_function = "cross_validate"
    interactive_function = "hybrid_cross_validator"
    config_options = _HybridStage.config_options.copy()
    config_options.update(FoldOptions.stage_params())
    outputs = [("output", QPHandle)]

    def cross_validate(self, image: Any, templates: Any, photometric: Any,
                       **kwargs: Any) -> QPHandle:
        """Fuse out of fold.

        Parameters
        ----------
        image : qp.Ensemble | str
            The image network's out-of-fold PDFs of the labelled objects.
        templates : qp.Ensemble | str
            Template fitting's out-of-fold PDFs of the same objects.
        photometric : qp.Ensemble | str
            The photometry network's out-of-fold PDFs of the same objects.
        **kwargs : Any
            Options to change.

        Returns
        -------
        QPHandle
            The out-of-fold fused PDFs.
        """
        return self.run_on({"image": image, "templates": templates,
                            "photometric": photometric}, "output", **kwargs)

    def run(self) -> None:
        from rail.deepdisc.hybrid.ensembles import fused_ensemble, ids_of
        from rail.deepdisc.hybrid.fusion import apply_weights, cross_fit, image_only

        opts = self.fusion_options()
        folds = FoldOptions.from_mapping(self.config)
        self.check_output_paths()
        inputs = self.fusion_inputs(opts)
        fold = folds_of(inputs.image, ids_of(inputs.image), inputs.redshift, folds)
        if len(opts.fusion_methods) == 1:
            pdf = apply_weights(image_only(1), inputs.logs, inputs.grid)
        else:
            pdf = cross_fit(inputs.logs, inputs.redshift, fold, inputs.grid,
                            design=opts.fusion_design,
                            covariates=self.covariates(opts, inputs),
                            features=list(opts.fusion_features))[0]
        self.add_data("output", fused_ensemble(pdf, inputs.grid, inputs.image,
                                               extra={"fold": fold}))


def folds_of(ens: Any, ids: np.ndarray | None, redshift: np.ndarray,
             opts: FoldOptions) -> np.ndarray:
    """Fold of each row: the ensemble's ``fold`` column, else from the ids (rows without a
    redshift: -1)."""
    from rail.deepdisc.folds import fold_of_ids

    ancil = ens.ancil or {}
    if "fold" in ancil:
        return np.asarray(ancil["fold"]).reshape(-1).astype(np.int64)
    if ids is None:
        raise InputError("the image ensemble has neither a fold column nor object ids "
                         "(object_id or id) to assign folds by")
    fold = np.full(redshift.size, -1, np.int64)
    known = np.isfinite(redshift)
    fold[known] = fold_of_ids(ids[known], opts.folds, opts.seed)
    return fold
