"""Provenance records written into every result file: configuration and versions."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from typing import Any

import numpy as np

#: distributions whose versions are recorded
TRACKED_PACKAGES = (
    "pz-rail-deepdisc", "pz-rail-base", "qp-prob", "tables-io", "ceci", "numpy", "scipy",
    "astropy", "h5py", "galsim", "astro-sedpy", "photutils", "torch", "torchvision",
    "eazy", "pz-rail-bpz", "desc-bpz",
)


def package_versions(packages: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of the tracked distributions (missing ones omitted)."""
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    out["python"] = platform.python_version()
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def provenance(config: dict[str, Any], what: str) -> dict[str, Any]:
    """A JSON-able provenance record: what made the file, with which config and versions.

    No time stamps, so the same inputs and seed give byte-identical files.
    """
    return {"created_by": what, "config": _jsonable(config), "versions": package_versions()}


def provenance_json(config: dict[str, Any], what: str) -> str:
    """:func:`provenance` as a sorted JSON string (for HDF5 attributes)."""
    return json.dumps(provenance(config, what), sort_keys=True)
