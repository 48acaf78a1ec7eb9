"""The photo-z catalog as an Arrow table: the Parquet and HATS layout.

A catalog (:func:`rail.deepdisc.evaluate.catalog.build_catalog`, an astropy ``Table``) keeps
its columns, in order, except that the mixture's vector columns ``pdf_weights``,
``pdf_means`` and ``pdf_stds`` become one nested column ``pdf``: a struct of three lists
(``weights``, ``means``, ``stds``), one list per row, the layout nested-pandas and LSDB read
as a nested column (``catalog["pdf.means"]``) and write themselves. Units and descriptions go
to each field's metadata (``unit``, ``description``); the table's metadata (``METHOD``,
``QBIT<k>``, ``PROV``) to the schema's.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rail.deepdisc.evaluate.catalog import PDF_COLUMN, PDF_FIELDS


def to_arrow(table: Any):
    """The Arrow table of a catalog (``pyarrow.Table``), the mixture nested."""
    import pyarrow as pa

    vectors = [f"{PDF_COLUMN}_{k}" for k in PDF_FIELDS]
    fields, arrays = [], []
    for name in table.colnames:
        if name in vectors[1:]:
            continue
        if name == vectors[0]:
            array = _nested_pdf(table, vectors)
            fields.append(pa.field(PDF_COLUMN, array.type, metadata={
                "description": "Gaussian mixture of p(z): weights, means, stds"}))
            arrays.append(array)
            continue
        col = table[name]
        values = np.asarray(col)
        if values.ndim != 1:
            raise ValueError(f"catalog column {name} is not one value per row")
        array = pa.array(values)
        meta = {}
        if getattr(col, "unit", None) is not None:
            meta["unit"] = str(col.unit)
        if getattr(col, "description", None):
            meta["description"] = str(col.description)
        fields.append(pa.field(name, array.type, metadata=meta or None))
        arrays.append(array)
    meta = {str(k): str(v) for k, v in table.meta.items()}
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=meta))


def _nested_pdf(table: Any, vectors: list[str]):
    import pyarrow as pa

    first = np.asarray(table[vectors[0]])
    n, k = first.shape
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    lists = [pa.ListArray.from_arrays(offsets, pa.array(
        np.ascontiguousarray(np.asarray(table[v], np.float32)).ravel())) for v in vectors]
    return pa.StructArray.from_arrays(lists, names=list(PDF_FIELDS))


def from_arrow(arrow: Any):
    """The catalog of an Arrow table written by :func:`to_arrow` (astropy ``Table``; the
    nested mixture back to vector columns; HATS's ``_healpix_29`` index dropped)."""
    import pyarrow as pa
    from astropy.table import Table

    table = Table()
    for field in arrow.schema:
        if field.name == "_healpix_29":
            continue
        column = arrow.column(field.name)
        if field.name == PDF_COLUMN and pa.types.is_struct(field.type):
            struct = column.combine_chunks()
            for i, key in enumerate(PDF_FIELDS):
                lists = struct.field(i)
                values = lists.flatten().to_numpy(zero_copy_only=False)
                table[f"{PDF_COLUMN}_{key}"] = values.reshape(len(lists), -1)
            continue
        table[field.name] = column.to_numpy()
        meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
        if "unit" in meta:
            table[field.name].unit = meta["unit"]
        if "description" in meta:
            table[field.name].description = meta["description"]
    table.meta.update({k.decode(): v.decode() for k, v in (arrow.schema.metadata or {}).items()
                       if not k.startswith(b"pandas")})
    return table


def write_parquet(table: Any, path: str | os.PathLike) -> None:
    """Write a catalog as one Parquet file (not atomically: give a temporary name)."""
    import pyarrow.parquet as pq

    pq.write_table(to_arrow(table), os.fspath(path))
