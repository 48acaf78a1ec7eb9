"""k-fold cross-validation: a photo-z for every labelled object from a model that never saw
its label (how the paper validates on spectroscopic redshifts).

The objects of a training store that have a redshift are dealt into ``k`` folds by their
ids (:func:`rail.deepdisc.folds.fold_of_ids`, so the template fitters' and the hybrid's
cross-validations hold out the same objects).
For each fold a copy of the store keeps every label but that fold's (its objects stay, as
unlabelled objects still train detection and masks), a model is trained on it (from
``init_model`` when given: pre-training, then fine-tuning), and that model estimates the
fold's objects in forced mode. The out-of-fold rows are returned in store order with their
fold, and each fold's training labels are recorded, read back from the store the model was
trained on, so that the separation can be checked.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rail.deepdisc.folds import fold_of_ids
from rail.deepdisc.net.config import EstimateConfig, TrainConfig

log = logging.getLogger(__name__)


@dataclass
class CrossValidation:
    """Out-of-fold PDFs of the labelled objects, in store order."""

    ensemble: Any
    fold: np.ndarray
    object_id: np.ndarray
    training_ids: list[np.ndarray]
    meta: list[dict[str, Any]]


def cross_validate(store_path: str, train_config: TrainConfig, estimate: EstimateConfig,
                   k: int, seed: int, workdir: str | None = None,
                   progress: bool = True) -> CrossValidation:
    """Train ``k`` models, each without one fold's labels, and estimate each fold with its
    model (see the module docstring)."""
    from rail.deepdisc.net.density import FeatureDensity
    from rail.deepdisc.net.device import resolve_device
    from rail.deepdisc.net.train import train
    from rail.deepdisc.sim.labels import relabel_store
    from rail.deepdisc.store.scenes import SceneStore

    with SceneStore(store_path) as store:
        objects = store.objects(["object_id", "scene", "redshift"])
    labelled = np.flatnonzero(np.isfinite(objects["redshift"]))
    fold_of = np.full(objects["object_id"].size, -1, np.int64)
    fold_of[labelled] = fold_of_ids(objects["object_id"][labelled], k, seed)
    device = resolve_device(estimate.compute.device)
    parts, training_ids, meta = [], [], []
    with tempfile.TemporaryDirectory(dir=workdir, prefix="folds_") as tmp:
        for f in range(k):
            fold_store = os.path.join(tmp, f"fold{f}.hdf5")
            relabel_store(store_path, fold_store, keep=np.isfinite(objects["redshift"])
                          & (fold_of != f), note=f"fold {f} of {k}: its labels removed")
            with SceneStore(fold_store) as fs:
                z = fs.objects(["object_id", "redshift"])
            training_ids.append(z["object_id"][np.isfinite(z["redshift"])])
            log.info("fold %d/%d: training without %d labels", f + 1, k,
                     int((fold_of == f).sum()))
            result = train(fold_store, replace(train_config, seed=train_config.seed + f),
                           progress=progress)
            model = result.model.to(device).eval()
            density = FeatureDensity.from_state(result.extras["feature_density"])
            meta.append({"fold": f, "n_train_labels": int(training_ids[-1].size),
                         "history": result.meta["training"]["history"]})
            parts.append(_estimate_fold(model, density, store_path, fold_of == f, estimate,
                                        device))
    rows = np.concatenate([p[0] for p in parts])
    order = np.argsort(rows)
    ens = _concatenate([p[1] for p in parts], order)
    rows = rows[order]
    return CrossValidation(ensemble=ens, fold=fold_of[rows],
                           object_id=objects["object_id"][rows], training_ids=training_ids,
                           meta=meta)


def _estimate_fold(model, density, store_path: str, in_fold: np.ndarray,
                   estimate: EstimateConfig, device) -> tuple[np.ndarray, Any]:
    """Forced rows of the fold's objects (store rows, ensemble), from the chunks of scenes
    that list them."""

    from rail.deepdisc.net.estimate import forced_rows
    from rail.deepdisc.store.scenes import SceneStore

    rows, ensembles = [], []
    with SceneStore(store_path) as store:
        for chunk in store.iter_chunks(objects_per_chunk=estimate.chunk_size):
            keep = np.flatnonzero(in_fold[chunk.obj_start:chunk.obj_end])
            if keep.size:
                ens, _ = forced_rows(model, chunk, estimate, device, density)
                rows.append(chunk.obj_start + keep)
                ensembles.append(ens[keep])
    return np.concatenate(rows), _concatenate(ensembles)


def _concatenate(ensembles: list, order: np.ndarray | None = None):
    """One mixture ensemble of several (rows optionally reordered), ancillary columns kept
    one-dimensional (``qp.concatenate`` makes them columns of shape (n, 1))."""
    from rail.deepdisc.net.predict import Mixtures

    data = {k: np.concatenate([e.objdata[k] for e in ensembles]) for k in
            ("weights", "means", "stds")}
    ancil = {k: np.concatenate([np.asarray(e.ancil[k]) for e in ensembles])
             for k in ensembles[0].ancil}
    if order is not None:
        data = {k: v[order] for k, v in data.items()}
        ancil = {k: v[order] for k, v in ancil.items()}
    ens = Mixtures(**data).ensemble()
    ens.set_ancil(ancil)
    return ens
