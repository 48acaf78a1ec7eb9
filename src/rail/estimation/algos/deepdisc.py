"""DeepDISC as RAIL stages: train on scene stores, estimate p(z) from pixels.

``DeepDiscInformer`` trains the network (:mod:`rail.deepdisc.net.train`) on a scene store and
writes a model file (``.pt``: a state dict plus a JSON description, loadable with
``torch.load(path, weights_only=True)``). ``DeepDiscEstimator`` applies it to a scene store
and writes a ``qp.mixmod`` ensemble: in ``forced`` mode exactly one row per object of the
input, in its order (boxes from the store), so RAIL evaluators line it up with the truth and
with BPZ/EAZY; in ``detect`` mode one row per detection, matched to the store's objects.
Both modes also write a ``detections`` table. On a tiled mosaic (the output of
``MosaicTiler``), forced mode gives one row per catalog object (the tiler lists each object
in one tile), and detect mode removes the duplicates that overlapping tiles produce and
matches the detections to the objects over the whole field (``deduplicate``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from ceci.config import StageParameter as Param
from rail.core.common_params import SharedParams
from rail.core.data import Hdf5Handle, ModelHandle, QPHandle
from rail.estimation.estimator import CatEstimator
from rail.estimation.informer import CatInformer

from rail.deepdisc.evaluate.density import FeatureDensity
from rail.deepdisc.net.estimate import (
    MODES,
    EstimateConfig,
    check_bands,
    detect_rows,
    field_selector,
    forced_rows,
    merge_rows,
)
from rail.deepdisc.net.network import BACKBONES, build_from_state, model_state, read_model_file
from rail.deepdisc.net.train import DEVICES, TrainConfig, resolve_device, set_threads, train
from rail.deepdisc.stages import StrictConfigMixin
from rail.deepdisc.store.atomic import atomic_output
from rail.deepdisc.store.scenes import SceneHandle, SceneStore


class DeepDiscModelHandle(ModelHandle):
    """Model file of DeepDISC (suffix ``pt``), read with ``torch.load(weights_only=True)``."""

    suffix = "pt"

    @classmethod
    def _open(cls, path: str, **kwargs: Any) -> dict[str, Any]:
        return read_model_file(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any) -> dict[str, Any]:
        return read_model_file(path)

    @classmethod
    def _write(cls, data: dict[str, Any], path: str, **kwargs: Any) -> None:
        import torch

        with atomic_output(path, "model") as tmp:
            torch.save(data, tmp)


def _store_path(handle) -> str:
    """The file behind a scene-store input (path, or the path of an open SceneStore)."""
    if isinstance(handle.data, SceneStore):
        return handle.data.path
    if handle.path in (None, "None", "none", ""):
        raise ValueError("the input scene store has no file path")
    if not os.path.isfile(handle.path):
        raise FileNotFoundError(f"input scene store {handle.path} does not exist")
    return handle.path


def _attach_scenes(stage, scenes: Any) -> None:
    """Connect a scene store given as a path, a SceneStore or a handle to ``input``."""
    if isinstance(scenes, (str, os.PathLike)):
        stage.set_data("input", None, path=os.fspath(scenes), do_read=False)
    else:
        stage.set_data("input", scenes)


class DeepDiscInformer(StrictConfigMixin, CatInformer):
    """Train DeepDISC (Mask R-CNN + mixture-density redshift head) on a scene store.

    Objects with a finite ``redshift`` train the redshift head; all objects train detection
    and masks. ``init_model`` starts from an earlier model (in-domain pre-training, then
    fine-tuning); ``checkpoint_dir`` keeps a per-epoch checkpoint from which an interrupted
    run resumes.
    """

    path_options = ("init_model",)
    name = "DeepDiscInformer"
    entrypoint_function = "inform"
    interactive_function = "deep_disc_informer"
    config_options = CatInformer.config_options.copy()
    config_options.update(
        backbone=Param(str, "resnet50_fpn", msg=f"network backbone, one of {list(BACKBONES)}"),
        num_components=Param(int, 5, msg="Gaussians in each redshift mixture"),
        epochs=Param(int, TrainConfig.epochs, msg="training epochs"),
        batch_size=Param(int, TrainConfig.batch_size, msg="scenes per training batch"),
        learning_rate=Param(float, TrainConfig.learning_rate, msg="AdamW peak learning rate"),
        weight_decay=Param(float, TrainConfig.weight_decay, msg="AdamW weight decay"),
        freeze_backbone_epochs=Param(int, 0, msg="epochs with the backbone frozen "
                                     "(fine-tuning)"),
        val_fraction=Param(float, TrainConfig.val_fraction,
                           msg="fraction of scenes held out for validation losses"),
        augment=Param(bool, True, msg="random flips and 90-degree rotations"),
        band_dropout=Param(float, TrainConfig.band_dropout,
                           msg="probability of zeroing one random band of a scene"),
        redshift_weight=Param(float, TrainConfig.redshift_weight,
                              msg="weight of the redshift NLL in the total loss"),
        calibrate=Param(bool, True, msg="fit a width factor for the PDFs on the validation "
                        "scenes after training"),
        device=Param(str, "auto", msg=f"one of {DEVICES}"),
        num_threads=Param(int, 0, msg="CPU threads for torch (0: all cores)"),
        seed=Param(int, 0, msg="random seed (split, initialisation, shuffling, augmentation)"),
        init_model=Param(str, "", msg="model file to start from (same bands)"),
        checkpoint_dir=Param(str, "", msg="directory of per-epoch checkpoints ('' for none)"),
    )
    inputs = [("input", SceneHandle)]
    outputs = [("model", DeepDiscModelHandle)]

    def inform(self, training_data: Any, **kwargs: Any) -> DeepDiscModelHandle:
        """Train on a scene store (a path, a ``SceneStore`` or a ``SceneHandle``)."""
        self.config.update(**kwargs)
        _attach_scenes(self, training_data)
        self.run()
        self.finalize()
        return self.get_handle("model")

    def _train_config(self) -> TrainConfig:
        c = self.config
        cfg = TrainConfig(
            backbone=c.backbone, num_components=c.num_components, epochs=c.epochs,
            batch_size=c.batch_size, learning_rate=c.learning_rate,
            weight_decay=c.weight_decay, freeze_backbone_epochs=c.freeze_backbone_epochs,
            val_fraction=c.val_fraction, augment=c.augment, band_dropout=c.band_dropout,
            redshift_weight=c.redshift_weight, device=c.device, num_threads=c.num_threads,
            seed=c.seed, calibrate=c.calibrate)
        cfg.validate()
        return cfg

    def run(self) -> None:
        cfg = self._train_config()
        path = _store_path(self.get_handle("input", allow_missing=True))
        init = read_model_file(self.config.init_model) if self.config.init_model else None
        result = train(path, cfg, init_model=init,
                       checkpoint_dir=self.config.checkpoint_dir or None)
        self.add_data("model", model_state(result.model, result.meta, result.extras))


class DeepDiscEstimator(StrictConfigMixin, CatEstimator):
    """Photo-z PDFs (Gaussian mixtures) from the pixels of a scene store.

    ``mode='forced'``: one row per object of the input, in order, from the store's boxes.
    ``mode='detect'``: one row per detection above ``score_threshold``, matched to the
    store's objects (IoU >= 0.5, one to one; objects without a box by distance within
    ``match_radius`` arcsec). Ancillary columns: ``object_id`` (matched, or -1), ``scene``,
    ``x``, ``y``, ``ra``, ``dec``, ``score``, ``zmode``, ``zmean`` (sum of w mu),
    ``zmedian``, ``redshift`` (where known), ``mask_area``, and quality columns
    (``rail.deepdisc.net.estimate.quality_flags``): ``snr``/``flag_low_snr``,
    ``ood_score``/``flag_ood`` (training-set feature density), ``blend``/``flag_blend``,
    ``flag_edge``, ``flag_low_score``.

    On a tiled mosaic (a store written by ``MosaicTiler``) detect mode keeps one row per
    source on the sky: a detection is kept only by the tile where its centre lies farthest
    from the edge, detections of different tiles whose boxes overlap at IoU >=
    ``nms_threshold`` keep the higher score, and the rest are matched to the objects over
    the whole mosaic (``deduplicate=False`` keeps every tile's detections). Every column of
    a kept row, quality flags included, is the one its tile computed.
    """

    name = "DeepDiscEstimator"
    entrypoint_function = "estimate"
    interactive_function = "deep_disc_estimator"
    config_options = CatEstimator.config_options.copy()
    config_options.update(
        mode=Param(str, "forced", msg=f"one of {MODES}"),
        score_threshold=Param(float, 0.05, msg="lowest detection score kept (detect mode)"),
        nms_threshold=Param(float, 0.5, msg="IoU of non-maximum suppression (detect mode)"),
        batch_size=Param(int, 8, msg="scenes per inference batch"),
        device=Param(str, "auto", msg=f"one of {DEVICES}"),
        num_threads=Param(int, 0, msg="CPU threads for torch (0: all cores)"),
        match_radius=Param(float, 0.1, msg="arcsec; matches objects that have no box"),
        zmin=SharedParams.copy_param("zmin"),
        zmax=Param(float, 15.0, msg="upper end of the grid of zmode/zmedian"),
        nzbins=Param(int, 1501, msg="points of the grid of zmode/zmedian"),
        deduplicate=Param(bool, True, msg="detect mode on a tiled mosaic: one row per source "
                                          "(drop the copies from overlapping tiles)"),
    )
    config_options["chunk_size"] = Param(int, 2000, msg="objects per chunk (whole scenes)")
    inputs = [("model", DeepDiscModelHandle), ("input", SceneHandle)]
    outputs = [("output", QPHandle), ("detections", Hdf5Handle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        super().__init__(args, **kwargs)
        self.net = None
        self._rows: list[dict[str, np.ndarray]] = []

    def estimate(self, input_data: Any, **kwargs: Any):
        """Estimate for a scene store (a path, a ``SceneStore`` or a ``SceneHandle``)."""
        self.config.update(**kwargs)
        _attach_scenes(self, input_data)
        self.run()
        self.finalize()
        return self.get_handle("output")

    def _estimate_config(self) -> EstimateConfig:
        c = self.config
        cfg = EstimateConfig(mode=c.mode, score_threshold=c.score_threshold,
                             nms_threshold=c.nms_threshold, batch_size=c.batch_size,
                             match_radius=c.match_radius, zmin=c.zmin, zmax=c.zmax,
                             nzbins=c.nzbins)
        cfg.validate()
        return cfg

    def open_model(self, **kwargs: Any):
        model = CatEstimator.open_model(self, **kwargs)
        if model is not None:
            set_threads(self.config.num_threads)
            self.device = resolve_device(self.config.device)
            self.net = build_from_state(model, self.device).eval()
            self.density = FeatureDensity.from_state(model["feature_density"]) \
                if "feature_density" in model else None
        return model

    def run(self) -> None:
        self.est = self._estimate_config()
        self.open_model(**self.config)
        if self.net is None:
            raise ValueError(f"{self.name}: no model given")
        with SceneStore(_store_path(self.get_handle("input", allow_missing=True))) as store:
            check_bands(self.model, store.bands, store.path)
            select = field_selector(store, self.est) if self.config.deduplicate else None
        if self.est.mode == "forced":
            CatEstimator.run(self)
            self._write_detections(merge_rows(self._gather(self._rows)))
            return
        rows = []
        for _, _, chunk in self.input_iterator("input"):
            rows.append(detect_rows(self.net, chunk, self.est, self.device, self.density))
        merged = merge_rows(self._gather(rows), select)
        if self.rank == 0:
            self._write_detections(merged)
            ens = merged.pop("_ensemble")
            self.add_data("output", ens)

    def _process_chunk(self, start: int, end: int, data, first: bool) -> None:
        ens, table = forced_rows(self.net, data, self.est, self.device, self.density)
        self._rows.append(table)
        self._do_chunk_output(ens, start, end, first)

    def _gather(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.comm is None or self.size == 1:
            return rows
        gathered = self.comm.gather(rows, root=0)
        return [r for part in gathered for r in part] if self.rank == 0 else []

    def _write_detections(self, table: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        table = {k: v for k, v in table.items() if not k.startswith("_")}
        self.add_data("detections", table)
