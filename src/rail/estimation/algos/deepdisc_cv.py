"""DeepDISC fine-tuning and k-fold cross-validation as RAIL stages (the field recipe).

``DeepDiscFineTuner`` is ``DeepDiscInformer`` whose starting model is an input (so a ceci
pipeline runs pre-training first); ``DeepDiscCrossValidator`` trains ``folds`` models from
that starting model, each without one fold's labels, and writes a photo-z for every labelled
object from the model that never saw its label (:mod:`rail.deepdisc.net.crossval`), with the
training labels of every fold for checking.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from rail.core.data import Hdf5Handle, QPHandle
from rail.core.stage import RailStage

from rail.deepdisc.net.config import EstimateConfig, TrainConfig
from rail.deepdisc.options import Options, option
from rail.deepdisc.stages import StrictConfigMixin
from rail.deepdisc.store.handle import SceneHandle
from rail.estimation.algos.deepdisc import DeepDiscInformer, DeepDiscModelHandle, _store_path


@dataclass(frozen=True)
class CrossValOptions(Options):
    """How the labelled objects are split."""

    folds: int = option(5, "folds of the cross-validation", ge=2, le=50)


class DeepDiscFineTuner(DeepDiscInformer):
    """Fine-tune a DeepDISC model (input ``init_model``, e.g. pre-trained on a simulated
    field) on a scene store (e.g. the tiles of a survey that hold spectroscopic redshifts).
    The options are DeepDiscInformer's; ``init_model`` is an input here."""

    name = "DeepDiscFineTuner"
    interactive_function = "deep_disc_fine_tuner"
    path_options = ()
    config_options = {k: v for k, v in DeepDiscInformer.config_options.items()
                      if k != "init_model"}
    inputs = [("input", SceneHandle), ("init_model", DeepDiscModelHandle)]

    entrypoint_function = "fine_tune"

    def fine_tune(self, training_data: Any, init_model: Any, **kwargs: Any
                  ) -> DeepDiscModelHandle:
        """Fine-tune a model on a scene store.

        Parameters
        ----------
        training_data : str | SceneStore | SceneHandle
            The training scenes (e.g. the tiles that hold spectroscopic redshifts).
        init_model : str | DeepDiscModelHandle
            The model to start from.
        **kwargs : Any
            Options to change (DeepDiscInformer's).

        Returns
        -------
        DeepDiscModelHandle
            The handle of the written model.
        """
        _attach_model(self, init_model)
        return self.inform(training_data, **kwargs)

    def train_config(self) -> TrainConfig:
        """The informer's configuration, starting from the ``init_model`` input."""
        return TrainConfig.from_mapping(self.config, init_model=_model_path(self))


def _attach_model(stage: Any, model: Any) -> None:
    if isinstance(model, (str, os.PathLike)):
        stage.set_data("init_model", None, path=os.fspath(model), do_read=False)
    else:
        stage.set_data("init_model", model)


def _model_path(stage: Any) -> str:
    handle = stage.get_handle("init_model", allow_missing=True)
    path = handle.path
    if path in (None, "", "None", "none") or not os.path.isfile(path):
        raise FileNotFoundError(f"{stage.name}: the starting model {path} does not exist")
    return path


class DeepDiscCrossValidator(StrictConfigMixin, RailStage):
    """Out-of-fold photo-zs of every labelled object of a scene store (k-fold).

    Outputs: ``output``, a ``qp.mixmod`` ensemble with one row per labelled object (store
    order; ancil as DeepDiscEstimator's plus ``fold``), and ``training_labels``, a table of
    the (``fold``, ``object_id``) labels each fold's model was trained with. Options:
    DeepDiscInformer's and ``folds``.
    """

    name = "DeepDiscCrossValidator"
    entrypoint_function = "cross_validate"
    interactive_function = "deep_disc_cross_validator"
    config_options = RailStage.config_options.copy()
    config_options.update(TrainConfig.stage_params(skip=("init_model",)))
    config_options.update(CrossValOptions.stage_params())
    inputs = [("input", SceneHandle), ("init_model", DeepDiscModelHandle)]
    outputs = [("output", QPHandle), ("training_labels", Hdf5Handle)]

    def cross_validate(self, input_data: Any, init_model: Any, **kwargs: Any) -> QPHandle:
        """Cross-validate on a scene store.

        Parameters
        ----------
        input_data : str | SceneStore | SceneHandle
            The labelled scenes.
        init_model : str | DeepDiscModelHandle
            The model every fold starts from.
        **kwargs : Any
            Options to change.

        Returns
        -------
        QPHandle
            The out-of-fold ensemble.
        """
        self.config.update(**kwargs)
        if isinstance(input_data, (str, os.PathLike)):
            self.set_data("input", None, path=os.fspath(input_data), do_read=False)
        else:
            self.set_data("input", input_data)
        _attach_model(self, init_model)
        self.run()
        self.finalize()
        return self.get_handle("output")

    def run(self) -> None:
        from rail.deepdisc.net.crossval import cross_validate

        train = TrainConfig.from_mapping(self.config, init_model=_model_path(self))
        opts = CrossValOptions.from_mapping(self.config)
        path = _store_path(self.get_handle("input", allow_missing=True))
        self.check_output_paths()
        estimate = EstimateConfig.from_mapping(device=train.compute.device,
                                               num_threads=train.compute.num_threads)
        out = os.path.dirname(os.path.abspath(self.get_output(self.get_aliased_tag("output"))))
        cv = cross_validate(path, train, estimate, opts.folds, train.seed, workdir=out)
        cv.ensemble.ancil["fold"] = cv.fold
        self.add_data("output", cv.ensemble)
        self.add_data("training_labels", {
            "fold": np.concatenate([np.full(ids.size, f) for f, ids in
                                    enumerate(cv.training_ids)]),
            "object_id": np.concatenate(cv.training_ids)})
