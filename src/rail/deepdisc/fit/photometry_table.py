"""The photometry catalog: its flag bits, magnitude conventions and detections tables.

Magnitudes follow RAIL's conventions: AB magnitudes from the store's zero point; an object
with S/N < ``nondetect_snr`` (or a non-positive flux) in a band is a non-detection, with
``mag = nondetect_val`` (99) and ``mag_err`` its 1-sigma limiting magnitude; a band with no
data for an object gets ``mag = mag_err = nonobserved_val`` (-99) and NaN fluxes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError
from rail.deepdisc.magnitudes import flux_to_mag

#: flag bits (OR-ed over bands into the ``flags`` column)
FLAG_EDGE = 1  #: the aperture extends beyond the scene
FLAG_MASKED = 2  #: pixels without data (ivar = 0) inside the aperture
FLAG_NO_FOOTPRINT = 4  #: ``kron`` asked but the object has no footprint: circular aperture used
FLAG_NO_PSF = 8  #: no PSF model, fluxes are not aperture-corrected
FLAG_NO_BACKGROUND = 16  #: too few background pixels: no local background subtracted

#: columns a detections table must have
DETECTION_COLUMNS = ("scene", "x", "y", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")

#: magnitude error of a unit relative flux error, 2.5 / ln(10)
_MAG_ERR = 2.5 / np.log(10.0)


def fluxes_to_mags(flux: np.ndarray, flux_err: np.ndarray, zeropoint: float,
                   nondetect_snr: float = 1.0, nondetect_val: float = 99.0,
                   nonobserved_val: float = -99.0) -> tuple[np.ndarray, np.ndarray]:
    """AB magnitudes and errors with RAIL's conventions for non-detections.

    Detections (finite flux > ``nondetect_snr`` x error and > 0) get
    ``zeropoint - 2.5 log10(flux)`` and ``1.0857 err / flux``; non-detections get
    ``nondetect_val`` with the 1-sigma limiting magnitude ``zeropoint - 2.5 log10(err)`` as
    error; bands without data (non-finite flux or error, or error <= 0) get
    ``nonobserved_val`` for both.
    """
    flux = np.asarray(flux, float)
    err = np.asarray(flux_err, float)
    observed = np.isfinite(flux) & np.isfinite(err) & (err > 0)
    detected = observed & (flux > 0) & (flux > nondetect_snr * err)
    limit = observed & ~detected
    mag = np.full(flux.shape, float(nonobserved_val))
    mag_err = np.full(flux.shape, float(nonobserved_val))
    mag[detected] = flux_to_mag(flux[detected], zeropoint)
    mag_err[detected] = _MAG_ERR * err[detected] / flux[detected]
    mag[limit] = nondetect_val
    mag_err[limit] = flux_to_mag(err[limit], zeropoint)
    return mag, mag_err


def mag_limits(table: Mapping[str, np.ndarray], bands: Sequence[str], zeropoint: float,
               prefix: str = "mag_") -> dict[str, float]:
    """Median 1-sigma limiting magnitude per band of a photometry table.

    Keys are ``<prefix><band>`` (the magnitude column names), as BPZ's ``mag_limits`` wants.

    Raises
    ------
    InputError
        Naming a band without a ``flux_err_<band>`` column or without finite errors.
    """
    out = {}
    for band in bands:
        column = f"flux_err_{band}"
        if column not in table:
            raise InputError(f"the photometry table has no column {column}")
        err = np.asarray(table[column], float)
        err = err[np.isfinite(err) & (err > 0)]
        if err.size == 0:
            raise InputError(f"band {band} has no finite flux errors ({column})")
        out[f"{prefix}{band}"] = float(flux_to_mag(np.median(err), zeropoint))
    return out


def read_detections(table: Mapping[str, Any], n_scenes: int) -> dict[str, np.ndarray]:
    """Check a detections table (columns :data:`DETECTION_COLUMNS`) and return its columns.

    Raises
    ------
    InputError
        Naming missing columns, unequal lengths or scene indices outside the store.
    """
    missing = [c for c in DETECTION_COLUMNS if c not in table]
    if missing:
        raise InputError(f"detections table lacks columns {missing}; it has {sorted(table)}")
    cols = {k: np.asarray(v) for k, v in table.items() if np.ndim(v) == 1}
    lengths = {len(cols[c]) for c in DETECTION_COLUMNS if c in cols}
    if len(lengths) != 1 or any(c not in cols for c in DETECTION_COLUMNS):
        raise InputError("detections table columns have different lengths or are not 1-D "
                         f"({sorted(lengths)})")
    scene = cols["scene"].astype(np.int64)
    if scene.size and (scene.min() < 0 or scene.max() >= n_scenes):
        raise InputError(f"detections table has scene indices outside 0..{n_scenes - 1}")
    cols["scene"] = scene
    return cols


def read_detections_file(path: str | os.PathLike, n_scenes: int) -> dict[str, np.ndarray]:
    """Read a detections table file (HDF5; one group is unwrapped) and check it.

    Raises
    ------
    InputError
        Naming the file, if it is missing, unreadable or not a detections table.
    """
    import tables_io

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"detections table {path} does not exist")
    try:
        table = tables_io.read(path)
    except (OSError, KeyError, ValueError) as err:
        raise InputError(f"cannot read detections table {path}: {err}") from None
    if "scene" not in table and len(table) == 1:
        table = next(iter(table.values()))
    try:
        return read_detections(table, n_scenes)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None


#: column of photometry parts holding each row's place in the output
ROW_COLUMN = "_row"


def put_rows_in_order(path: str | os.PathLike, n: int) -> None:
    """Put a joined photometry file's rows (column :data:`ROW_COLUMN`) into output order, in
    place, one column at a time, and drop that column; every row must be there once."""
    import h5py

    with h5py.File(path, "r+") as f:
        rows = f[ROW_COLUMN][:] if ROW_COLUMN in f else np.zeros(0, np.int64)
        if rows.size != n or not np.array_equal(np.bincount(rows, minlength=n),
                                                np.ones(n, np.int64)):
            raise RuntimeError("photometry rows are missing or duplicated")
        del f[ROW_COLUMN]
        if np.array_equal(rows, np.arange(n)):
            return
        order = np.argsort(rows)
        for name in list(f):
            if isinstance(f[name], h5py.Dataset) and f[name].shape[:1] == (n,):
                f[name][...] = f[name][:][order]


def assemble(parts: Sequence[tuple[np.ndarray, dict[str, np.ndarray]]], n: int
             ) -> dict[str, np.ndarray]:
    """Put chunk results back into output-row order (every row must be covered once)."""
    if not parts:
        raise RuntimeError("no rows were measured")
    names = list(parts[0][1])
    out = {k: np.empty(n, dtype=parts[0][1][k].dtype) for k in names}
    seen = np.zeros(n, dtype=np.int64)
    for rows, cols in parts:
        seen[rows] += 1
        for k in names:
            out[k][rows] = cols[k]
    if not np.all(seen == 1):
        raise RuntimeError("photometry rows are missing or duplicated")
    return out
