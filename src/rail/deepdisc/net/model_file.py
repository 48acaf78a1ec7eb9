"""Model files: a state dict plus a JSON description, never arbitrary pickles.

A model file (``.pt``) is ``torch.save`` of a dict holding ``format``, ``version``, the
``state_dict`` (tensors), ``meta`` (a JSON string: bands, architecture, normalisation,
calibration, training provenance and versions) and extra tensor dicts (e.g. the training
set's ``feature_density``). It loads with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from rail.deepdisc.errors import ModelFileError
from rail.deepdisc.net.network import DeepDiscNet
from rail.deepdisc.store.file_format import check_format

MODEL_FORMAT = "deepdisc-model"
MODEL_VERSION = 1


def model_state(model: DeepDiscNet, meta: dict[str, Any],
                extras: dict[str, Any] | None = None) -> dict[str, Any]:
    """The object saved in a model file: tensors, numbers and a JSON string, nothing else.

    ``extras`` holds further tensor dicts, e.g. ``feature_density`` (the training set's
    feature density for out-of-distribution flags).
    """
    full = {**meta, "architecture": model.arch, "n_bands": model.n_bands,
            "redshift_weight": model.roi_heads.redshift_weight}
    return {"format": MODEL_FORMAT, "version": MODEL_VERSION,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "meta": json.dumps(full, sort_keys=True), **(extras or {})}


def save_model(path: str | os.PathLike, model: DeepDiscNet, meta: dict[str, Any],
               extras: dict[str, Any] | None = None) -> str:
    """Write a model file atomically (``torch.save`` of :func:`model_state`)."""
    from rail.deepdisc.store.atomic import atomic_output

    with atomic_output(path, "model") as tmp:
        torch.save(model_state(model, meta, extras), tmp)
    return os.fspath(path)


def read_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """Load a model file with ``weights_only=True`` and check its format.

    Raises
    ------
    ModelFileError
        If the file is missing, is not a model file of this package, or holds anything but
        tensors, numbers and strings (such files are never unpickled).
    """
    import pickle
    import zipfile

    if not os.path.isfile(path):
        raise ModelFileError(f"model file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile,
            OSError) as err:
        # torch's message advises loading with weights_only=False: never repeat that
        if "unsupported global" in str(err).lower():
            raise ModelFileError(
                f"{path} is not a pz-rail-deepdisc model file: it holds Python objects other "
                "than tensors, numbers and strings, which this package never unpickles"
            ) from None
        raise ModelFileError(f"{path} is not a readable pz-rail-deepdisc model file "
                             f"({type(err).__name__})") from None
    return check_model_state(obj, str(path))


def check_model_state(obj: Any, source: str = "model") -> dict[str, Any]:
    """Validate a loaded model object; return it."""
    fmt, version = (obj.get("format"), obj.get("version")) if isinstance(obj, dict) \
        else (None, None)
    check_format(source, fmt, version, MODEL_FORMAT, MODEL_VERSION, "pz-rail-deepdisc model",
                 ModelFileError)
    return obj


def model_meta(obj: dict[str, Any]) -> dict[str, Any]:
    """The metadata dict of a loaded model object."""
    return json.loads(obj["meta"])


#: buffers that older model files may lack (their defaults apply)
_OPTIONAL_BUFFERS = {"roi_heads.redshift_head.width_scale", "roi_heads.redshift_head.z_shift"}


def build_from_state(obj: dict[str, Any], device: str | torch.device = "cpu") -> DeepDiscNet:
    """Rebuild the network from a loaded model object and load its weights."""
    meta = model_meta(obj)
    arch = dict(meta["architecture"])
    arch["z_init"] = None  # the weights carry the trained means
    net = DeepDiscNet(arch, int(meta["n_bands"]), float(meta.get("redshift_weight", 1.0)))
    missing, unexpected = net.load_state_dict(obj["state_dict"], strict=False)
    # models saved before the PDF calibration existed lack its buffers (1 and 0)
    missing = set(missing) - _OPTIONAL_BUFFERS
    if missing or unexpected:
        raise ModelFileError(f"model weights do not fit the architecture: missing "
                             f"{sorted(missing)}, unexpected {sorted(unexpected)}")
    net.arch = meta["architecture"]
    return net.to(device)
