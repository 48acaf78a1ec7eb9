"""PDFs of any qp ensemble on one redshift grid, as log densities, for fusion.

The image network gives Gaussian mixtures, EAZY and BPZ give densities tabulated on their
own grids; fusion multiplies them, so both are put on one grid first: a grid uniform in
ln(1 + z) (EAZY's kind), each PDF evaluated there (mixtures exactly, tabulated PDFs by
linear interpolation), normalised to unit integral in z, and mixed with a small floor (a
fraction of the probability spread uniformly in ln(1 + z)) so that no redshift has
probability zero: a product of PDFs must not be decided by which one underflows first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError

#: default grid: ln(1 + z) steps of this size
DEFAULT_STEP = 0.01


def redshift_grid(zmax: float, step: float = DEFAULT_STEP, zmin: float = 0.0) -> np.ndarray:
    """A grid uniform in ln(1 + z) from ``zmin`` to ``zmax`` (both included)."""
    if not zmax > zmin >= 0:
        raise InputError(f"bad redshift range [{zmin}, {zmax}] for the fusion grid")
    n = int(np.ceil((np.log1p(zmax) - np.log1p(zmin)) / step)) + 1
    return np.expm1(np.linspace(np.log1p(zmin), np.log1p(zmax), n))


def trapz_weights(grid: np.ndarray) -> np.ndarray:
    """Weights ``w`` with ``w @ f`` the trapezoid integral of ``f`` over the grid."""
    dz = np.diff(grid)
    w = np.zeros(grid.size)
    w[:-1] += 0.5 * dz
    w[1:] += 0.5 * dz
    return w


def floor_density(grid: np.ndarray) -> np.ndarray:
    """The density (per unit z) of a probability spread uniformly in ln(1 + z)."""
    d = 1.0 / (1.0 + grid)
    return d / (trapz_weights(grid) @ d)


def ensemble_pdfs(ens: Any, grid: np.ndarray, chunk: int = 20000) -> np.ndarray:
    """(N, NZ) p(z) of every row of a qp ensemble on ``grid`` (not normalised).

    Mixtures are evaluated from their parameters (qp's own ``pdf`` of a mixmod is slow);
    any other parameterisation through qp.
    """
    if ens.gen_class.name == "mixmod":
        from rail.deepdisc.net.predict import Mixtures

        d = ens.objdata
        return Mixtures(np.asarray(d["weights"]), np.asarray(d["means"]),
                        np.asarray(d["stds"])).pdf(grid)
    out = np.empty((ens.npdf, grid.size))
    for s in range(0, ens.npdf, chunk):
        e = min(s + chunk, ens.npdf)
        out[s:e] = np.atleast_2d(ens[s:e].pdf(grid))
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def log_pdfs(ens: Any, grid: np.ndarray, floor: float) -> np.ndarray:
    """(N, NZ) log of each PDF on the grid, normalised, with a fraction ``floor`` of its
    probability spread uniformly in ln(1 + z) (:func:`floor_density`).

    Rows with no probability on the grid (an empty or broken PDF) become the floor density
    alone, i.e. no information.
    """
    w = trapz_weights(grid)
    p = np.clip(ensemble_pdfs(ens, grid), 0.0, None)
    norm = p @ w
    empty = ~(norm > 0)
    p = np.where(empty[:, None], 0.0, p / np.where(empty, 1.0, norm)[:, None])
    base = floor_density(grid)[None, :]
    q = np.where(empty[:, None], base, (1.0 - floor) * p + floor * base)
    return np.log(np.maximum(q, 1e-300))
