"""Spectroscopic-like training labels: which simulated objects keep their redshift.

Real training sets are spectroscopic: incomplete, brighter than the photometric sample, and
with a success rate that dips where no strong line falls in the spectrograph's range (the
"redshift desert", 1.5 < z < 2.5 for optical spectrographs; NIRSpec covers it better). The
selection here follows that shape; objects that lose their redshift keep training detection
and masks.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass

import h5py
import numpy as np

from rail.deepdisc.errors import InputError
from rail.deepdisc.store.atomic import atomic_output
from rail.deepdisc.store.scenes import SceneStore


@dataclass(frozen=True)
class SpecSelection:
    """Success probability ``p = max_fraction * sigmoid((mag_50 - m) / width) * desert(z)``.

    ``desert(z) = 1 - desert_depth * exp(-0.5 ((z - desert_center) / desert_width)^2)``, and
    ``m`` is the magnitude in ``band``.
    """

    band: str = "jwst_f200w"
    mag_50: float = 27.5
    width: float = 0.4
    max_fraction: float = 0.8
    desert_center: float = 2.0
    desert_width: float = 0.35
    desert_depth: float = 0.5

    def probability(self, mag: np.ndarray, z: np.ndarray) -> np.ndarray:
        mag = np.asarray(mag, float)
        z = np.asarray(z, float)
        bright = 1.0 / (1.0 + np.exp(-(self.mag_50 - mag) / self.width))
        desert = 1.0 - self.desert_depth * np.exp(
            -0.5 * ((z - self.desert_center) / self.desert_width) ** 2)
        p = self.max_fraction * bright * desert
        return np.where(np.isfinite(mag) & np.isfinite(z), p, 0.0)


def spectroscopic_subset(objects: dict[str, np.ndarray], selection: SpecSelection,
                         seed: int) -> np.ndarray:
    """Boolean mask of the objects that get a (spectroscopic) redshift."""
    col = f"mag_{selection.band}"
    if col not in objects:
        raise InputError(f"objects lack column {col} for the spectroscopic selection")
    p = selection.probability(objects[col], objects["redshift"])
    return np.random.default_rng([seed, 31]).uniform(size=p.size) < p


def relabel_store(source: str | os.PathLike, output: str | os.PathLike, keep: np.ndarray,
                  kind: bytes = b"spec", note: str = "") -> str:
    """Copy a scene store, keeping ``redshift`` only where ``keep`` (else NaN, kind ``none``).

    Written to a temporary file and renamed, so ``output`` is never half-written; it may
    not be ``source``.
    """
    with SceneStore(source) as store:
        n = store.n_objects
        z = store.objects(["redshift"])["redshift"]
    keep = np.asarray(keep, bool)
    if keep.shape != (n,):
        raise InputError(f"keep has {keep.size} values for the {n} objects of {source}")
    with atomic_output(output, "scene store", inputs=[source]) as tmp:
        shutil.copyfile(source, tmp)
        with h5py.File(tmp, "r+") as f:
            f["objects/redshift"][...] = np.where(keep, z, np.nan)
            f["objects/redshift_kind"][...] = np.where(keep, kind, b"none").astype("S4")
            f.attrs["labels"] = note or f"{int(keep.sum())} of {n} objects keep a redshift"
    return os.fspath(output)


def selection_record(selection: SpecSelection, keep: np.ndarray) -> dict:
    """JSON-able description of a selection and its outcome."""
    return {**asdict(selection), "n_objects": int(keep.size), "n_labelled": int(keep.sum())}
