"""The scene store: one HDF5 file of multi-band images, truth maps and object tables.

Layout (``format = "deepdisc-scenes"``, ``version = 1``; see docs/architecture.md):

``/images``  float32 (N, C, H, W), one scene per chunk, one flux unit for all bands
``/ivar``    float32 (N, C, H, W), optional inverse variance (0 where there is no data)
``/segmap``  int32 (N, H, W), optional; 0 background, else the owning ``object_id``
``/objects`` 1-D columns, one row per object, sorted by scene (readable by
             ``tables_io.read(path, keys=["objects"])["objects"]``)
``/scenes``  1-D columns, one row per scene (``scene``, ``wcs`` header text, ``x0``, ``y0``,
             ``tile``)
root attrs   ``format``, ``version``, ``bands``, ``pixel_scale_arcsec``, ``zeropoint_ab``,
             ``flux_unit``, ``survey`` and ``provenance`` (JSON); simulated and imported
             stores add ``filters`` (band -> filter JSON,
             :func:`rail.deepdisc.spectra.bands.filters_attr`) and ``detection_band``

Pixel coordinates are 0-based with pixel centres on integers; boxes are half-open.
Writing goes to a temporary file renamed into place on success (:class:`SceneWriter`);
reading is lazy and chunked by whole scenes (:class:`SceneStore`), and RAIL stages see the
store through :class:`rail.deepdisc.store.handle.SceneHandle`.

Opening a store checks it (:mod:`rail.deepdisc.store.layout`): float32 pixels, every column
of a table as long as the table, positive unique object ids, boxes inside their scene, ...;
each problem is a :class:`~rail.deepdisc.errors.SceneStoreError` naming the file, the column
and the scene or object.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import h5py
import numpy as np

from rail.deepdisc.errors import DeepDiscError, OptionError, SceneStoreError
from rail.deepdisc.spectra.bands import BandFilter, parse_filters_attr
from rail.deepdisc.store.atomic import (
    check_output_path,
    remove_stale_temporaries,
    temporary_sibling,
)
from rail.deepdisc.store.file_format import check_format
from rail.deepdisc.store.layout import (
    FORMAT,
    OBJECT_COLUMNS,
    REDSHIFT_KINDS,
    SCENE_COLUMNS,
    VERSION,
    validate_layout,
    validate_objects,
)

__all__ = ["FORMAT", "OBJECT_COLUMNS", "REDSHIFT_KINDS", "SCENE_COLUMNS", "VERSION",
           "SceneChunk", "SceneStore", "SceneStoreError", "SceneWriter", "StoreInfo",
           "read_objects"]

log = logging.getLogger(__name__)

_INT_COLUMNS = {"scene": np.int64, "object_id": np.int64, "bbox_x0": np.int32,
                "bbox_y0": np.int32, "bbox_x1": np.int32, "bbox_y1": np.int32}
_FLOAT_COLUMNS = {"x": np.float64, "y": np.float64, "ra": np.float64, "dec": np.float64,
                  "redshift": np.float64}


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO":
        return [_decode(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_decode(v) for v in value]
    return value


#: no galaxy is known beyond this redshift; a larger label is a unit or column mistake
MAX_REDSHIFT = 30.0


@dataclass(frozen=True)
class StoreInfo:
    """Store-level metadata (root attributes).

    ``filters`` are the bands' filters of the store's ``filters`` attribute (band ->
    :class:`~rail.deepdisc.spectra.bands.BandFilter`, {} for a store without it): what
    functions that look up a band's curve are given for this store's bands.
    ``detection_band`` is the survey's detection band ('' if the store does not say).
    """

    bands: tuple[str, ...]
    pixel_scale_arcsec: float
    zeropoint_ab: float
    flux_unit: str
    survey: str
    height: int
    width: int
    attrs: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    filters: dict[str, BandFilter] = field(default_factory=dict)
    detection_band: str = ""

    @property
    def nbands(self) -> int:
        return len(self.bands)


@dataclass
class SceneChunk:
    """Whole scenes ``scene_start .. scene_end - 1`` with their objects.

    Attributes
    ----------
    images
        float32 (n, C, H, W).
    ivar, segmap
        Inverse variance (n, C, H, W) and segmentation (n, H, W), or None if not stored.
    objects
        Columns of the objects of these scenes, rows ``obj_start .. obj_end - 1`` of the store.
    scenes
        Columns of these scenes.
    info
        Store-level metadata.
    """

    images: np.ndarray | None
    ivar: np.ndarray | None
    segmap: np.ndarray | None
    objects: dict[str, np.ndarray]
    scenes: dict[str, np.ndarray]
    scene_start: int
    scene_end: int
    obj_start: int
    obj_end: int
    info: StoreInfo

    def __len__(self) -> int:
        return self.scene_end - self.scene_start

    @property
    def n_objects(self) -> int:
        return self.obj_end - self.obj_start

    def object_slice(self, i: int) -> slice:
        """Rows of ``objects`` that belong to the i-th scene of this chunk."""
        scene = self.scene_start + i
        col = self.objects["scene"]
        return slice(int(np.searchsorted(col, scene, "left")),
                     int(np.searchsorted(col, scene, "right")))

    def scene_objects(self, i: int) -> dict[str, np.ndarray]:
        """Object columns of the i-th scene of this chunk."""
        sl = self.object_slice(i)
        return {k: v[sl] for k, v in self.objects.items()}


def _as_object_columns(objects: Mapping[str, Any], scene: int) -> dict[str, np.ndarray]:
    cols = {k: np.asarray(v) for k, v in objects.items()}
    not_1d = sorted(k for k, v in cols.items() if v.ndim != 1)
    if not_1d:
        raise SceneStoreError(f"object columns {not_1d} of scene {scene} are not 1-D; /objects "
                              "holds one value per object in each column")
    n = {len(v) for v in cols.values()}
    if len(n) > 1:
        raise SceneStoreError(f"object columns of scene {scene} have different lengths: {n}")
    length = n.pop() if n else 0
    cols["scene"] = np.full(length, scene, dtype=np.int64)
    missing = [c for c in OBJECT_COLUMNS if c not in cols]
    if missing:
        raise SceneStoreError(f"objects of scene {scene} lack required columns {missing}")
    for name, dtype in {**_INT_COLUMNS, **_FLOAT_COLUMNS}.items():
        cols[name] = cols[name].astype(dtype)
    kinds = np.char.encode(cols["redshift_kind"].astype(str), "ascii") if \
        cols["redshift_kind"].dtype.kind == "U" else cols["redshift_kind"].astype("S")
    bad = set(kinds.tolist()) - set(REDSHIFT_KINDS)
    if bad:
        raise SceneStoreError(f"redshift_kind must be one of {REDSHIFT_KINDS}, got {sorted(bad)}")
    cols["redshift_kind"] = kinds.astype("S4")
    return cols


def _store_filters(attrs: Mapping[str, Any], path: str) -> dict[str, BandFilter]:
    """The band -> filter mapping of a store's ``filters`` attribute ({} without one)."""
    if "filters" not in attrs:
        return {}
    try:
        return parse_filters_attr(attrs["filters"], f"scene store {path}")
    except DeepDiscError as err:
        raise SceneStoreError(str(err)) from None


class SceneWriter:
    """Write a scene store scene by scene, atomically.

    Use as a context manager; the file appears at ``path`` only when the block ends
    without error. Object tables are kept in memory (they are small next to the images)
    and written at the end; images go to disk as they come.

    Parameters
    ----------
    path
        Output file.
    bands
        Band names, in the channel order of the images.
    height, width
        Scene size in pixels.
    pixel_scale_arcsec, zeropoint_ab, flux_unit, survey
        Root attributes.
    with_ivar, with_segmap
        Whether ``/ivar`` and ``/segmap`` are written.
    provenance
        JSON string stored in the ``provenance`` attribute.
    attrs
        Further root attributes (e.g. the PSF model of simulated stores).
    inputs
        The files the store is made from; ``path`` may not be one of them.

    The store is written to a hidden temporary file unique to this run beside ``path`` and
    renamed onto ``path`` only when every table has been written and the store passes the
    checks :class:`SceneStore` makes when opening it: the rename is the only publication, so
    a failure at any point (also while writing the tables) leaves ``path`` as it was and no
    temporary file behind.
    """

    def __init__(self, path: str | os.PathLike, bands: Sequence[str], height: int, width: int,
                 *, pixel_scale_arcsec: float, zeropoint_ab: float, flux_unit: str = "nJy",
                 survey: str = "", with_ivar: bool = True, with_segmap: bool = True,
                 provenance: str = "{}", attrs: Mapping[str, Any] | None = None,
                 inputs: Sequence[str | os.PathLike | None] = ()):
        if height <= 0 or width <= 0:
            raise SceneStoreError(f"scene size must be positive, got {height}x{width}")
        if not bands:
            raise SceneStoreError("a scene store needs at least one band")
        self.path = check_output_path(path, "scene store", inputs)
        self.bands = tuple(bands)
        self.shape = (len(self.bands), int(height), int(width))
        self._attrs = {
            "format": FORMAT, "version": VERSION, "bands": list(self.bands),
            "pixel_scale_arcsec": float(pixel_scale_arcsec), "zeropoint_ab": float(zeropoint_ab),
            "flux_unit": flux_unit, "survey": survey, "provenance": provenance,
        }
        reserved = set(self._attrs) & set(attrs or {})
        if reserved:
            raise SceneStoreError(f"attrs may not override {sorted(reserved)}")
        self._attrs.update(attrs or {})
        self._tmp = temporary_sibling(self.path)
        self._file: h5py.File | None = None
        self._with_ivar = with_ivar
        self._with_segmap = with_segmap
        self._objects: list[dict[str, np.ndarray]] = []
        self._scenes: list[dict[str, Any]] = []
        self.n_scenes = 0

    def __enter__(self) -> SceneWriter:
        remove_stale_temporaries(self.path)
        self._file = h5py.File(self._tmp, "w", track_order=False)
        c, h, w = self.shape
        f = self._file
        f.create_dataset("images", shape=(0, c, h, w), maxshape=(None, c, h, w),
                         chunks=(1, c, h, w), dtype=np.float32, track_times=False)
        if self._with_ivar:
            f.create_dataset("ivar", shape=(0, c, h, w), maxshape=(None, c, h, w),
                             chunks=(1, c, h, w), dtype=np.float32, compression="lzf",
                             track_times=False)
        if self._with_segmap:
            f.create_dataset("segmap", shape=(0, h, w), maxshape=(None, h, w),
                             chunks=(1, h, w), dtype=np.int32, compression="lzf",
                             track_times=False)
        return self

    def add_scenes(self, images: np.ndarray, objects: Sequence[Mapping[str, Any]],
                   scenes: Sequence[Mapping[str, Any]], ivar: np.ndarray | None = None,
                   segmap: np.ndarray | None = None) -> None:
        """Append a batch of scenes.

        Parameters
        ----------
        images
            (n, C, H, W) array.
        objects
            One column mapping per scene (``scene`` is filled in).
        scenes
            One mapping per scene with ``wcs``, ``x0``, ``y0``, ``tile`` (``scene`` filled in)
            and optionally further numeric columns (the same in every scene, e.g. the
            conditions a simulated scene drew).
        ivar, segmap
            (n, C, H, W) and (n, H, W) arrays when the store has them.
        """
        if self._file is None:
            raise RuntimeError("SceneWriter must be used as a context manager")
        images = np.asarray(images, dtype=np.float32)
        n = images.shape[0]
        if images.shape[1:] != self.shape:
            raise SceneStoreError(f"images have shape {images.shape[1:]}, store is {self.shape}")
        if len(objects) != n or len(scenes) != n:
            raise SceneStoreError("need one objects table and one scene row per image")
        if not np.all(np.isfinite(images)):
            raise SceneStoreError("images contain NaN or inf; set them to 0 with ivar 0")
        start = self.n_scenes
        self._append("images", images)
        if self._with_ivar:
            if ivar is None or ivar.shape != images.shape:
                raise SceneStoreError("this store needs ivar with the shape of images")
            self._append("ivar", np.asarray(ivar, dtype=np.float32))
        if self._with_segmap:
            if segmap is None or segmap.shape != (n, *self.shape[1:]):
                raise SceneStoreError("this store needs segmap of shape (n, H, W)")
            self._append("segmap", np.asarray(segmap, dtype=np.int32))
        for i in range(n):
            cols = _as_object_columns(objects[i], start + i)
            if self._objects and set(cols) != set(self._objects[0]):
                diff = set(cols) ^ set(self._objects[0])
                raise SceneStoreError(f"scene {start + i} has different object columns: {diff}")
            self._objects.append(cols)
            row = dict(scenes[i])
            missing = [c for c in SCENE_COLUMNS if c not in row and c != "scene"]
            if missing:
                raise SceneStoreError(f"scene {start + i} lacks columns {missing}")
            row["scene"] = start + i
            if self._scenes and set(row) != set(self._scenes[0]):
                diff = set(row) ^ set(self._scenes[0])
                raise SceneStoreError(f"scene {start + i} has different scene columns: {diff}")
            self._scenes.append(row)
        self.n_scenes += n

    def set_provenance(self, provenance: str) -> None:
        """Replace the provenance JSON (for writers that know what they did only at the end,
        e.g. how many objects a tiling kept); written when the block ends."""
        self._attrs["provenance"] = provenance

    def _append(self, name: str, data: np.ndarray) -> None:
        dset = self._file[name]
        old = dset.shape[0]
        dset.resize(old + data.shape[0], axis=0)
        dset[old:] = data

    def _write_tables(self) -> None:
        f = self._file
        grp = f.create_group("objects", track_order=False)
        if self._objects:
            cols = {k: np.concatenate([o[k] for o in self._objects]) for k in self._objects[0]}
        else:
            cols = {k: np.zeros(0, _INT_COLUMNS.get(k, _FLOAT_COLUMNS.get(k, "S4")))
                    for k in OBJECT_COLUMNS}
        for name in sorted(cols):
            grp.create_dataset(name, data=cols[name], track_times=False)
        sgrp = f.create_group("scenes", track_order=False)
        extra = sorted(set(self._scenes[0]) - set(SCENE_COLUMNS)) if self._scenes else []
        for name in (*SCENE_COLUMNS, *extra):
            values = [r[name] for r in self._scenes]
            if name == "wcs":
                data = np.array([str(v).encode() for v in values], dtype="S") if values \
                    else np.zeros(0, "S1")
            else:
                data = np.asarray(values, dtype=np.int64 if name in SCENE_COLUMNS else None)
            sgrp.create_dataset(name, data=data, track_times=False)
        for key, value in self._attrs.items():
            f.attrs[key] = value

    def __exit__(self, exc_type, exc, tb) -> None:
        complete = False
        try:
            if exc_type is None:
                self._write_tables()
                # the reader's checks, so that a store that is published can be read
                validate_layout(self._file, os.fspath(self.path))
                validate_objects(self._file, os.fspath(self.path))
                self._file.close()
                complete = True
        finally:
            self._file.close()  # a no-op once closed
            self._file = None
            try:
                if complete:
                    os.replace(self._tmp, self.path)  # the only publication
            finally:
                self._tmp.unlink(missing_ok=True)


class SceneStore:
    """Read-only, lazy access to a scene store.

    Opening checks the store before any pixel is read (every check of
    :mod:`rail.deepdisc.store.layout`: float32 pixels, full-length columns, positive unique
    ids, boxes not inverted and inside their scene, ...).

    A store may hold no scenes or no objects; work that needs them calls :meth:`require`.

    Parameters
    ----------
    path
        The HDF5 file.

    Raises
    ------
    SceneStoreError
        If the file is missing, not a scene store, of another version, or malformed (naming
        the file and the column, scene or object at fault).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise SceneStoreError(f"scene store {self.path} does not exist")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise SceneStoreError(f"{self.path} is not a readable HDF5 file: {err}") from err
        try:
            self.info = self._read_info()
            self._validate()
            self._offsets = np.searchsorted(self._file["objects/scene"][:],
                                            np.arange(self.n_scenes + 1))
        except OSError as err:  # a damaged file
            self._file.close()
            raise SceneStoreError(f"{self.path}: cannot read it: {err}") from err
        except Exception:
            self._file.close()
            raise

    def _read_info(self) -> StoreInfo:
        a = self._file.attrs
        check_format(self.path, a.get("format"), a.get("version"), FORMAT, VERSION,
                     "scene store", SceneStoreError)
        if "images" not in self._file or self._file["images"].ndim != 4:
            raise SceneStoreError(f"{self.path} has no /images of shape (scenes, bands, "
                                  "height, width)")
        missing = [k for k in ("bands", "pixel_scale_arcsec", "zeropoint_ab") if k not in a]
        if missing:
            raise SceneStoreError(f"{self.path} lacks the root attributes {missing}")
        _, c, h, w = self._file["images"].shape
        bands = tuple(_decode(a["bands"]))
        if len(bands) != c:
            raise SceneStoreError(f"{self.path}: {len(bands)} band names but {c} image channels")
        extra = {k: _decode(a[k]) for k in a if k not in {"format", "version", "bands"}}
        return StoreInfo(bands=bands, pixel_scale_arcsec=float(a["pixel_scale_arcsec"]),
                         zeropoint_ab=float(a["zeropoint_ab"]),
                         flux_unit=str(_decode(a.get("flux_unit", ""))),
                         survey=str(_decode(a.get("survey", ""))), height=h, width=w,
                         attrs=extra, path=self.path,
                         filters=_store_filters(extra, self.path),
                         detection_band=str(extra.get("detection_band", "")))

    def _validate(self) -> None:
        validate_layout(self._file, self.path)
        validate_objects(self._file, self.path)

    def require(self, what: str, *, objects: bool = True) -> None:
        """Refuse, before any work, a store with no scenes (or, with ``objects``, no objects).

        Parameters
        ----------
        what
            What the store is for, for the message (e.g. ``"training"``).
        objects
            Whether the work needs objects too (forced estimation, training), not just
            scenes (detection).

        Raises
        ------
        SceneStoreError
            Naming the file and what it lacks.
        """
        if self.n_scenes == 0:
            raise SceneStoreError(f"scene store {self.path} holds no scenes; nothing for {what}")
        if objects and self.n_objects == 0:
            raise SceneStoreError(f"scene store {self.path} lists no objects in its "
                                  f"{self.n_scenes} scenes; nothing for {what}")
        self.check_redshifts()

    def check_redshifts(self) -> None:
        """Refuse stored redshifts outside [0, :data:`MAX_REDSHIFT`] (NaN: unknown), the same
        way for training, estimation and photometry (a larger or negative label is a unit or
        column mistake, and would be copied into every output).

        Raises
        ------
        SceneStoreError
            Naming the file, the first offending object (id and scene) and how many.
        """
        if self.n_objects == 0:
            return
        obj = self.objects(["scene", "object_id", "redshift"])
        z = np.asarray(obj["redshift"], float)
        bad = ~np.isnan(z) & ~((z >= 0) & (z <= MAX_REDSHIFT))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SceneStoreError(
                f"scene store {self.path}: object {obj['object_id'][i]} of scene "
                f"{obj['scene'][i]} has redshift {z[i]!r}; redshifts must be in "
                f"[0, {MAX_REDSHIFT:g}] or NaN (unknown) ({int(bad.sum())} such objects)")

    # -- context management -------------------------------------------------------------
    def close(self) -> None:
        """Close the file."""
        if self._file:
            self._file.close()

    def __enter__(self) -> SceneStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- sizes ---------------------------------------------------------------------------
    @property
    def bands(self) -> tuple[str, ...]:
        return self.info.bands

    @property
    def filters(self) -> dict[str, BandFilter]:
        """The filters of the store's bands (its ``filters`` attribute; {} without one)."""
        return self.info.filters

    @property
    def detection_band(self) -> str:
        """The survey's detection band ('' if the store does not say)."""
        return self.info.detection_band

    @property
    def n_scenes(self) -> int:
        return int(self._file["images"].shape[0])

    @property
    def n_objects(self) -> int:
        return int(self._file["objects/scene"].shape[0])

    @property
    def has_ivar(self) -> bool:
        return "ivar" in self._file

    @property
    def has_segmap(self) -> bool:
        return "segmap" in self._file

    @property
    def object_columns(self) -> list[str]:
        return list(self._file["objects"].keys())

    def provenance(self) -> dict[str, Any]:
        """The provenance record written with the store (empty dict if none)."""
        return json.loads(self.info.attrs.get("provenance", "{}") or "{}")

    # -- tables ---------------------------------------------------------------------------
    def objects(self, columns: Sequence[str] | None = None,
                rows: slice = slice(None)) -> dict[str, np.ndarray]:
        """Object columns (all by default), optionally a row slice."""
        grp = self._file["objects"]
        names = list(grp.keys()) if columns is None else list(columns)
        missing = [c for c in names if c not in grp]
        if missing:
            raise SceneStoreError(f"{self.path}: /objects has no columns {missing}; "
                                  f"it has {list(grp.keys())}")
        return {c: grp[c][rows] for c in names}

    def scenes(self, rows: slice = slice(None)) -> dict[str, np.ndarray]:
        """Scene columns, optionally a row slice."""
        grp = self._file["scenes"]
        return {c: grp[c][rows] for c in grp}

    def object_range(self, scene_start: int, scene_end: int) -> tuple[int, int]:
        """Rows of /objects that belong to scenes ``scene_start .. scene_end - 1``."""
        return int(self._offsets[scene_start]), int(self._offsets[scene_end])

    def objects_per_scene(self) -> np.ndarray:
        """Number of objects in each scene."""
        return np.diff(self._offsets)

    # -- pixels ---------------------------------------------------------------------------
    def read_chunk(self, scene_start: int, scene_end: int, pixels: bool = True) -> SceneChunk:
        """Scenes ``scene_start .. scene_end - 1`` with their objects.

        With ``pixels=False`` only the tables are read (images, ivar, segmap are None).
        """
        if not 0 <= scene_start <= scene_end <= self.n_scenes:
            raise IndexError(f"scene range {scene_start}:{scene_end} outside 0:{self.n_scenes}")
        f = self._file
        sl = slice(scene_start, scene_end)
        o0, o1 = self.object_range(scene_start, scene_end)
        images = ivar = None
        if pixels:
            images = f["images"][sl]
            ivar = f["ivar"][sl] if self.has_ivar else None
            images, ivar = self._missing_data(images, ivar, scene_start)
        return SceneChunk(
            images=images, ivar=ivar,
            segmap=f["segmap"][sl] if pixels and self.has_segmap else None,
            objects=self.objects(rows=slice(o0, o1)),
            scenes=self.scenes(rows=sl),
            scene_start=scene_start, scene_end=scene_end, obj_start=o0, obj_end=o1,
            info=self.info,
        )

    def _missing_data(self, images: np.ndarray, ivar: np.ndarray | None, scene_start: int
                      ) -> tuple[np.ndarray, np.ndarray | None]:
        """Non-finite pixels are missing data: value 0 and inverse variance 0 (logged with
        their scenes), so no NaN reaches a network, a photometry or a result."""
        bad = ~np.isfinite(images)
        if ivar is not None:
            bad |= ~np.isfinite(ivar)
        if not bad.any():
            return images, ivar
        scenes = scene_start + np.flatnonzero(bad.any(axis=(1, 2, 3)))
        log.warning("%s: %d non-finite pixels in scenes %s are treated as missing data "
                    "(value 0, inverse variance 0)", self.path, int(bad.sum()),
                    scenes.tolist()[:10])
        images = np.where(bad, np.float32(0), images)
        if ivar is not None:
            ivar = np.where(bad, np.float32(0), ivar)
        return images, ivar

    def chunk_ranges(self, objects_per_chunk: int | None = None,
                     scenes_per_chunk: int | None = None, rank: int = 0,
                     size: int = 1) -> list[tuple[int, int]]:
        """Scene ranges of the chunks that MPI rank ``rank`` of ``size`` reads.

        Scenes are grouped in order into chunks of ``scenes_per_chunk`` scenes, or of whole
        scenes holding about ``objects_per_chunk`` objects (at least one scene each); the
        list of chunks is then split into ``size`` contiguous blocks, one per rank.
        """
        if size < 1 or not 0 <= rank < size:
            raise ValueError(f"invalid MPI rank {rank} of {size}")
        n = self.n_scenes
        if scenes_per_chunk is not None:
            if scenes_per_chunk < 1:
                raise OptionError(f"scenes_per_chunk must be >= 1, got {scenes_per_chunk}")
            bounds = [*range(0, n, scenes_per_chunk), n]
        else:
            per = max(int(objects_per_chunk or 10000), 1)
            counts = np.cumsum(self.objects_per_scene())
            bounds = [0]
            while bounds[-1] < n:
                start = bounds[-1]
                base = counts[start - 1] if start else 0
                nxt = int(np.searchsorted(counts, base + per, "right"))
                bounds.append(min(max(nxt, start + 1), n))
        chunks = list(pairwise(bounds))
        split = np.array_split(np.arange(len(chunks)), size)[rank]
        return [chunks[i] for i in split]

    def iter_chunks(self, objects_per_chunk: int | None = None,
                    scenes_per_chunk: int | None = None, rank: int = 0, size: int = 1,
                    pixels: bool = True) -> Iterator[SceneChunk]:
        """Iterate over this rank's chunks of whole scenes (see :meth:`chunk_ranges`)."""
        for s0, s1 in self.chunk_ranges(objects_per_chunk, scenes_per_chunk, rank, size):
            yield self.read_chunk(s0, s1, pixels=pixels)


def read_objects(path: str | os.PathLike, columns: Sequence[str] | None = None
                 ) -> dict[str, np.ndarray]:
    """The /objects table of a scene store (no pixels read)."""
    with SceneStore(path) as store:
        return store.objects(columns)
