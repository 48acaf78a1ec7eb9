"""The RAIL data handles of this package: scene stores and tables with provenance.

Kept apart from :mod:`rail.deepdisc.store.scenes` and :mod:`rail.deepdisc.store.tables` so
that reading and writing those files does not import RAIL's data layer (qp, ceci): the
simulator's worker processes and the command line stay light.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

from rail.core.data import DataHandle, Hdf5Handle

from rail.deepdisc.errors import SceneStoreError
from rail.deepdisc.store.atomic import atomic_output
from rail.deepdisc.store.scenes import SceneChunk, SceneStore
from rail.deepdisc.store.tables import write_table


class SceneHandle(DataHandle):
    """RAIL data handle for a scene store (suffix ``hdf5``).

    The handle's data is a lazily read :class:`SceneStore`. Its size is the number of
    objects (the rows of an estimator's output) and its iterator yields
    ``(obj_start, obj_end, SceneChunk)`` of whole scenes, about ``chunk_size`` objects a
    chunk (or ``scenes_per_chunk`` scenes), split across MPI ranks by scene.
    """

    suffix = "hdf5"
    interactive_type = "rail.deepdisc.store.scenes.SceneStore"

    @classmethod
    def _open(cls, path: str, **kwargs: Any) -> SceneStore:
        return SceneStore(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any) -> SceneStore:
        return SceneStore(path)

    @classmethod
    def _write(cls, data: SceneStore, path: str, **kwargs: Any) -> None:
        cls._validate_data(data)
        if os.path.abspath(data.path) == os.path.abspath(path):
            return
        with atomic_output(path, "scene store") as tmp:
            shutil.copyfile(data.path, tmp)

    @classmethod
    def _validate_data(cls, data: Any) -> None:
        if not isinstance(data, SceneStore):
            raise TypeError(f"SceneHandle data must be a SceneStore, not {type(data)}; "
                            "open the file with rail.deepdisc.store.scenes.SceneStore")

    def _size(self, path: str, **kwargs: Any) -> int:
        with SceneStore(path) as store:
            return store.n_objects

    def _data_size(self, data: SceneStore, **kwargs: Any) -> int:
        return data.n_objects

    @staticmethod
    def _chunks(store: SceneStore, **kwargs: Any) -> Iterator[tuple[int, int, SceneChunk]]:
        for chunk in store.iter_chunks(
            objects_per_chunk=kwargs.get("chunk_size"),
            scenes_per_chunk=kwargs.get("scenes_per_chunk"),
            rank=kwargs.get("rank", 0), size=kwargs.get("parallel_size", 1),
            pixels=kwargs.get("pixels", True),
        ):
            yield chunk.obj_start, chunk.obj_end, chunk

    def _in_memory_iterator(self, **kwargs: Any) -> Iterator[tuple[int, int, SceneChunk]]:
        return self._chunks(self.data, **kwargs)

    @classmethod
    def _iterator(cls, path: str, **kwargs: Any) -> Iterator[tuple[int, int, SceneChunk]]:
        store = SceneStore(path)
        try:
            yield from cls._chunks(store, **kwargs)
        finally:
            store.close()

    @classmethod
    def _check_data_columns(cls, path: str, columns_to_check: list[str],
                            parent_groupname: str | None = None, **kwargs: Any) -> None:
        with SceneStore(path) as store:
            missing = [c for c in columns_to_check if c not in store.object_columns]
        if missing:
            raise SceneStoreError(f"scene store {path}: /objects lacks columns {missing}")


class ProvenanceHdf5Handle(Hdf5Handle):
    """``Hdf5Handle`` whose written file also records the producing stage's provenance.

    Set ``handle.provenance`` (a JSON string) before the handle is written, and
    ``handle.attrs`` for further root attributes (e.g. a photometry table's ``filters``).
    """

    provenance: str | None = None
    attrs: dict[str, Any] | None = None

    def write(self, **kwargs: Any) -> None:
        if self.path is None:
            raise ValueError(f"{self.tag}: write() called but no path is set")
        if self.data is None:
            raise ValueError(f"{self.tag}: write() called for {self.path} with no data")
        write_table(self.data, os.path.expandvars(self.path), self.provenance, self.attrs)
