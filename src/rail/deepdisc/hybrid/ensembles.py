"""The hybrid on qp ensembles: the methods' ensembles checked, matched row by row and put
on one grid; the fused PDFs made into an ensemble.

The ensembles (the image network's first, then template fitting's, the photometry
network's) must describe the same objects: each one's rows are matched to the first's by
id where both carry ids (``object_id`` or RAIL's ``id``), else taken in the same order.
The fused ensemble is a ``qp.interp`` on the fusion grid with the first ensemble's
ancillary columns (ids, positions, quality flags, known redshifts) and its own ``zmode``,
``zmean`` and ``zmedian``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError
from rail.deepdisc.hybrid.grid import log_pdfs, redshift_grid, trapz_weights

#: ancillary columns of the image ensemble that the fused one recomputes
_RECOMPUTED = ("zmode", "zmean", "zmedian", "zbest", "chi2", "n_filters")
#: id columns, in order of preference
_ID_COLUMNS = ("object_id", "id")


@dataclass
class FusionInputs:
    """The methods' ensembles on one grid, rows matched to the first's.

    Attributes
    ----------
    grid
        Redshift grid (uniform in ln(1 + z)).
    logs
        One (N, NZ) log PDF array per method, with its floor.
    ensembles
        The ensembles themselves, aligned (for covariates and ancillary columns).
    """

    grid: np.ndarray
    logs: list[np.ndarray]
    ensembles: list[Any]

    @property
    def image(self) -> Any:
        return self.ensembles[0]

    @property
    def redshift(self) -> np.ndarray:
        """Known redshifts (NaN where unknown) of the rows, from the first ensemble that
        carries them."""
        for ens in self.ensembles:
            ancil = ens.ancil or {}
            if "redshift" in ancil:
                return np.asarray(ancil["redshift"], float).reshape(-1)
        return np.full(self.image.npdf, np.nan)


def ids_of(ens: Any) -> np.ndarray | None:
    """The ensemble's object ids, if it carries them."""
    ancil = ens.ancil or {}
    for name in _ID_COLUMNS:
        if name in ancil:
            return np.asarray(ancil[name]).reshape(-1).astype(np.int64)
    return None


def align(image: Any, templates: Any, what: str = "") -> Any:
    """The template ensemble's rows in the image ensemble's order.

    Rows are matched by id where both ensembles carry ids (every image id must be among
    the template ensemble's); otherwise both must have the same length (same order).

    Raises
    ------
    InputError
        Naming an image object the template ensemble lacks, or the two lengths.
    """
    where = f" ({what})" if what else ""
    a, b = ids_of(image), ids_of(templates)
    if a is not None and b is not None:
        if np.array_equal(a, b):
            return templates
        order = np.argsort(b, kind="stable")
        pos = np.clip(np.searchsorted(b[order], a), 0, max(b.size - 1, 0))
        found = (b.size > 0) & (b[order][pos] == a)
        if not found.all():
            bad = int(np.flatnonzero(~found)[0])
            raise InputError(f"an input ensemble has no object {a[bad]} (row {bad} of the "
                             f"image ensemble){where}: the hybrid needs every method's PDFs "
                             "of the same objects")
        return templates[order[pos]]
    if image.npdf != templates.npdf:
        raise InputError(f"the image ensemble has {image.npdf} rows and another input "
                         f"{templates.npdf}{where}: the hybrid needs every method's PDFs of "
                         "the same objects, in the same order (or ids in both to match "
                         "them)")
    return templates


def fusion_grid(ensembles: Sequence[Any], zmax: float = 0.0, step: float = 0.01
                ) -> np.ndarray:
    """The fusion grid, uniform in ln(1 + z): up to ``zmax`` if given, else over the range of
    the first tabulated ensemble's own grid (EAZY's is uniform in ln(1 + z))."""
    if zmax:
        return redshift_grid(zmax, step)
    for ens in ensembles:
        meta = ens.metadata or {}
        if "xvals" in meta:
            x = np.asarray(meta["xvals"], float).ravel()
            return redshift_grid(float(x.max()), step, max(float(x.min()), 0.0))
    raise InputError("no ensemble has a redshift grid of its own: give zmax")


def prepare(ensembles: Sequence[Any], *, floor: float, zmax: float = 0.0,
            what: str = "", grid_from: Sequence[Any] = ()) -> FusionInputs:
    """Match every ensemble's rows to the first's and evaluate all on the fusion grid (the
    grid of :func:`fusion_grid` over ``ensembles`` and ``grid_from``)."""
    aligned = [ensembles[0], *(align(ensembles[0], e, what) for e in ensembles[1:])]
    grid = fusion_grid([*aligned, *grid_from], zmax)
    return FusionInputs(grid=grid, logs=[log_pdfs(e, grid, floor) for e in aligned],
                        ensembles=aligned)


def pdf_ensemble(pdf: np.ndarray, grid: np.ndarray, ancil: dict[str, np.ndarray]) -> Any:
    """A ``qp.interp`` ensemble of PDFs tabulated on ``grid`` (normalised here), with the
    given ancillary columns and its ``zmode``, ``zmean`` and ``zmedian``."""
    import qp

    w = trapz_weights(grid)
    pdf = pdf / (pdf @ w)[:, None]
    cdf = np.concatenate([np.zeros((pdf.shape[0], 1)),
                          np.cumsum(0.5 * (pdf[:, 1:] + pdf[:, :-1]) * np.diff(grid), 1)], 1)
    median = np.array([np.interp(0.5 * c[-1], c, grid) for c in cdf])
    ens = qp.Ensemble(qp.interp, data={"xvals": grid, "yvals": pdf})
    ens.set_ancil({**ancil, "zmode": grid[np.argmax(pdf, axis=1)], "zmean": (pdf * grid) @ w,
                   "zmedian": median})
    return ens


def fused_ensemble(pdf: np.ndarray, grid: np.ndarray, image: Any,
                   extra: dict[str, np.ndarray] | None = None) -> Any:
    """A ``qp.interp`` ensemble of fused PDFs with the image ensemble's ancillary columns
    (and ``extra``) and the fused point estimates."""
    ancil = {k: np.asarray(v).reshape(-1) for k, v in (image.ancil or {}).items()
             if k not in _RECOMPUTED and np.asarray(v).size == pdf.shape[0]}
    return pdf_ensemble(pdf, grid, {**ancil, **(extra or {})})
