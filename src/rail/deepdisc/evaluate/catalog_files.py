"""Photo-z catalog files: writing a catalog in the format its file suffix says, reading it.

FITS, ECSV and HDF5 through astropy; Parquet with the mixture nested
(:mod:`rail.deepdisc.evaluate.catalog_arrow`); HATS through hats-import
(:mod:`rail.deepdisc.evaluate.catalog_hats`). The catalog itself is built by
:mod:`rail.deepdisc.evaluate.catalog`.
"""

from __future__ import annotations

import os

from rail.deepdisc.errors import OptionError
from rail.deepdisc.evaluate.catalog import catalog_format


def write_catalog(table, path: str | os.PathLike, inputs=()) -> str:
    """Write the catalog atomically in the format its suffix says (Parquet with the mixture
    nested, :func:`rail.deepdisc.evaluate.catalog_arrow.write_parquet`)."""
    import warnings

    from astropy.io.fits.verify import VerifyWarning

    from rail.deepdisc.store.atomic import atomic_output

    fmt = catalog_format(path)
    if fmt == "hats":
        from rail.deepdisc.evaluate.catalog_hats import write_hats

        write_hats([table], path, inputs=inputs)
        return os.fspath(path)
    with atomic_output(path, "catalog", inputs=inputs) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", VerifyWarning)  # long header values: CONTINUE
        if fmt == "parquet":
            from rail.deepdisc.evaluate.catalog_arrow import write_parquet

            write_parquet(table, tmp)
        elif fmt == "hdf5":
            table.write(tmp, format=fmt, path="catalog", serialize_meta=True)
        else:
            table.write(tmp, format=fmt)
    return os.fspath(path)


def read_catalog(path: str | os.PathLike):
    """A catalog file written by :func:`write_catalog` as an astropy ``Table`` (units,
    descriptions and metadata; the mixture as vector columns ``pdf_<name>`` whatever the
    format). A HATS catalog is read with ``lsdb.read_hats``."""
    from astropy.table import Table

    fmt = catalog_format(path)
    if fmt == "hats":
        raise OptionError(f"{path} is a HATS catalog: read it with lsdb.read_hats")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        from rail.deepdisc.evaluate.catalog_arrow import from_arrow

        return from_arrow(pq.read_table(path))
    return Table.read(path, format=fmt, **({"path": "catalog"} if fmt == "hdf5" else {}))
