"""Outputs written by several processes without parallel HDF5: one part per process, joined.

pip's h5py is built without MPI, so MPI ranks cannot write one HDF5 file together (RAIL's
chunked writer needs that). Instead each rank appends its rows, chunk by chunk, to a part
file of its own (:class:`PartWriter`), and when every rank is done one process joins the
parts in rank order into the output (:func:`join_parts`), copying a bounded number of rows
at a time: no process ever holds all the rows. A part has the layout of the final file:

* qp ensembles: groups ``data`` and ``ancil`` (one row per object, along the first axis)
  and ``meta`` (the parameterisation, e.g. the redshift grid; written once);
* flat tables (tables_io's HDF5 layout): one 1-D dataset per column at the root.

Rows are along the first axis of every dataset outside ``meta``; root attributes (e.g.
``provenance``) are the first part's. A chunk appended with its place in the output
(``start``: RAIL's table iterators deal chunks to ranks in turn) is put back there by the
join; chunks without one follow in rank order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

#: group that is not row-indexed (qp's parameterisation)
META = "meta"
#: rows copied at a time when joining
JOIN_ROWS = 100_000


def part_path(output: str | os.PathLike, rank: int) -> Path:
    """The part file of ``rank`` for an output (beside the output's temporary name)."""
    p = Path(output)
    return p.with_name(f"{p.name}.part{rank:05d}")


def _dataset_names(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset)
                 else None)
    return names


def _is_meta(name: str) -> bool:
    return name == META or name.startswith(f"{META}/")


class PartWriter:
    """One process's rows of an output, appended chunk by chunk to resizable datasets.

    Parameters
    ----------
    path
        The part file (created, truncated).
    attrs
        Root attributes (e.g. provenance).
    """

    def __init__(self, path: str | os.PathLike, attrs: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.n_rows = 0
        self._starts: list[tuple[int, int, int]] = []  # (output row, part row, rows)
        self._file = h5py.File(self.path, "w")
        for key, value in (attrs or {}).items():
            self._file.attrs[key] = value

    def append(self, rows: Mapping[str, Any], meta: Mapping[str, Any] | None = None,
               start: int | None = None) -> None:
        """Append rows: ``{name: array}`` with the row along the first axis (names may hold
        groups, ``"ancil/zmode"``); ``meta`` datasets are written with the first chunk;
        ``start`` is the chunk's first row in the output, if known."""
        lengths = {len(np.asarray(v)) for v in rows.values()}
        if len(lengths) > 1:
            raise ValueError(f"rows of different lengths {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        for name, values in rows.items():
            values = np.asarray(values)
            if name not in self._file:
                self._file.create_dataset(name, data=values, maxshape=(None, *values.shape[1:]),
                                          chunks=True)
            else:
                dset = self._file[name]
                dset.resize(self.n_rows + n, axis=0)
                dset[self.n_rows:] = values
        if meta and META not in self._file:
            for name, values in meta.items():
                self._file.create_dataset(f"{META}/{name}", data=np.asarray(values))
        if start is not None and n:
            self._starts.append((int(start), self.n_rows, n))
        self.n_rows += n

    def append_ensemble(self, ensemble, start: int | None = None) -> None:
        """Append a qp ensemble's rows (``data`` and ``ancil``) and its ``meta``."""
        tables = ensemble.build_tables()
        rows = {f"data/{k}": v for k, v in tables["data"].items()}
        rows.update({f"ancil/{k}": v for k, v in (tables.get("ancil") or {}).items()})
        self.append(rows, meta=tables["meta"], start=start)

    def close(self) -> None:
        """Close the part file (it keeps its rows)."""
        if self._file:
            self._file.attrs["n_rows"] = self.n_rows
            self._file.attrs["chunks"] = np.array(self._starts, np.int64).reshape(-1, 3)
            self._file.close()


def _copy_plan(handles: Sequence[h5py.File]) -> list[tuple[int, int, int]]:
    """``(part, part row, rows)`` runs in output order: chunks placed by their recorded
    output rows, the rest in rank order."""
    placed, plan = [], []
    for i, h in enumerate(handles):
        n = int(h.attrs.get("n_rows", 0))
        chunks = np.asarray(h.attrs.get("chunks", np.zeros((0, 3))), np.int64).reshape(-1, 3)
        if chunks.size and chunks[:, 2].sum() == n:
            placed += [(int(start), i, int(local), int(rows)) for start, local, rows in chunks]
        elif n:
            plan.append((i, 0, n))
    if placed and plan:
        raise ValueError("parts mix placed and unplaced chunks")
    return [(i, local, rows) for _, i, local, rows in sorted(placed)] or plan


def join_parts(parts: Sequence[str | os.PathLike], output: str | os.PathLike,
               remove: bool = True) -> int:
    """Join part files into ``output`` in output order; returns the number of rows.

    Every part must have the same datasets (a part without rows may have none). At most
    :data:`JOIN_ROWS` rows per dataset are held in memory at a time.
    """
    handles = [h5py.File(p, "r") for p in parts]
    try:
        with_rows = [h for h in handles if _dataset_names(h)] or handles[:1]
        names = _dataset_names(with_rows[0])
        plan = _copy_plan(handles)
        total = sum(rows for _, _, rows in plan)
        with h5py.File(output, "w") as out:
            for key, value in with_rows[0].attrs.items():
                if key not in ("n_rows", "chunks"):
                    out.attrs[key] = value
            for name in names:
                first = with_rows[0][name]
                if _is_meta(name):
                    out.create_dataset(name, data=first[()])
                    continue
                dset = out.create_dataset(name, shape=(total, *first.shape[1:]),
                                          dtype=first.dtype)
                at = 0
                for i, local, rows in plan:
                    for s in range(0, rows, JOIN_ROWS):
                        e = min(s + JOIN_ROWS, rows)
                        dset[at + s:at + e] = handles[i][name][local + s:local + e]
                    at += rows
    finally:
        for h in handles:
            h.close()
    if remove:
        for p in parts:
            Path(p).unlink(missing_ok=True)
    return total
