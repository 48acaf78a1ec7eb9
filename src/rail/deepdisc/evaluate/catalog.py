"""A photo-z catalog an astronomer publishes or cross-matches, from any qp ensemble.

One row per object (the ensemble's rows, in order): ``id``, ``ra``/``dec`` (degrees), RAIL's
summary statistics of each PDF under RAIL's names (rail_base's
``CatEstimator._calculate_summary_stats``): ``z_mode``, ``z_mean``, ``z_std`` and the
quantiles ``z_q2p5``, ``z_q16``, ``z_median``, ``z_q84``, ``z_97p5`` at RAIL's levels
(0.025, 0.16, 0.5, **0.85**, 0.975: RAIL names its 0.85 quantile ``q84``; the catalog keeps
RAIL's names *and* levels, so a column means the same as in any RAIL or Rubin catalog, and the
"68%" interval [``z_q16``, ``z_q84``] holds 69% of the probability, the 95% one
[``z_q2p5``, ``z_97p5``] 95%); then ``odds`` (the probability within +-0.1 (1 + z_mode) of the
mode), the mixture of Gaussian-mixture ensembles (FITS, ECSV, HDF5: vector columns
``pdf_weights``, ``pdf_means``, ``pdf_stds``; Parquet and HATS: one nested column ``pdf`` with
those three fields, a list per row, as nested-pandas and LSDB nest per-object data), the
detection ``score``, every quality flag the ensemble carries and ``quality``, one bit mask of
them whose bits the file's metadata defines (``QBIT<k>``).

Statistics of mixtures are exact (moments in closed form, quantiles and mode solved to
double precision on the mixture as it is, including any probability below z = 0); other
parameterisations are summarised on a fine redshift grid. Identifiers and positions come from
the ensemble's ancillary columns, or, for ensembles without them (BPZ, EAZY on a scene store's
photometry), from the scene store the rows belong to. Written as FITS, Parquet, ECSV or HDF5
(units kept), atomically, or as a HATS catalog (:mod:`rail.deepdisc.evaluate.catalog_hats`),
with the provenance (inputs, configuration, versions) in the metadata.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
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
#: RAIL's point estimates (``z_mode``, ``z_mean``, ``z_std``)
POINT_ESTIMATES = ("z_mode", "z_mean", "z_std")
#: RAIL's quantiles: name -> level, in RAIL's order (the 0.85 quantile is RAIL's ``z_q84``)
QUANTILES = {"z_q2p5": 0.025, "z_q16": 0.16, "z_median": 0.5, "z_q84": 0.85, "z_97p5": 0.975}
#: every summary-statistic column, named as RAIL names them
SUMMARY_COLUMNS = (*POINT_ESTIMATES, *QUANTILES)
#: the central intervals the quantiles bound: name -> (lower column, upper column)
INTERVALS = {"68%": ("z_q16", "z_q84"), "95%": ("z_q2p5", "z_97p5")}
#: odds window half-width, in units of (1 + z_mode)
ODDS_WIDTH = 0.1
#: the mixture parameters (qp's mixmod names): vector columns ``pdf_<name>`` in FITS, ECSV and
#: HDF5, fields of the nested column ``pdf`` in Parquet and HATS
PDF_COLUMN = "pdf"
PDF_FIELDS = ("weights", "means", "stds")
FORMATS = {".fits": "fits", ".fit": "fits", ".parquet": "parquet", ".ecsv": "ascii.ecsv",
           ".hdf5": "hdf5", ".h5": "hdf5", ".hats": "hats"}
_ROWS_AT_ONCE = 20_000


@dataclass(frozen=True)
class CatalogOptions(Options):
    """What the catalog records beside the PDFs, and how a HATS catalog is written."""

    scenes: str = option("", "scene store the ensemble's rows belong to (ids and positions "
                         "for ensembles without them, e.g. BPZ or EAZY); '' for none",
                         path=True)
    method: str = option("", "name of the photo-z method, recorded in the catalog")
    overwrite: bool = option(False, "replace an existing HATS catalog (a folder) at the "
                             "output; without it an existing one is refused")
    hats_max_rows: int = option(250_000, "most rows in one HEALPix partition of a HATS "
                                "catalog (hats-import's pixel_threshold)", ge=1)
    hats_workers: int = option(1, "threads of the local Dask client that runs the HATS "
                               "import", ge=1)


def catalog_format(path: str | os.PathLike) -> str:
    """The format of a catalog path, from its suffix: an astropy format name, or ``"hats"``
    (an OptionError otherwise)."""
    suffix = os.path.splitext(os.fspath(path).rstrip("/\\"))[1].lower()
    if suffix not in FORMATS:
        raise OptionError(f"catalog {path}: the suffix must be one of {sorted(FORMATS)} "
                          f"(FITS, Parquet, ECSV, HDF5, HATS)")
    return FORMATS[suffix]


def mixture_parameters(ens: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(weights, means, stds)`` (rows x components) of a Gaussian-mixture ensemble (qp's
    ``mixmod``, or ``norm`` as one component); None for other parameterisations."""
    name = ens.gen_class.name
    data = ens.objdata
    if name == "mixmod":
        return tuple(np.atleast_2d(np.asarray(data[k], float)) for k in PDF_FIELDS)
    if name == "norm":
        loc = np.asarray(data["loc"], float).reshape(ens.npdf, -1)
        scale = np.asarray(data["scale"], float).reshape(ens.npdf, -1)
        return np.ones_like(loc), loc, scale
    return None


def _grid(ens: Any, n: int = 3001) -> np.ndarray:
    """A redshift grid covering every PDF of a gridded ensemble (``interp``, ``hist``, ...)."""
    if "xvals" in ens.metadata:
        x = np.asarray(ens.metadata["xvals"]).ravel()
        return np.linspace(max(float(x.min()), 0.0), float(x.max()), n)
    if "bins" in ens.metadata:
        b = np.asarray(ens.metadata["bins"]).ravel()
        return np.linspace(float(b.min()), float(b.max()), n)
    raise InputError(f"cannot summarise a {ens.gen_class.name} ensemble: the catalog takes "
                     "Gaussian mixtures (mixmod, norm) and gridded PDFs (interp, hist, ...)")


def summarise(ens: Any) -> dict[str, np.ndarray]:
    """RAIL's summary statistics (:data:`SUMMARY_COLUMNS`) and ``odds`` of every PDF, a
    bounded number of rows at a time: exact for Gaussian mixtures, on a fine grid otherwise.
    Each row's values depend on that row only."""
    mixture = mixture_parameters(ens)
    grid = None if mixture is not None else _grid(ens)
    out: dict[str, list[np.ndarray]] = {k: [] for k in (*SUMMARY_COLUMNS, "odds")}
    for s in range(0, ens.npdf, _ROWS_AT_ONCE):
        e = min(s + _ROWS_AT_ONCE, ens.npdf)
        if mixture is not None:
            part = mixture_summary(*(m[s:e] for m in mixture))
        else:
            part = _grid_summary(ens[s:e], grid)
        for key, values in part.items():
            out[key].append(values)
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def mixture_summary(weights: np.ndarray, means: np.ndarray, stds: np.ndarray
                    ) -> dict[str, np.ndarray]:
    """RAIL's summary statistics and ``odds`` of Gaussian mixtures (rows x components).

    Moments are exact; quantiles are the roots of CDF(z) = level (12 bisections of a bracket
    holding every component to 10 sigma, then 4 Newton steps kept inside it: double
    precision); the mode is the highest of the maxima reached from every component's mean by
    mean shift (8 steps) and Newton steps that never lower the density (4).
    """
    from scipy.special import ndtr

    w = np.asarray(weights, float)
    w = w / np.sum(w, axis=1, keepdims=True)
    mu, sd = np.asarray(means, float), np.asarray(stds, float)
    mean = np.sum(w * mu, axis=1)
    std = np.sqrt(np.maximum(np.sum(w * (sd * sd + mu * mu), axis=1) - mean * mean, 0.0))
    out = {"z_mean": mean, "z_std": std}
    W, M, S = w[:, None, :], mu[:, None, :], sd[:, None, :]
    levels = np.array(list(QUANTILES.values()))[None, :]
    lo = np.repeat(np.min(mu - 10.0 * sd, axis=1, keepdims=True), levels.size, axis=1)
    hi = np.repeat(np.max(mu + 10.0 * sd, axis=1, keepdims=True), levels.size, axis=1)
    for _ in range(12):
        mid = 0.5 * (lo + hi)
        below = np.sum(W * ndtr((mid[:, :, None] - M) / S), axis=2) < levels
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    z = 0.5 * (lo + hi)
    for _ in range(4):
        t = (z[:, :, None] - M) / S
        cdf = np.sum(W * ndtr(t), axis=2)
        pdf = np.sum(W * np.exp(-0.5 * t * t) / S, axis=2) / np.sqrt(2.0 * np.pi)
        z = np.clip(z - (cdf - levels) / np.maximum(pdf, 1e-300), lo, hi)
    out.update({name: z[:, i] for i, name in enumerate(QUANTILES)})
    mode = _mixture_mode(w, mu, sd)
    half = ODDS_WIDTH * (1.0 + mode)
    edges = np.stack([mode - half, mode + half], axis=1)
    cdf = np.sum(W * ndtr((edges[:, :, None] - M) / S), axis=2)
    out["z_mode"] = mode
    out["odds"] = np.clip(cdf[:, 1] - cdf[:, 0], 0.0, 1.0)
    return {k: out[k] for k in (*SUMMARY_COLUMNS, "odds")}


def _mixture_mode(w: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """The highest mode of each mixture: every maximum lies between the smallest and largest
    component mean; one is reached from each component's mean."""
    inv = 1.0 / (sd * sd)
    amp, mean, prec = (w / sd)[:, None, :], mu[:, None, :], inv[:, None, :]
    mean_prec = (mu * inv)[:, None, :]
    z = mu.copy()  # (rows, starts)
    for _ in range(8):  # mean shift: z <- sum r mu / sigma^2 / sum r / sigma^2
        d = z[:, :, None] - mean
        r = amp * np.exp(-0.5 * d * d * prec)
        z = np.einsum("nsk,nsk->ns", r, mean_prec) / np.einsum("nsk,nsk->ns", r, prec)
    d = z[:, :, None] - mean
    r = amp * np.exp(-0.5 * d * d * prec)
    density = r.sum(axis=2)
    for _ in range(4):  # Newton on the density's slope, a step kept only if it climbs
        u = -d * prec
        slope = np.einsum("nsk,nsk->ns", r, u)
        curve = np.einsum("nsk,nsk->ns", r, u * u - prec)
        concave = curve < 0
        step = np.where(concave, -slope / np.where(concave, curve, -1.0), 0.0)
        dn = d + step[:, :, None]
        rn = amp * np.exp(-0.5 * dn * dn * prec)
        new = rn.sum(axis=2)
        up = new >= density
        z = np.where(up, z + step, z)
        density = np.where(up, new, density)
        d = np.where(up[:, :, None], dn, d)
        r = np.where(up[:, :, None], rn, r)
    return z[np.arange(len(z)), np.argmax(density, axis=1)]


def _grid_summary(part: Any, grid: np.ndarray) -> dict[str, np.ndarray]:
    """RAIL's summary statistics and ``odds`` of gridded PDFs, on ``grid``."""
    pdf = np.nan_to_num(np.atleast_2d(part.pdf(grid)))
    cdf = np.cumsum(0.5 * (pdf[:, 1:] + pdf[:, :-1]) * np.diff(grid), axis=1)
    cdf = np.concatenate([np.zeros((len(cdf), 1)), cdf], axis=1)
    total = np.maximum(cdf[:, -1:], 1e-300)
    cdf /= total
    mode = grid[np.argmax(pdf, axis=1)]
    mean = np.trapezoid(pdf * grid, grid, axis=1) / total[:, 0]
    var = np.trapezoid(pdf * (grid[None, :] - mean[:, None]) ** 2, grid, axis=1) / total[:, 0]
    out = {"z_mode": mode, "z_mean": mean, "z_std": np.sqrt(np.maximum(var, 0.0))}
    out.update({name: _quantile(cdf, grid, q) for name, q in QUANTILES.items()})
    half = ODDS_WIDTH * (1.0 + mode)
    out["odds"] = np.clip(_interp_rows(cdf, grid, mode + half)
                          - _interp_rows(cdf, grid, mode - half), 0.0, 1.0)
    return out


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
    mixture = mixture_parameters(ens)
    if mixture is not None:
        for key, values in zip(PDF_FIELDS, mixture, strict=True):
            table[f"{PDF_COLUMN}_{key}"] = np.asarray(values, np.float32)
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
        "z_std": "standard deviation of p(z)",
        "odds": f"P(|z - z_mode| < {ODDS_WIDTH}(1 + z_mode))",
        "quality": "bit mask of the quality flags (bits QBIT<k> in the metadata)",
        "score": "detection score", "redshift": "known (spectroscopic) redshift, NaN if none",
        "pdf_weights": "Gaussian-mixture weights", "pdf_means": "Gaussian-mixture means",
        "pdf_stds": "Gaussian-mixture standard deviations",
        **{name: f"{q:g} quantile of p(z) (RAIL's name and level)"
           for name, q in QUANTILES.items()},
        **QUALITY_BITS,
    }
    for name, text in descriptions.items():
        if name in table.colnames:
            table[name].description = text
    table.meta["METHOD"] = method
    for bit, name in enumerate(QUALITY_BITS):
        table.meta[f"QBIT{bit}"] = name
    table.meta["PROV"] = json.dumps(provenance or {}, sort_keys=True, default=str)


def _pdf_paths(pdfs: Any) -> list[str] | None:
    """The files of ``pdfs`` (a path or paths), or None for an ensemble in memory."""
    if isinstance(pdfs, (str, os.PathLike)):
        return [os.fspath(pdfs)]
    if isinstance(pdfs, (list, tuple)):
        return [os.fspath(p) for p in pdfs]
    return None


def ensemble_rows(pdfs: Any) -> int:
    """The number of rows of an ensemble, or of ensemble files together (HDF5 files: from
    their ``data`` group, nothing else read)."""
    import h5py
    import qp

    paths = _pdf_paths(pdfs)
    if paths is None:
        return int(pdfs.npdf)
    total = 0
    for path in paths:
        try:
            if os.path.splitext(path)[1] == ".hdf5":
                with h5py.File(path, "r") as f:
                    lengths = {f["data"][k].shape[0] for k in f["data"]}
                if len(lengths) != 1:
                    raise InputError(f"{path}: the data columns have different lengths "
                                     f"{sorted(lengths)}")
                total += lengths.pop()
            else:
                total += qp.read(path).npdf
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise InputError(f"{path} is not a readable qp ensemble: {err}") from None
    return total


def ensemble_chunks(pdfs: Any, rows: int = 100_000, rank: int = 0, size: int = 1
                    ) -> Iterator[tuple[int, Any]]:
    """``(first row, ensemble)`` chunks of one or more qp ensembles, in order, read a bounded
    number of rows at a time (HDF5 files) so that no chunk holds all the rows.

    Parameters
    ----------
    pdfs
        An ensemble, or ensemble files whose rows follow each other (e.g. the estimates of
        several fields).
    rows
        Rows per chunk.
    rank, size
        Of the process among ``size`` sharing the work (MPI): it gets every ``size``-th
        chunk of each file.
    """
    import qp

    paths = _pdf_paths(pdfs)
    if paths is None:
        for s in range(rank * rows, pdfs.npdf, size * rows):
            yield s, pdfs[s:min(s + rows, pdfs.npdf)]
        return
    offset = 0
    for path in paths:
        n = ensemble_rows(path)
        try:
            if os.path.splitext(path)[1] == ".hdf5":
                chunks = ((s, ens) for s, _, ens in qp.iterator(
                    path, chunk_size=rows, rank=rank, parallel_size=size))
            else:  # formats qp cannot read in pieces
                chunks = ensemble_chunks(qp.read(path), rows, rank, size)
            for start, ens in chunks:
                yield offset + start, ens
        except (OSError, KeyError, TypeError) as err:
            raise InputError(f"{path} is not a readable qp ensemble: {err}") from None
        offset += n


def catalog_chunks(pdfs: Any, scenes: str | os.PathLike | None = None,
                   provenance: Mapping[str, Any] | None = None, method: str = "",
                   rows: int = 100_000, rank: int = 0, size: int = 1) -> Iterator[Any]:
    """The catalog of one or more ensembles as tables of at most ``rows`` rows, in order
    (:func:`build_catalog` of each chunk; the scene store's objects read a chunk at a time).

    The arguments are those of :func:`ensemble_chunks` and :func:`build_catalog`; with
    ``scenes``, the ensembles' rows must be the store's objects (checked before any work).
    """
    from rail.deepdisc.store.scenes import SceneStore

    store = SceneStore(scenes) if scenes else None
    try:
        if store is not None:
            n = ensemble_rows(pdfs)
            if n != store.n_objects:
                raise InputError(f"the ensemble has {n} rows but the scene store {scenes} "
                                 f"lists {store.n_objects} objects; a catalog needs forced "
                                 "(one row per object) PDFs")
        for start, ens in ensemble_chunks(pdfs, rows, rank, size):
            objects = None if store is None else store.objects(
                ["object_id", "ra", "dec", "scene", "x", "y"], rows=slice(start, start + ens.npdf))
            yield build_catalog(ens, objects, provenance, method)
    finally:
        if store is not None:
            store.close()


def catalog_table(pdfs: Any, scenes: str | os.PathLike | None = None,
                  provenance: Mapping[str, Any] | None = None, method: str = ""):
    """The whole catalog of one or more ensembles as one table (:func:`catalog_chunks`
    stacked); an InputError if they have no rows."""
    from astropy.table import vstack

    tables = list(catalog_chunks(pdfs, scenes, provenance, method))
    if not tables:
        raise InputError("the ensemble has no rows: an empty catalog is not written")
    return tables[0] if len(tables) == 1 else vstack(tables, metadata_conflicts="silent")
