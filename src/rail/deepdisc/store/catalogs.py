"""Source catalogs for tiling: read any common table format, pick and check the columns.

Formats by suffix: FITS (``.fits``, ``.fit``, ``.fits.gz``; a table extension may be named,
``cat.fits[PHOT]``, else the first table) and ``.csv``/``.ecsv``/``.txt``/``.dat`` through
astropy (so column units are honoured: RA/Dec in radians become degrees); HDF5 (``.hdf5``,
``.h5``, ``.hdf``; a group may be named with ``key``) and Parquet (``.parquet``, ``.pq``)
through tables_io. In-memory tables (a dict of columns, an astropy Table, a pandas
DataFrame) are accepted as they are.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rail.deepdisc.store.mosaic_io import MosaicError, split_spec
from rail.deepdisc.store.scenes import OBJECT_COLUMNS

log = logging.getLogger(__name__)

_ASTROPY_SUFFIXES = {".fits": "fits", ".fit": "fits", ".fts": "fits", ".csv": "ascii.csv",
                     ".ecsv": "ascii.ecsv", ".txt": "ascii", ".dat": "ascii"}
_TABLES_IO_SUFFIXES = (".hdf5", ".h5", ".hdf", ".parquet", ".pq")
#: redshift values below this are "unknown" (catalogs write -1 or -99 for no redshift)
_NO_REDSHIFT_BELOW = 0.0


@dataclass(frozen=True)
class CatalogColumns:
    """Which catalog columns hold what.

    Attributes
    ----------
    id_col
        Positive unique integers (the values of the segmentation map); ``""`` numbers the
        rows 1, 2, ...
    ra_col, dec_col
        Degrees (ICRS, as the mosaics' WCS).
    redshift_col
        Known redshifts; ``""`` for none. Non-finite or negative values mean unknown.
    redshift_kind
        ``spec`` or ``phot``: what the known redshifts are.
    size_col
        An object radius (e.g. a half-light or Kron radius) for boxes when there is no
        segmentation map; ``""`` for none.
    size_unit
        ``arcsec`` or ``pixel``.
    copy_columns
        Further columns copied into the scene store's ``/objects``.
    key
        HDF5 group or FITS table extension of the catalog (``""``: the only/first one).
    """

    id_col: str = "object_id"
    ra_col: str = "ra"
    dec_col: str = "dec"
    redshift_col: str = "redshift"
    redshift_kind: str = "spec"
    size_col: str = ""
    size_unit: str = "arcsec"
    copy_columns: tuple[str, ...] = ()
    key: str = ""

    def validate(self) -> None:
        """Raise ValueError naming the first bad option."""
        if not self.ra_col or not self.dec_col:
            raise ValueError("ra_col and dec_col must name catalog columns")
        if self.redshift_kind not in ("spec", "phot"):
            raise ValueError(f"redshift_kind must be 'spec' or 'phot', got "
                             f"{self.redshift_kind!r}")
        if self.size_unit not in ("arcsec", "pixel"):
            raise ValueError(f"size_unit must be 'arcsec' or 'pixel', got {self.size_unit!r}")
        reserved = set(OBJECT_COLUMNS) | {"edge_distance", "catalog_row"}
        clash = sorted(set(self.copy_columns) & reserved)
        if clash:
            raise ValueError(f"copy_columns may not include the scene store's own columns "
                             f"{clash}")


@dataclass
class Catalog:
    """The columns the tiler needs, one row per catalog object, in catalog order.

    ``rows`` are the rows of the catalog file (0-based) the objects come from.
    """

    ids: np.ndarray
    rows: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    redshift: np.ndarray
    size: np.ndarray | None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "catalog"
    n_dropped: int = 0

    def __len__(self) -> int:
        return self.ids.size


def read_table(source: Any, key: str = "") -> tuple[dict[str, Any], str]:
    """Any supported table (path or in-memory) as a dict of columns, and its name."""
    if isinstance(source, (str, os.PathLike)):
        return _read_path(os.fspath(source), key), os.fspath(source)
    if isinstance(source, Mapping):
        if key:
            if key not in source:
                raise MosaicError(f"catalog has no group {key!r}; it has {sorted(source)}")
            source = source[key]
        return {str(k): v for k, v in source.items()}, "catalog"
    if hasattr(source, "colnames"):  # astropy Table
        return {c: source[c] for c in source.colnames}, "catalog"
    if hasattr(source, "columns") and hasattr(source, "to_numpy"):  # pandas DataFrame
        return {str(c): source[c].to_numpy() for c in source.columns}, "catalog"
    raise TypeError(f"cannot read a catalog from a {type(source).__name__}")


def _read_path(path: str, key: str) -> dict[str, Any]:
    from astropy.table import Table

    path, ext = split_spec(path)
    if not os.path.isfile(path):
        raise MosaicError(f"catalog {path} does not exist")
    lower = path.lower().removesuffix(".gz")
    suffix = os.path.splitext(lower)[1]
    if suffix in _ASTROPY_SUFFIXES:
        kwargs: dict[str, Any] = {"format": _ASTROPY_SUFFIXES[suffix]}
        if kwargs["format"] == "fits" and (ext is not None or key):
            kwargs["hdu"] = ext if ext is not None else key
        try:
            table = Table.read(path, **kwargs)
        except Exception as err:  # astropy raises many types for unreadable tables
            raise MosaicError(f"catalog {path}: cannot read it: {err}") from err
        return {c: table[c] for c in table.colnames}
    if suffix in _TABLES_IO_SUFFIXES:
        import tables_io

        try:
            data = tables_io.read(path)
        except Exception as err:  # tables_io raises many types for unreadable files
            raise MosaicError(f"catalog {path}: cannot read it: {err}") from err
        data = tables_io.convert(data, tables_io.types.NUMPY_DICT)
        if data and all(isinstance(v, Mapping) for v in data.values()):
            if key:
                if key not in data:
                    raise MosaicError(f"catalog {path} has no group {key!r}; it has "
                                      f"{sorted(data)}")
                data = data[key]
            elif len(data) == 1:
                data = next(iter(data.values()))
            else:
                raise MosaicError(f"catalog {path} holds several tables {sorted(data)}; "
                                  "name one (catalog key)")
        return dict(data)
    raise MosaicError(f"catalog {path}: unknown table format {suffix!r} (use FITS, CSV, "
                      "ECSV, HDF5 or Parquet)")


def _column(table: Mapping[str, Any], name: str, role: str, source: str, option: str
            ) -> Any:
    if name not in table:
        raise MosaicError(f"{source} has no {role} column {name!r} (set {option}); its "
                          f"columns are {sorted(table)}")
    return table[name]


def _degrees(column: Any) -> np.ndarray:
    unit = getattr(column, "unit", None)
    values = np.asarray(column, dtype=float)
    if unit is not None and str(unit) not in ("", "deg"):
        from astropy import units as u

        try:
            values = (values * u.Unit(unit)).to_value(u.deg)
        except (u.UnitsError, ValueError) as err:
            raise MosaicError(f"an RA/Dec column is in {unit}, not an angle") from err
    return values


def load_catalog(source: Any, columns: CatalogColumns) -> Catalog:
    """Read and check a catalog.

    Rows with non-finite RA/Dec are dropped (with a warning, counted in ``n_dropped``).

    Raises
    ------
    MosaicError
        A missing column (named, with the columns the catalog has), ids that are not
        positive unique integers, an empty catalog.
    """
    columns.validate()
    table, name = read_table(source, columns.key)
    ra = _degrees(_column(table, columns.ra_col, "RA", name, "ra_col"))
    dec = _degrees(_column(table, columns.dec_col, "Dec", name, "dec_col"))
    n = ra.size
    if n == 0:
        raise MosaicError(f"{name} is empty")
    if columns.id_col:
        ids = np.asarray(_column(table, columns.id_col, "id", name, "id_col"))
        if ids.dtype.kind not in "iu":
            if ids.dtype.kind == "f" and np.all(np.isfinite(ids)) and \
                    np.all(ids == np.round(ids)):
                ids = ids.astype(np.int64)
            else:
                raise MosaicError(f"{name}: id column {columns.id_col!r} must hold integers "
                                  f"(the segmentation map's values), not {ids.dtype}")
        ids = ids.astype(np.int64)
    else:
        ids = np.arange(1, n + 1, dtype=np.int64)
    if np.any(ids <= 0):
        raise MosaicError(f"{name}: ids must be positive (0 is background in segmentation "
                          "maps)")
    if np.unique(ids).size != n:
        raise MosaicError(f"{name}: id column {columns.id_col!r} has duplicated values")
    if columns.redshift_col:
        z = np.asarray(_column(table, columns.redshift_col, "redshift", name,
                               "redshift_col"), dtype=float)
        z = np.where(np.isfinite(z) & (z >= _NO_REDSHIFT_BELOW), z, np.nan)
    else:
        z = np.full(n, np.nan)
    size = None
    if columns.size_col:
        size = np.asarray(_column(table, columns.size_col, "size", name, "size_col"),
                          dtype=float)
    extra = {c: np.asarray(_column(table, c, "copied", name, "copy_columns"))
             for c in columns.copy_columns}
    good = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    dropped = int(n - good.sum())
    if dropped:
        log.warning("%s: %d rows without a valid RA/Dec are left out", name, dropped)
    keep = np.flatnonzero(good)
    return Catalog(ids=ids[keep], rows=keep, ra=np.mod(ra[keep], 360.0), dec=dec[keep],
                   redshift=z[keep], size=None if size is None else size[keep],
                   extra={k: v[keep] for k, v in extra.items()}, source=name,
                   n_dropped=dropped)
