"""Join scene stores of one survey into one store: a training set that mixes simulated
configurations scene by scene (e.g. half the scenes with template SEDs, half with stellar
population synthesis), or fields simulated in parts.

The stores must agree on what a scene is (bands and their order, scene size, pixel scale,
zeropoint, flux unit, and whether ``/ivar`` and ``/segmap`` are stored). Objects and scenes keep
the columns every input has; their ``object_id`` (and the ``/segmap`` values that name
them) are
offset so that ids stay unique, and their scenes are renumbered in order. The root attributes
(survey, PSF model, filters) are the first store's; the provenance records every input with
its own provenance and the scenes taken from it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from rail.deepdisc.errors import SceneStoreError
from rail.deepdisc.store.scenes import SceneStore, SceneWriter
from rail.deepdisc.store.write_guard import check_writes

log = logging.getLogger(__name__)

#: store properties that must agree between the inputs
_MUST_AGREE = ("bands", "height", "width", "pixel_scale_arcsec", "zeropoint_ab", "flux_unit")
#: scenes read and written at a time
_CHUNK_SCENES = 32


def _text(value):
    """A scene value as the writer takes it: stored bytes (a WCS header) as text."""
    return value.decode() if isinstance(value, bytes) else value


def scene_range(store: SceneStore, selection: int | slice | None) -> range:
    """The scenes of a store a selection names: all of them (None), the first ``n`` (an int)
    or a slice of them; a negative index, an empty selection or one beyond the store's
    scenes is refused, naming the store."""
    def refuse(what: object) -> SceneStoreError:
        return SceneStoreError(f"scene store {store.path} holds {store.n_scenes} scenes; "
                               f"cannot take {what} (no negative index, no empty "
                               "selection)")

    if isinstance(selection, slice):
        start, stop = selection.start or 0, selection.stop
        if selection.step not in (None, 1) or start < 0 or (stop is not None and (
                stop > store.n_scenes or stop <= start)) or start >= store.n_scenes:
            raise refuse(f"{selection.start}:{selection.stop}")
        return range(start, store.n_scenes if stop is None else stop)
    if selection is None:
        if store.n_scenes == 0:
            raise refuse("its scenes")
        return range(store.n_scenes)
    if 1 <= selection <= store.n_scenes:
        return range(int(selection))
    raise refuse(selection)


def _scene_ranges(stores: Sequence[SceneStore], scenes: Sequence[int | slice | None] | None
                  ) -> list[range]:
    """The scenes taken from each store (:func:`scene_range`); a scene taken twice (one
    store given twice with overlapping selections) is refused."""
    if scenes is None:
        scenes = [None] * len(stores)
    if len(scenes) != len(stores):
        raise SceneStoreError(f"scenes gives {len(scenes)} selections for {len(stores)} stores")
    ranges = [scene_range(store, sel) for store, sel in zip(stores, scenes, strict=True)]
    taken: dict[str, set[int]] = {}
    for store, r in zip(stores, ranges, strict=True):
        key = os.path.realpath(store.path)
        twice = taken.setdefault(key, set()) & set(r)
        if twice:
            raise SceneStoreError(f"scene store {store.path} is given twice and scenes "
                                  f"{sorted(twice)[:5]} would be joined twice")
        taken[key] |= set(r)
    return ranges


def _check_compatible(stores: Sequence[SceneStore]) -> None:
    """Refuse stores whose scenes differ in kind, naming the file and the property."""
    first = stores[0]
    for store in stores[1:]:
        for key in _MUST_AGREE:
            a, b = getattr(first.info, key), getattr(store.info, key)
            if a != b:
                raise SceneStoreError(f"scene store {store.path}: {key} {b!r} differs from "
                                      f"{a!r} of {first.path}; only stores of one survey join")
        for key in ("has_ivar", "has_segmap"):
            if getattr(first, key) != getattr(store, key):
                raise SceneStoreError(f"scene store {store.path}: {key} differs from "
                                      f"{first.path}")


def join_stores(inputs: Sequence[str | os.PathLike], output: str | os.PathLike,
                scenes: Sequence[int | slice | None] | None = None, progress: bool = True) -> str:
    """Write the scenes of several scene stores, one after the other, into one store.

    Parameters
    ----------
    inputs
        Scene stores of one survey (checked before any pixel is copied).
    output
        The joined store; written atomically, and never one of the inputs.
    scenes
        The scenes to take from each input: None (all of them), an int ``n`` (the first
        ``n``) or a slice.
    progress
        Show a tqdm progress bar.

    Returns
    -------
    str
        The output path.

    Raises
    ------
    SceneStoreError
        For fewer than two inputs, stores of different surveys or scene sizes, or a scene
        count an input does not hold (naming the file and the property).
    OutputPathError
        If ``output`` is a directory or one of the inputs.
    """
    if len(inputs) < 2:
        raise SceneStoreError(f"joining needs at least two scene stores, got {len(inputs)}")
    check_writes({"output": output}, {"input": list(inputs)})  # before any store is opened
    stores = [SceneStore(p) for p in inputs]
    try:
        _check_compatible(stores)
        ranges = _scene_ranges(stores, scenes)
        counts = [len(r) for r in ranges]
        columns = [c for c in stores[0].object_columns
                   if all(c in s.object_columns for s in stores[1:]) and c != "scene"]
        each_scene_columns = [set(s.scenes(rows=slice(0, 0))) for s in stores]
        scene_columns = set.intersection(*each_scene_columns)
        dropped = sorted({c for s in stores for c in s.object_columns} - set(columns)
                         - {"scene"})
        dropped_scene = sorted(set.union(*each_scene_columns) - scene_columns)
        if dropped or dropped_scene:
            log.info("joined store keeps the columns every input has; dropped object "
                     "columns %s, scene columns %s", dropped, dropped_scene)
        info = stores[0].info
        provenance = {"joined": [{"path": os.path.abspath(s.path),
                                  "scenes": [r.start, r.stop], "provenance": s.provenance()}
                                 for s, r in zip(stores, ranges, strict=True)],
                      "dropped_object_columns": dropped,
                      "dropped_scene_columns": dropped_scene}
        attrs = {k: v for k, v in info.attrs.items()
                 if k not in {"pixel_scale_arcsec", "zeropoint_ab", "flux_unit", "survey",
                              "provenance"}}
        writer = SceneWriter(output, info.bands, info.height, info.width,
                             pixel_scale_arcsec=info.pixel_scale_arcsec,
                             zeropoint_ab=info.zeropoint_ab, flux_unit=info.flux_unit,
                             survey=info.survey, with_ivar=stores[0].has_ivar,
                             with_segmap=stores[0].has_segmap,
                             provenance=json.dumps(provenance, default=str), attrs=attrs,
                             inputs=inputs)
        bar = tqdm(total=sum(counts), desc="join", unit="scene", disable=not progress)
        with writer:
            id_offset = 0
            for store, taken in zip(stores, ranges, strict=True):
                ids = store.objects(["object_id"])["object_id"]
                for start in range(taken.start, taken.stop, _CHUNK_SCENES):
                    chunk = store.read_chunk(start, min(start + _CHUNK_SCENES, taken.stop))
                    objects = [{c: (v + id_offset if c == "object_id" else v)
                                for c, v in chunk.scene_objects(i).items() if c in columns}
                               for i in range(len(chunk))]
                    rows = [{k: _text(v[i]) for k, v in chunk.scenes.items()
                             if k in scene_columns and k != "scene"}
                            for i in range(len(chunk))]
                    segmap = None
                    if chunk.segmap is not None:
                        segmap = np.where(chunk.segmap > 0, chunk.segmap + id_offset, 0)
                    writer.add_scenes(chunk.images, objects, rows, ivar=chunk.ivar,
                                      segmap=segmap)
                    bar.update(len(chunk))
                id_offset += int(ids.max()) if ids.size else 0
        bar.close()
    finally:
        for store in stores:
            store.close()
    log.info("joined %s scenes of %d stores into %s", sum(counts), len(stores), output)
    return os.fspath(output)
