"""Source catalogs for tiling: read any common table format, pick and check the columns.

Formats by suffix: FITS (``.fits``, ``.fit``, ``.fits.gz``; a table extension may be named,
``cat.fits[PHOT]``, else the first table) and ``.csv``/``.ecsv``/``.txt``/``.dat`` through
astropy (so column units are honoured: RA/Dec in radians become degrees); HDF5 (``.hdf5``,
``.h5``, ``.hdf``; a group may be named with ``catalog_key``) and Parquet (``.parquet``, ``.pq``)
through tables_io. In-memory tables (a dict of columns, an astropy Table, a pandas
DataFrame) are accepted as they are.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rail.deepdisc.errors import OptionError
from rail.deepdisc.options import Options, option
from rail.deepdisc.store.layout import OBJECT_COLUMNS
from rail.deepdisc.store.mosaic_io import MosaicError, split_spec

log = logging.getLogger(__name__)

_ASTROPY_SUFFIXES = {".fits": "fits", ".fit": "fits", ".fts": "fits", ".csv": "ascii.csv",
                     ".ecsv": "ascii.ecsv", ".txt": "ascii", ".dat": "ascii"}
_TABLES_IO_SUFFIXES = (".hdf5", ".h5", ".hdf", ".parquet", ".pq")
#: redshift values below this are "unknown" (catalogs write -1 or -99 for no redshift)
_NO_REDSHIFT_BELOW = 0.0


@dataclass(frozen=True, kw_only=True)
class CatalogColumns(Options):
    """Which catalog columns hold what (the catalog options of ``MosaicTiler``/``tile``)."""

    id_col: str = option("object_id", "catalog id column: positive unique integers, the "
                         "values of the segmentation map ('' numbers the rows)")
    ra_col: str = option("ra", "catalog RA column (degrees, ICRS as the mosaics' WCS)")
    dec_col: str = option("dec", "catalog Dec column (degrees)")
    redshift_col: str = option("redshift", "catalog redshift column ('' for none; negative "
                               "or non-finite values mean unknown)")
    redshift_kind: str = option("spec", "what the catalog's redshifts are",
                                choices=("spec", "phot"))
    size_col: str = option("", "catalog radius column (e.g. a Kron radius) for boxes without "
                           "a segmentation map, or ''")
    size_unit: str = option("arcsec", "unit of size_col", choices=("arcsec", "pixel"))
    copy_columns: tuple[str, ...] = option(
        (), "further catalog columns copied into /objects", flag="copy-column",
        metavar="COLUMN")
    catalog_key: str = option("", "HDF5 group or FITS table extension of the catalog ('': "
                              "the only or first one)")

    def _check(self) -> None:
        if not self.ra_col or not self.dec_col:
            raise OptionError("ra_col and dec_col must name catalog columns")
        reserved = set(OBJECT_COLUMNS) | {"edge_distance", "catalog_row"}
        clash = sorted(set(self.copy_columns) & reserved)
        if clash:
            raise OptionError(f"copy_columns may not include the scene store's own columns "
                              f"{clash}")


@dataclass(frozen=True, kw_only=True)
class SpectraColumns(Options):
    """A spectroscopic catalog whose redshifts the objects get (the tiler's spec options)."""

    spec_catalog: str = option("", "spectroscopic catalog (FITS, CSV, ECSV, HDF5, Parquet) "
                               "whose redshifts replace the catalog's ('' for none)",
                               path=True)
    spec_id_col: str = option("", "its column of the catalog's ids ('' to match by "
                              "position)")
    spec_ra_col: str = option("ra", "its RA column (degrees)")
    spec_dec_col: str = option("dec", "its Dec column (degrees)")
    spec_z_col: str = option("z_spec", "its redshift column (negative or non-finite: none)")
    spec_match_radius: float = option(0.3, "arcsec; position matching radius", gt=0)


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
    raise MosaicError(f"cannot read a catalog from a {type(source).__name__}; give a file "
                      "path, a dict of columns, an astropy Table or a pandas DataFrame")


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


def _degrees(column: Any, name: str, source: str) -> np.ndarray:
    unit = getattr(column, "unit", None)
    values = np.asarray(column, dtype=float)
    if unit is not None and str(unit) not in ("", "deg"):
        from astropy import units as u

        try:
            values = (values * u.Unit(unit)).to_value(u.deg)
        except (u.UnitsError, ValueError) as err:
            raise MosaicError(f"{source}: column {name!r} is in {unit}, not an angle") from err
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
    table, name = read_table(source, columns.catalog_key)
    ra = _degrees(_column(table, columns.ra_col, "RA", name, "ra_col"), columns.ra_col, name)
    dec = _degrees(_column(table, columns.dec_col, "Dec", name, "dec_col"), columns.dec_col,
                   name)
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


def attach_spectra(catalog: Catalog, spectra: SpectraColumns) -> Catalog:
    """The catalog with the spectroscopic redshifts of the objects they match (by id, or
    one to one by position within ``spec_match_radius``; unmatched objects: NaN).

    Raises
    ------
    InputError
        If the spectroscopic catalog lacks a column, or none of its redshifts matches an
        object of the catalog (the file is named).
    """
    from rail.deepdisc.errors import InputError

    table, name = read_table(spectra.spec_catalog)
    z = np.asarray(_column(table, spectra.spec_z_col, "redshift", name, "spec_z_col"), float)
    valid = np.isfinite(z) & (z >= _NO_REDSHIFT_BELOW)
    redshift = np.full(catalog.ids.size, np.nan)
    if spectra.spec_id_col:
        ids = np.asarray(_column(table, spectra.spec_id_col, "id", name, "spec_id_col"))
        order = np.argsort(catalog.ids)
        pos = np.clip(np.searchsorted(catalog.ids, ids, sorter=order), 0, order.size - 1)
        hit = valid & (catalog.ids[order[pos]] == ids)
        redshift[order[pos[hit]]] = z[hit]
        how = f"by id ({spectra.spec_id_col!r})"
    else:
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        ra = _degrees(_column(table, spectra.spec_ra_col, "RA", name, "spec_ra_col"),
                      spectra.spec_ra_col, name)[valid]
        dec = _degrees(_column(table, spectra.spec_dec_col, "Dec", name, "spec_dec_col"),
                       spectra.spec_dec_col, name)[valid]
        zv = z[valid]
        if zv.size:
            nearest, sep, _ = SkyCoord(ra * u.deg, dec * u.deg).match_to_catalog_sky(
                SkyCoord(catalog.ra * u.deg, catalog.dec * u.deg))
            arcsec = np.asarray(sep.arcsec, float)
            order = np.argsort(arcsec, kind="stable")
            order = order[arcsec[order] <= spectra.spec_match_radius]
            # one to one: each object takes its nearest spectrum
            targets, first = np.unique(np.asarray(nearest)[order], return_index=True)
            redshift[targets] = zv[order[first]]
        how = f"within {spectra.spec_match_radius:g} arcsec"
    n = int(np.isfinite(redshift).sum())
    if n == 0:
        raise InputError(f"spectroscopic catalog {name}: none of its {int(valid.sum())} "
                         f"redshifts matches an object of {catalog.source} ({how})")
    log.info("%s: %d of %d spectroscopic redshifts matched to %s (%s)", name, n,
             int(valid.sum()), catalog.source, how)
    return replace(catalog, redshift=redshift)

