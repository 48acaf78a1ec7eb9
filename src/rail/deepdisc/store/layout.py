"""What a scene store holds, and the checks every store passes when it is opened.

The names (format, version, required columns, redshift kinds) are defined here once;
:mod:`rail.deepdisc.store.scenes` reads and writes stores with them. The checks run on an
open HDF5 file before any pixel is read and raise :class:`~rail.deepdisc.errors.
SceneStoreError` naming the file and the dataset, column, scene or object at fault:

* :func:`validate_layout`: ``/images`` (and ``/ivar``) float32 of shape (N, C, H, W),
  ``/segmap`` integers of shape (N, H, W); ``/objects`` and ``/scenes`` with their required
  columns, every column 1-D and as long as its table (N rows for ``/scenes``);
  ``/objects/scene`` sorted and within ``[0, N)``;
* :func:`validate_objects`: ``object_id`` positive and unique, ``x``, ``y`` finite,
  ``redshift_kind`` known, boxes not inverted (``bbox_x0 <= bbox_x1``,
  ``bbox_y0 <= bbox_y1``; an empty box, ``x0 == x1`` or ``y0 == y1``, marks an object
  without a footprint) and within ``[0, W] x [0, H]``.
"""

from __future__ import annotations

import h5py
import numpy as np

from rail.deepdisc.errors import SceneStoreError

FORMAT = "deepdisc-scenes"
VERSION = 1

OBJECT_COLUMNS = (
    "scene", "object_id", "x", "y", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "ra", "dec",
    "redshift", "redshift_kind",
)
SCENE_COLUMNS = ("scene", "wcs", "x0", "y0", "tile")
REDSHIFT_KINDS = (b"spec", b"phot", b"true", b"none")


def validate_layout(f: h5py.File, path: str) -> None:
    """Check the datasets and the table shapes of an open store (see the module docstring).

    The caller has checked the root attributes and that ``/images`` is 4-D.
    """
    for group, columns in (("objects", OBJECT_COLUMNS), ("scenes", SCENE_COLUMNS)):
        if group not in f or not isinstance(f[group], h5py.Group):
            raise SceneStoreError(f"{path} has no /{group} table")
        missing = [c for c in columns if c not in f[group]]
        if missing:
            raise SceneStoreError(f"{path}: /{group} lacks columns {missing}")
    n = f["images"].shape[0]
    _check_pixels(f, path)
    _check_lengths(f, path, "scenes", n)
    _check_lengths(f, path, "objects", f["objects/scene"].shape[0])
    scene = f["objects/scene"][:]
    if scene.size and (np.any(np.diff(scene) < 0) or scene[0] < 0 or scene[-1] >= n):
        raise SceneStoreError(f"{path}: /objects is not sorted by a valid scene index")


def _check_pixels(f: h5py.File, path: str) -> None:
    shape = f["images"].shape
    for name in ("images", "ivar"):
        if name in f and f[name].dtype != np.float32:
            raise SceneStoreError(f"{path}: /{name} holds {f[name].dtype} values; a scene "
                                  "store holds float32 (write it again with SceneWriter)")
    if "ivar" in f and f["ivar"].shape != shape:
        raise SceneStoreError(f"{path}: /ivar shape {f['ivar'].shape} differs from /images "
                              f"{shape}")
    if "segmap" in f:
        if f["segmap"].shape != (shape[0], *shape[2:]):
            raise SceneStoreError(f"{path}: /segmap shape {f['segmap'].shape} differs from "
                                  f"/images {shape}")
        if f["segmap"].dtype.kind not in "iu":
            raise SceneStoreError(f"{path}: /segmap holds {f['segmap'].dtype} values; it must "
                                  "hold integer object ids")


def _check_lengths(f: h5py.File, path: str, group: str, n: int) -> None:
    for name, column in f[group].items():
        if not isinstance(column, h5py.Dataset) or column.ndim != 1 or column.shape[0] != n:
            shape = column.shape if isinstance(column, h5py.Dataset) else "a group"
            raise SceneStoreError(f"{path}: column /{group}/{name} has shape {shape}; every "
                                  f"column of /{group} must be 1-D with {n} rows")


def validate_objects(f: h5py.File, path: str) -> None:
    """Check ids, positions, redshift kinds and boxes (see the module docstring)."""
    g = f["objects"]
    scene = g["scene"][:]
    ids = g["object_id"][:]
    if ids.dtype.kind not in "iu":
        raise SceneStoreError(f"{path}: /objects/object_id holds {ids.dtype} values; object "
                              "ids are integers")
    bad = np.flatnonzero(ids <= 0)
    if bad.size:
        raise SceneStoreError(f"{path}: object_id {ids[bad[0]]} in scene {scene[bad[0]]} is "
                              f"not positive ({bad.size} such objects; 0 is background in "
                              "/segmap)")
    uniq, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        dup = uniq[counts > 1]
        where = sorted(set(scene[ids == dup[0]].tolist()))
        raise SceneStoreError(f"{path}: object_id {dup[0]} appears {counts[counts > 1][0]} "
                              f"times (scenes {where}); {dup.size} ids are duplicated")
    for name in ("x", "y"):
        bad = np.flatnonzero(~np.isfinite(g[name][:]))
        if bad.size:
            raise SceneStoreError(f"{path}: object {ids[bad[0]]} in scene {scene[bad[0]]} "
                                  f"has a non-finite {name}")
    kinds = set(np.unique(g["redshift_kind"][:]).tolist()) - set(REDSHIFT_KINDS)
    if kinds:
        raise SceneStoreError(f"{path}: /objects/redshift_kind holds {sorted(kinds)}; allowed "
                              f"are {list(REDSHIFT_KINDS)}")
    _check_boxes(g, path, ids, scene, *f["images"].shape[2:])


def _check_boxes(g: h5py.Group, path: str, ids: np.ndarray, scene: np.ndarray, height: int,
                 width: int) -> None:
    x0, y0, x1, y1 = (g[c][:] for c in ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"))
    for what, bad in (("is inverted (bbox_x1 < bbox_x0 or bbox_y1 < bbox_y0)",
                       (x1 < x0) | (y1 < y0)),
                      (f"reaches outside its {width} x {height} scene",
                       (x0 < 0) | (y0 < 0) | (x1 > width) | (y1 > height))):
        k = np.flatnonzero(bad)
        if k.size:
            i = k[0]
            raise SceneStoreError(f"{path}: the box [{x0[i]}, {y0[i]}, {x1[i]}, {y1[i]}] of "
                                  f"object {ids[i]} in scene {scene[i]} {what} ({k.size} such "
                                  "boxes)")
