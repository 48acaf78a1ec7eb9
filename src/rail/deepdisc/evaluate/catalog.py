"""A photo-z catalog an astronomer publishes or cross-matches, from any qp ensemble.

One row per object (the ensemble's rows, in order): ``id``, ``ra``/``dec`` (degrees),
``z_mode``, ``z_mean``, ``z_median``, the 2.5/16/84/97.5 percentiles ``z_p025`` ...
``z_p975``, ``odds`` (the probability within +-0.1 (1 + z_mode) of the mode), the mixture
parameters of Gaussian-mixture ensembles (``pdf_weights``, ``pdf_means``, ``pdf_stds``, one
vector per row), the detection ``score``, every quality flag the ensemble carries and
``quality``, one bit mask of them whose bits the file's metadata defines (``QBIT<k>``).
Identifiers and positions come from the ensemble's ancillary columns, or, for ensembles
without them (BPZ, EAZY on a scene store's photometry), from the scene store the rows belong
to. Written as FITS, Parquet, ECSV or HDF5 (astropy; units kept), atomically, with the
provenance (inputs, configuration, versions) in the metadata.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.options import Options, option

#: quality flags in bit order (bit k of ``quality`` is set when flag k is)
QUALITY_BITS = {
    "flag_low_snr": "core S/N in the reference band below 10",
    "flag_ood": "farther from the training set in colour-magnitude space than 99% of it",
    "flag_blend": "more than 10% of the box covered by another box",
    "flag_edge": "the box touches its scene's edge",
    "flag_low_score": "detection score below 0.5",
}
PERCENTILES = (2.5, 16.0, 84.0, 97.5)
#: odds window half-width, in units of (1 + z_mode)
ODDS_WIDTH = 0.1
FORMATS = {".fits": "fits", ".fit": "fits", ".parquet": "parquet", ".ecsv": "ascii.ecsv",
           ".hdf5": "hdf5", ".h5": "hdf5"}
_ROWS_AT_ONCE = 20_000


@dataclass(frozen=True)
class CatalogOptions(Options):
    """What the catalog records beside the PDFs."""

    scenes: str = option("", "scene store the ensemble's rows belong to (ids and positions "
                         "for ensembles without them, e.g. BPZ or EAZY); '' for none",
                         path=True)
    method: str = option("", "name of the photo-z method, recorded in the catalog")


def catalog_format(path: str | os.PathLike) -> str:
    """The astropy format of a catalog path, from its suffix (an OptionError otherwise)."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in FORMATS:
        raise OptionError(f"catalog {path}: the suffix must be one of {sorted(FORMATS)} "
                          f"(FITS, Parquet, ECSV, HDF5)")
    return FORMATS[suffix]


def _grid(ens: Any, n: int = 3001) -> np.ndarray:
    """A redshift grid covering every PDF of the ensemble."""
    data = ens.objdata
    if "xvals" in ens.metadata:
        x = np.asarray(ens.metadata["xvals"]).ravel()
        return np.linspace(max(float(x.min()), 0.0), float(x.max()), n)
    if "means" in data and "stds" in data:
        top = float(np.nanmax(data["means"] + 6.0 * data["stds"])) if ens.npdf else 1.0
        return np.linspace(0.0, max(top, 0.1), n)
    if "bins" in ens.metadata:
        b = np.asarray(ens.metadata["bins"]).ravel()
        return np.linspace(float(b.min()), float(b.max()), n)
    raise InputError(f"cannot make a redshift grid for a {ens.gen_class.name} ensemble")


def summarise(ens: Any) -> dict[str, np.ndarray]:
    """Point estimates, percentiles and odds of every PDF (computed on a fine grid, a
    bounded number of rows at a time)."""
    grid = _grid(ens)
    out: dict[str, list[np.ndarray]] = {k: [] for k in (
        "z_mode", "z_mean", "z_median", *[_pname(p) for p in PERCENTILES], "odds")}
    for s in range(0, ens.npdf, _ROWS_AT_ONCE):
        part = ens[s:min(s + _ROWS_AT_ONCE, ens.npdf)]
        pdf = np.nan_to_num(np.atleast_2d(part.pdf(grid)))
        cdf = np.cumsum(0.5 * (pdf[:, 1:] + pdf[:, :-1]) * np.diff(grid), axis=1)
        cdf = np.concatenate([np.zeros((len(cdf), 1)), cdf], axis=1)
        total = np.maximum(cdf[:, -1:], 1e-300)
        cdf /= total
        mode = grid[np.argmax(pdf, axis=1)]
        out["z_mode"].append(mode)
        out["z_mean"].append(np.trapezoid(pdf * grid, grid, axis=1) / total[:, 0])
        for q, name in ((50.0, "z_median"), *[(p, _pname(p)) for p in PERCENTILES]):
            out[name].append(_quantile(cdf, grid, q / 100.0))
        half = ODDS_WIDTH * (1.0 + mode)
        out["odds"].append(np.clip(_interp_rows(cdf, grid, mode + half)
                                   - _interp_rows(cdf, grid, mode - half), 0.0, 1.0))
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def _pname(p: float) -> str:
    return f"z_p{round(p * 10):03d}"


def _quantile(cdf: np.ndarray, grid: np.ndarray, q: float) -> np.ndarray:
    i = np.clip((cdf < q).sum(axis=1), 1, len(grid) - 1)
    rows = np.arange(len(cdf))
    c0, c1 = cdf[rows, i - 1], cdf[rows, i]
    t = np.where(c1 > c0, (q - c0) / np.where(c1 > c0, c1 - c0, 1.0), 0.0)
    return grid[i - 1] + np.clip(t, 0, 1) * (grid[i] - grid[i - 1])


def _interp_rows(cdf: np.ndarray, grid: np.ndarray, z: np.ndarray) -> np.ndarray:
    pos = np.clip(np.interp(z, grid, np.arange(len(grid))), 0, len(grid) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(grid) - 1)
    rows = np.arange(len(cdf))
    return cdf[rows, lo] + (pos - lo) * (cdf[rows, hi] - cdf[rows, lo])


def quality_mask(columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """The ``quality`` bit mask of the flags present (bit k: :data:`QUALITY_BITS`' k-th)."""
    mask = np.zeros(n, np.int32)
    for bit, name in enumerate(QUALITY_BITS):
        if name in columns:
            mask |= (np.asarray(columns[name]).astype(bool).astype(np.int32) << bit)
    return mask


def build_catalog(ens: Any, objects: Mapping[str, np.ndarray] | None = None,
                  provenance: Mapping[str, Any] | None = None, method: str = ""):
    """The catalog table of an ensemble (astropy ``Table`` with units and metadata).

    Parameters
    ----------
    ens
        A qp ensemble (any parameterisation); its ancillary columns give ids, positions,
        scores and quality flags where it has them.
    objects
        The scene store's ``/objects`` the rows belong to (same number of rows, in order),
        for ensembles without ids or positions.
    provenance
        Recorded in the metadata (JSON).
    method
        The photo-z method, recorded in the metadata.
    """
    import astropy.units as u
    from astropy.table import Table

    n = ens.npdf
    ancil = dict(ens.ancil or {})
    if objects is not None and len(next(iter(objects.values()))) != n:
        raise InputError(f"the ensemble has {n} rows but the scene store lists "
                         f"{len(next(iter(objects.values())))} objects; a catalog needs "
                         "forced (one row per object) PDFs")
    source = {**(objects or {}), **ancil}
    table = Table()
    ids = source.get("object_id", source.get("id"))
    table["id"] = np.asarray(ids, np.int64) if ids is not None else np.arange(n)
    for name in ("ra", "dec"):
        values = np.asarray(source.get(name, np.full(n, np.nan)), float)
        table[name] = values * u.deg
    for name in ("scene", "x", "y"):
        if name in source:
            table[name] = np.asarray(source[name])
    table.update(Table(summarise(ens)))
    if ens.gen_class.name == "mixmod":
        w, mu = ens.objdata["weights"], ens.objdata["means"]
        table["z_mean"] = np.sum(w * mu, axis=1) / np.sum(w, axis=1)  # exact for mixtures
        for key in ("weights", "means", "stds"):
            table[f"pdf_{key}"] = np.asarray(ens.objdata[key], np.float32)
    for name in ("score", "snr", "ood_score", "blend", "mask_area", "redshift"):
        if name in ancil:
            table[name] = np.asarray(ancil[name])
    for name in QUALITY_BITS:
        if name in ancil:
            table[name] = np.asarray(ancil[name]).astype(np.int8)
    table["quality"] = quality_mask(ancil, n)
    _describe(table, provenance, method)
    return table


def _describe(table, provenance: Mapping[str, Any] | None, method: str) -> None:
    descriptions = {
        "id": "object id (the catalog's or scene store's)", "ra": "right ascension (ICRS)",
        "dec": "declination (ICRS)", "z_mode": "mode of p(z)", "z_mean": "mean of p(z)",
        "z_median": "median of p(z)", "odds": f"P(|z - z_mode| < {ODDS_WIDTH}(1 + z_mode))",
        "quality": "bit mask of the quality flags (bits QBIT<k> in the metadata)",
        "score": "detection score", "redshift": "known (spectroscopic) redshift, NaN if none",
        "pdf_weights": "Gaussian-mixture weights", "pdf_means": "Gaussian-mixture means",
        "pdf_stds": "Gaussian-mixture standard deviations",
        **{_pname(p): f"{p:g}th percentile of p(z)" for p in PERCENTILES},
        **QUALITY_BITS,
    }
    for name, text in descriptions.items():
        if name in table.colnames:
            table[name].description = text
    table.meta["METHOD"] = method
    for bit, name in enumerate(QUALITY_BITS):
        table.meta[f"QBIT{bit}"] = name
    table.meta["PROV"] = json.dumps(provenance or {}, sort_keys=True, default=str)


def write_catalog(table, path: str | os.PathLike, inputs=()) -> str:
    """Write the catalog atomically in the format its suffix says."""
    import warnings

    from astropy.io.fits.verify import VerifyWarning

    from rail.deepdisc.store.atomic import atomic_output

    fmt = catalog_format(path)
    with atomic_output(path, "catalog", inputs=inputs) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VerifyWarning)  # long header values: CONTINUE
            if fmt == "hdf5":
                table.write(tmp, format=fmt, path="catalog", serialize_meta=True)
            else:
                table.write(tmp, format=fmt)
    return os.fspath(path)
