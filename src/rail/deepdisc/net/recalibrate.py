"""Recalibrate a model file's redshift PDFs on the labelled objects of a scene store.

A model pretrained on randomised simulations (several SED libraries, realism on) is
calibrated on the mixture of its training domains; on images of one domain its PDFs can be
shifted and too wide. :func:`recalibrate_model` refits the redshift head's width factor and
mean shift in ln(1+z) (:func:`~rail.deepdisc.net.calibrate.calibrate_pdfs`) on a store the
user names, e.g. an unrandomised simulation of their survey or their labelled scenes, and
writes a new model file; the weights are untouched. This is ``rail-deepdisc calibrate``.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import numpy as np
import torch

from rail.deepdisc.errors import InputError, ModelFileError
from rail.deepdisc.net.calibrate import MIN_CALIBRATION_OBJECTS, calibrate_pdfs
from rail.deepdisc.net.data import SceneTrainingData, check_training_store
from rail.deepdisc.net.device import resolve_device, set_threads
from rail.deepdisc.net.model_file import build_from_state, model_meta, read_model_file
from rail.deepdisc.net.network import DeepDiscNet
from rail.deepdisc.store.atomic import atomic_output, check_output_path
from rail.deepdisc.store.join import scene_range
from rail.deepdisc.store.provenance import package_versions
from rail.deepdisc.store.scenes import SceneStore

log = logging.getLogger(__name__)


def calibration_scenes(store_path: str, bands: list[str], scenes: int | slice | None
                       ) -> np.ndarray:
    """Indices of the store's scenes used for the calibration, after checking the store
    (bands of the model, valid redshifts, enough labelled objects)."""
    with SceneStore(store_path) as store:
        check_training_store(store)
        if list(store.bands) != list(bands):
            raise ModelFileError(f"the model was trained on bands {list(bands)} but "
                                 f"{store_path} has bands {list(store.bands)}")
        index = np.asarray(scene_range(store, scenes))
        objects = store.objects(["scene", "redshift"])
        labelled = np.isin(objects["scene"], index) & np.isfinite(objects["redshift"])
        n_labelled = int(labelled.sum())
        n_seen = int(labelled_with_data(store, labelled).sum())
    if n_seen < MIN_CALIBRATION_OBJECTS:
        raise InputError(f"{store_path}: {n_labelled} objects of the chosen scenes have a "
                         f"redshift, {n_seen} of them with valid pixels at their centre; a "
                         f"calibration needs at least {MIN_CALIBRATION_OBJECTS}")
    return index


def labelled_with_data(store: SceneStore, rows: np.ndarray) -> np.ndarray:
    """Which of the objects ``rows`` (a mask over the store's objects) have a finite pixel
    of non-zero inverse variance, in some band, at their centre: objects without any are
    not fitted on (their images carry no information)."""
    out = np.zeros(rows.shape, bool)
    objects = store.objects(["scene", "x", "y"])
    for scene in np.unique(objects["scene"][rows]):
        sel = np.flatnonzero(rows & (objects["scene"] == scene))
        images = store._file["images"][int(scene)]  # as stored: NaN not yet set to 0
        _, h, w = images.shape
        px = np.clip(np.floor(objects["x"][sel] + 0.5).astype(int), 0, w - 1)
        py = np.clip(np.floor(objects["y"][sel] + 0.5).astype(int), 0, h - 1)
        valid = np.isfinite(images)
        if store.has_ivar:
            ivar = store._file["ivar"][int(scene)]
            valid &= np.isfinite(ivar) & (ivar > 0)
        out[sel] = valid[:, py, px].any(axis=0)
    return out


def calibrate_on_store(model: DeepDiscNet, store_path: str, bands: list[str],
                       scenes: int | slice | None = None, batch_size: int = 4,
                       device: torch.device | None = None, fit_shift: bool = True,
                       progress: bool = False) -> dict[str, Any]:
    """Refit ``model``'s PDF calibration (:func:`~rail.deepdisc.net.calibrate.calibrate_pdfs`)
    on the labelled objects of a store's scenes, after checking the store
    (:func:`calibration_scenes`); returns the fit with the store and the scenes."""
    index = calibration_scenes(store_path, bands, scenes)
    data = SceneTrainingData(store_path, index)
    try:
        fit = calibrate_pdfs(model, data, batch_size, device or torch.device("cpu"),
                             fit_shift, progress)
    finally:
        data.close()
    log.info("PDF widths x %.3f, means shifted by %+.4f in ln(1+z) (NLL %.3f -> %.3f on %d "
             "objects of %d scenes of %s)", fit["width_scale"], fit["z_shift"],
             fit["nll_before"], fit["nll_after"], fit["n_objects"], index.size, store_path)
    return {**fit, "store": os.path.abspath(store_path),
            "scenes": [int(index[0]), int(index[-1]) + 1], "fit_shift": fit_shift}


def recalibrate_model(model_path: str, store_path: str, output: str,
                      scenes: int | slice | None = None, fit_shift: bool = True,
                      batch_size: int = 4, device: str = "auto", num_threads: int = 0,
                      progress: bool = False) -> dict[str, Any]:
    """Write ``output``: the model of ``model_path`` with its PDFs recalibrated on the
    labelled objects of ``store_path`` (all scenes, the first ``scenes`` or a slice).

    The head's width factor and (with ``fit_shift``) mean shift are refitted by maximum
    likelihood (:func:`calibrate_on_store`); the model's metadata records the fit, the store,
    the scenes and the previous calibration. Returns the fit (factor, shift, objects, NLL
    before and after).

    Raises
    ------
    OutputPathError
        For an output path that is a directory or equals an input.
    InputError
        For a store with other bands, invalid redshifts, too few labelled objects or a
        selection beyond its scenes, or an unreadable model file.

    All are raised before any network pass.
    """
    check_output_path(output, "--output", inputs=[model_path, store_path])
    obj = read_model_file(model_path)
    meta = model_meta(obj)
    set_threads(num_threads)
    dev = resolve_device(device)
    net = build_from_state(obj, dev)
    fit = calibrate_on_store(net, store_path, meta["bands"], scenes, batch_size, dev,
                             fit_shift, progress)
    meta["calibration"] = {**fit, "previous": meta.get("calibration"),
                           "versions": package_versions()}
    head = "roi_heads.redshift_head."
    state = dict(obj["state_dict"])
    state[head + "width_scale"] = torch.tensor(fit["width_scale"], dtype=torch.float32)
    state[head + "z_shift"] = torch.tensor(fit["z_shift"], dtype=torch.float32)
    new = {**obj, "state_dict": state, "meta": json.dumps(meta, sort_keys=True)}
    with atomic_output(output, "model") as tmp:
        torch.save(new, tmp)
    return fit
