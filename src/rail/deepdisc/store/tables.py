"""Flat HDF5 tables (tables_io layout) that carry a provenance attribute and, for photometry
tables, the ``filters`` of their bands (:func:`table_filters`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from rail.deepdisc.errors import DeepDiscError, InputError
from rail.deepdisc.spectra.bands import BandFilter, parse_filters_attr
from rail.deepdisc.store.atomic import atomic_output


def write_table(table: Mapping[str, Any], path: str | os.PathLike,
                provenance: str | None = None, attrs: Mapping[str, Any] | None = None
                ) -> str:
    """Write a dict of 1-D columns as a flat HDF5 table, atomically.

    The layout is tables_io's for a dict of arrays (one dataset per column at the root;
    a nested dict becomes a group), so every RAIL tool reads it; text columns are stored
    as UTF-8 bytes. A ``provenance`` JSON string, if given, is added as a root attribute,
    and so are ``attrs`` (e.g. a photometry table's ``filters``).
    The file appears at ``path`` only when complete.
    """
    with atomic_output(path, "table") as tmp, h5py.File(tmp, "w") as f:
        _write_group(f, table, os.fspath(path))
        if provenance:
            f.attrs["provenance"] = provenance
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    return os.fspath(path)


def _write_group(group: h5py.Group, table: Mapping[str, Any], path: str) -> None:
    for name, values in table.items():
        if isinstance(values, Mapping):
            _write_group(group.create_group(str(name)), values, path)
            continue
        data = np.asarray(values)
        if data.dtype.kind == "U":
            data = np.char.encode(data, "utf-8")
        if data.dtype.kind == "O":
            raise InputError(f"{path}: column {name!r} holds Python objects, which an HDF5 "
                             "table cannot store")
        group.create_dataset(str(name), data=data)


def read_provenance(path: str | os.PathLike) -> str | None:
    """The provenance attribute of an HDF5 file, or None."""
    with h5py.File(path, "r") as f:
        value = f.attrs.get("provenance")
    return value.decode() if isinstance(value, bytes) else value


def table_filters(path: str | os.PathLike | None) -> dict[str, BandFilter]:
    """The band -> filter mapping of a table file's ``filters`` attribute (photometry of a
    store whose bands a survey file defines, :mod:`rail.deepdisc.spectra.bands`); {} for no
    path, a file that is not HDF5 or a table without the attribute.

    Raises
    ------
    InputError
        Naming the file, if the attribute is not a valid filters mapping.
    """
    if path in (None, "", "None", "none"):
        return {}
    path = os.path.expandvars(os.fspath(path))
    if not os.path.isfile(path) or not h5py.is_hdf5(path):
        return {}
    with h5py.File(path, "r") as f:
        value = f.attrs.get("filters")
    if value is None:
        return {}
    try:
        return parse_filters_attr(value, f"table {path}")
    except DeepDiscError as err:
        raise InputError(str(err)) from None
