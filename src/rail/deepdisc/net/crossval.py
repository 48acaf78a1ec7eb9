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

On a CPU the folds train side by side, one spawned process per fold and group of cores
(:func:`fold_processes`): independent trainings use several cores far better than one
training's threads do (on the 2-core machine two threads train no faster than one, two
processes twice as fast). On a GPU, or under MPI/torchrun, they run one after another.
Each fold's result does not depend on which way it ran (same seed, same data).
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
from rail.deepdisc.workers import usable_cores

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
    from rail.deepdisc.net.device import resolve_device
    from rail.deepdisc.sim.labels import relabel_store
    from rail.deepdisc.store.scenes import SceneStore

    with SceneStore(store_path) as store:
        objects = store.objects(["object_id", "scene", "redshift"])
    labelled = np.flatnonzero(np.isfinite(objects["redshift"]))
    fold_of = np.full(objects["object_id"].size, -1, np.int64)
    fold_of[labelled] = fold_of_ids(objects["object_id"][labelled], k, seed)
    device = resolve_device(estimate.compute.device)
    processes, threads = fold_processes(k, device.type, train_config.compute.num_threads)
    training_ids = []
    with tempfile.TemporaryDirectory(dir=workdir, prefix="folds_") as tmp:
        tasks = []
        for f in range(k):
            fold_store = os.path.join(tmp, f"fold{f}.hdf5")
            relabel_store(store_path, fold_store, keep=np.isfinite(objects["redshift"])
                          & (fold_of != f), note=f"fold {f} of {k}: its labels removed")
            with SceneStore(fold_store) as fs:
                z = fs.objects(["object_id", "redshift"])
            training_ids.append(z["object_id"][np.isfinite(z["redshift"])])
            log.info("fold %d/%d: training without %d labels", f + 1, k,
                     int((fold_of == f).sum()))
            tasks.append(_FoldTask(store_path, fold_store, f,
                                   replace(train_config, seed=train_config.seed + f),
                                   estimate, fold_of == f))
        if processes > 1:
            parts = _run_in_processes(tasks, processes, threads, tmp, progress)
        else:
            parts = [_train_and_estimate(t, device, progress) for t in tasks]
    rows = np.concatenate([p[0] for p in parts])
    order = np.argsort(rows)
    ens = _concatenate([p[1] for p in parts], order)
    rows = rows[order]
    return CrossValidation(ensemble=ens, fold=fold_of[rows],
                           object_id=objects["object_id"][rows], training_ids=training_ids,
                           meta=[{"fold": f, "n_train_labels": int(ids.size), "history": p[2]}
                                 for f, (ids, p) in enumerate(zip(training_ids, parts,
                                                                  strict=True))])


def fold_processes(k: int, device_type: str, num_threads: int) -> tuple[int, int]:
    """How ``k`` folds train here: (processes side by side, torch threads of each).

    On the CPU, all usable cores: ``num_threads`` each (0: the cores shared out among
    ``min(k, cores)`` processes); on a GPU, or when this job runs several processes on the
    node (MPI, torchrun), one process with ``num_threads``.
    """
    from rail.deepdisc.net.device import processes_on_node

    if device_type != "cpu" or k < 2 or processes_on_node() > 1:
        return 1, num_threads
    cores = usable_cores()
    if num_threads <= 0:
        processes = min(k, cores)
        return processes, max(1, cores // processes)
    return min(k, max(1, cores // num_threads)), num_threads


@dataclass
class _FoldTask:
    """One fold: the store without its labels, the training and where its objects are."""

    store_path: str
    fold_store: str
    fold: int
    train_config: TrainConfig
    estimate: EstimateConfig
    in_fold: np.ndarray


def _train_and_estimate(task: _FoldTask, device, progress: bool
                        ) -> tuple[np.ndarray, Any, list[dict[str, Any]]]:
    """Train the fold's model and estimate the fold's objects: (store rows, ensemble,
    training history)."""
    from rail.deepdisc.net.density import FeatureDensity
    from rail.deepdisc.net.train import train

    result = train(task.fold_store, task.train_config, progress=progress)
    model = result.model.to(device).eval()
    density = FeatureDensity.from_state(result.extras["feature_density"])
    rows, ens = _estimate_fold(model, density, task.store_path, task.in_fold, task.estimate,
                               device)
    return rows, ens, result.meta["training"]["history"]


def _fold_in_process(args: tuple[_FoldTask, str]
                     ) -> tuple[np.ndarray, str, list[dict[str, Any]]]:
    """A worker process's fold: the ensemble is written to ``path`` (read back by the
    parent)."""
    from rail.deepdisc.net.device import resolve_device

    task, path = args
    rows, ens, history = _train_and_estimate(task, resolve_device("cpu"), progress=False)
    ens.write_to(path)
    return rows, path, history


def _run_in_processes(tasks: list[_FoldTask], processes: int, threads: int, tmp: str,
                      progress: bool = True
                      ) -> list[tuple[np.ndarray, Any, list[dict[str, Any]]]]:
    """Every fold in a pool of ``processes`` spawned workers, ``threads`` torch threads
    each, in fold order (a progress bar counts the folds done)."""
    import qp
    from tqdm.auto import tqdm

    from rail.deepdisc.workers import ordered_parallel_map

    def on_cpu(config):
        return replace(config, compute=replace(config.compute, device="cpu",
                                               num_threads=threads))

    jobs = [(replace(t, train_config=on_cpu(t.train_config), estimate=on_cpu(t.estimate)),
             os.path.join(tmp, f"oof{t.fold}.hdf5")) for t in tasks]
    log.info("cross-validation: %d folds in %d processes of %d thread(s)", len(tasks),
             processes, threads)
    parts = []
    with tqdm(total=len(jobs), desc=f"cross-validation ({processes} processes)", unit="fold",
              disable=not progress) as bar:
        results = ordered_parallel_map(_fold_in_process, jobs, processes, window=len(jobs))
        for f, (rows, path, history) in enumerate(results):
            log.info("fold %d/%d trained and estimated", f + 1, len(tasks))
            parts.append((rows, qp.read(path), history))
            bar.update()
    return parts


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
