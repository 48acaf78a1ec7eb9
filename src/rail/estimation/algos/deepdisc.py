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
import time
from typing import Any

from rail.core.data import Hdf5Handle, ModelHandle, QPHandle
from rail.estimation.estimator import CatEstimator
from rail.estimation.informer import CatInformer

from rail.deepdisc.errors import InputError
from rail.deepdisc.net.config import EstimateConfig, TrainConfig
from rail.deepdisc.parallel import PartedEstimatorMixin, PartedQPHandle, RankParts
from rail.deepdisc.stages import StrictConfigMixin, rail_shared_params
from rail.deepdisc.store.atomic import atomic_output
from rail.deepdisc.store.handle import SceneHandle
from rail.deepdisc.store.scenes import SceneStore

#: EstimateConfig's options that are RAIL's shared stage parameters (the grid of the
#: summary statistics and the chunk size): the stage offers RAIL's, with our defaults
RAIL_SHARED = ("zmin", "zmax", "nzbins", "chunk_size")


class DeepDiscModelHandle(ModelHandle):
    """Model file of DeepDISC (suffix ``pt``), read with ``torch.load(weights_only=True)``."""

    suffix = "pt"

    @classmethod
    def _open(cls, path: str, **kwargs: Any) -> dict[str, Any]:
        from rail.deepdisc.net.model_file import read_model_file

        return read_model_file(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any) -> dict[str, Any]:
        return cls._open(path, **kwargs)

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
        raise InputError("the input scene store has no file path")
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
    run resumes; ``nproc`` trains with that many processes (distributed data parallel), and
    under ``torchrun`` every process runs the stage and rank 0 writes the model. The
    options are those of :class:`rail.deepdisc.net.config.TrainConfig`.
    """

    path_options = TrainConfig.path_options()
    name = "DeepDiscInformer"
    entrypoint_function = "inform"
    interactive_function = "deep_disc_informer"
    config_options = CatInformer.config_options.copy()
    config_options.update(TrainConfig.stage_params())
    inputs = [("input", SceneHandle)]
    outputs = [("model", DeepDiscModelHandle)]

    def inform(self, training_data: Any, **kwargs: Any) -> DeepDiscModelHandle:
        """Train on a scene store.

        Parameters
        ----------
        training_data : str | SceneStore | SceneHandle
            The training scenes: a path, an open store or a handle.
        **kwargs : Any
            Options to change (see the stage's config options).

        Returns
        -------
        DeepDiscModelHandle
            The handle of the written model.
        """
        self.config.update(**kwargs)
        _attach_scenes(self, training_data)
        self.run()
        self.finalize()
        return self.get_handle("model")

    def run(self) -> None:
        from rail.deepdisc.net.model_file import model_state
        from rail.deepdisc.net.train import train

        cfg = self.train_config()
        path = _store_path(self.get_handle("input", allow_missing=True))
        self.check_output_paths()
        result = train(path, cfg)
        self._writes_model = result is not None  # under torchrun only rank 0 returns it
        if self._writes_model:
            self.add_data("model", model_state(result.model, result.meta, result.extras))

    def train_config(self) -> TrainConfig:
        """The library configuration of this stage (checked)."""
        return TrainConfig.from_mapping(self.config)

    def finalize(self) -> None:
        if getattr(self, "_writes_model", True):
            super().finalize()


class DeepDiscEstimator(StrictConfigMixin, PartedEstimatorMixin, CatEstimator):
    """Photo-z PDFs (Gaussian mixtures) from the pixels of a scene store.

    ``mode='forced'``: one row per object of the input, in order, from the store's boxes.
    ``mode='detect'``: one row per detection above ``score_threshold``, matched to the
    store's objects (IoU >= 0.5, one to one; objects without a box by distance within
    ``match_radius`` arcsec). Ancillary columns: ``object_id`` (matched, or -1), ``scene``,
    ``x``, ``y``, ``ra``, ``dec``, ``score``, ``zmode``, ``zmean`` (sum of w mu),
    ``zmedian``, ``redshift`` (where known), ``mask_area``, and quality columns
    (``rail.deepdisc.net.quality``): ``snr``/``flag_low_snr``,
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
    config_options.update(EstimateConfig.stage_params(skip=RAIL_SHARED))
    config_options.update(rail_shared_params(EstimateConfig, RAIL_SHARED))
    inputs = [("model", DeepDiscModelHandle), ("input", SceneHandle)]
    outputs = [("output", PartedQPHandle), ("detections", Hdf5Handle)]

    def __init__(self, args: Any, **kwargs: Any) -> None:
        super().__init__(args, **kwargs)
        self.net = None

    def estimate(self, input_data: Any, **kwargs: Any) -> QPHandle:
        """Estimate photo-z PDFs for a scene store.

        Parameters
        ----------
        input_data : str | SceneStore | SceneHandle
            The scenes: a path, an open store or a handle.
        **kwargs : Any
            Options to change (see the stage's config options).

        Returns
        -------
        QPHandle
            The handle of the written ensemble, read back (the detections are the
            ``detections`` output).
        """
        self.config.update(**kwargs)
        _attach_scenes(self, input_data)
        self.run()
        self.finalize()
        handle = self.get_handle("output")
        if handle.data is None or handle.partial:
            handle.read(force=True)  # the whole ensemble, as written
        return handle

    def open_model(self, **kwargs: Any):
        model = CatEstimator.open_model(self, **kwargs)
        if model is not None:
            from rail.deepdisc.net.density import FeatureDensity
            from rail.deepdisc.net.device import resolve_device, set_threads
            from rail.deepdisc.net.model_file import build_from_state

            set_threads(self.est.compute.num_threads)
            self.device = resolve_device(self.est.compute.device)
            self.net = build_from_state(model, self.device).eval()
            self.density = FeatureDensity.from_state(model["feature_density"]) \
                if "feature_density" in model else None
        return model

    def run(self) -> None:
        from rail.deepdisc.net.estimate import check_bands, field_selector

        self.est = EstimateConfig.from_mapping(self.config)
        self.check_output_paths()
        self.open_model(**self.config)
        if self.net is None:
            raise InputError(f"{self.name}: no model given")
        path = _store_path(self.get_handle("input", allow_missing=True))
        forced = self.est.mode == "forced"
        start = time.perf_counter()
        with SceneStore(path) as store:
            store.require(f"{self.est.mode} estimation", objects=forced)
            check_bands(self.model, store.bands, store.path)
            n_objects, n_scenes = store.n_objects, store.n_scenes
            if not forced:
                select = field_selector(store, self.est) if self.est.deduplicate else None
                n_rows = self._detect(store, select)
        if forced:
            # rows go to this run's parts, never kept in memory between chunks or runs
            self._detection_parts = RankParts(self, "detections")
            CatEstimator.run(self)
            n_rows = self._detection_parts.join()
        if self.rank == 0:
            seconds = time.perf_counter() - start
            self.log.info(f"{self.est.mode} estimation: {n_rows} rows for {n_objects} objects "
                          f"in {n_scenes} scenes, {seconds:.1f} s, "
                          f"{n_objects / max(seconds, 1e-9):.1f} objects/s, "
                          f"{self.size} process(es)")

    def _process_chunk(self, start: int, end: int, data, first: bool) -> None:
        from rail.deepdisc.net.estimate import forced_rows

        ens, table = forced_rows(self.net, data, self.est, self.device, self.density)
        self._detection_parts.append(table, start=start)
        self._do_chunk_output(ens, start, end, first)

    def _detect(self, store: SceneStore, select) -> int | None:
        """Detect mode: each rank writes its detections to a part; rank 0 keeps one row per
        source (``select``) and writes the ensemble and the table, part by part."""
        from rail.deepdisc.net.estimate import detect_rows, write_detect_outputs

        rows = RankParts(self, "output")
        for chunk in store.iter_chunks(self.est.chunk_size, rank=self.rank, size=self.size):
            rows.append(detect_rows(self.net, chunk, self.est, self.device, self.density))
        rows.close()
        if self.rank != 0:
            return None
        table = self.get_output(self.get_aliased_tag("detections"))
        n = write_detect_outputs(rows.parts(), select, rows.output, table,
                                 self.net.arch["num_components"])
        self.publish_written("output", rows.output)
        self.publish_written("detections", table)
        return n
