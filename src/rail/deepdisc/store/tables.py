"""Flat HDF5 tables (tables_io layout) that carry a provenance attribute."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np
import tables_io
from rail.core.data import Hdf5Handle

from rail.deepdisc.store.atomic import atomic_output


def write_table(table: Mapping[str, np.ndarray], path: str | os.PathLike,
                provenance: str | None = None) -> str:
    """Write a dict of 1-D columns as a flat HDF5 table, atomically.

    The file is what ``tables_io.write`` makes (readable by every RAIL tool); a
    ``provenance`` JSON string, if given, is added as a root attribute.
    """
    with atomic_output(path, "table") as tmp:
        tmp_h5 = tmp.with_suffix(".hdf5")
        try:
            tables_io.write({k: np.asarray(v) for k, v in table.items()}, os.fspath(tmp_h5))
            if provenance:
                with h5py.File(tmp_h5, "a") as f:
                    f.attrs["provenance"] = provenance
            os.replace(tmp_h5, tmp)
        finally:
            tmp_h5.unlink(missing_ok=True)
    return os.fspath(path)


def read_provenance(path: str | os.PathLike) -> str | None:
    """The provenance attribute of an HDF5 file, or None."""
    with h5py.File(path, "r") as f:
        value = f.attrs.get("provenance")
    return value.decode() if isinstance(value, bytes) else value


class ProvenanceHdf5Handle(Hdf5Handle):
    """``Hdf5Handle`` whose written file also records the producing stage's provenance.

    Set ``handle.provenance`` (a JSON string) before the handle is written.
    """

    provenance: str | None = None

    def write(self, **kwargs: Any) -> None:
        if self.path is None:
            raise ValueError(f"{self.tag}: write() called but no path is set")
        if self.data is None:
            raise ValueError(f"{self.tag}: write() called for {self.path} with no data")
        write_table(self.data, os.path.expandvars(self.path), self.provenance)
