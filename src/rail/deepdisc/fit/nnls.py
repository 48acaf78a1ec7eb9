"""Non-negative least squares for many small problems at once (Lawson & Hanson's active-set
method, vectorised over the problems).

Template fitting solves, for every object and every trial redshift, ``min ||A c - b||``
with ``c >= 0``, where ``A`` holds a dozen templates through a few to a few dozen filters.
eazy-py calls ``scipy.optimize.nnls`` once per object and redshift from Python, which
costs ~100 µs each (a 5,000-object field on EAZY's 0-12 grid: ~1.3 million calls). Here
Lawson & Hanson's algorithm (the one ``scipy.optimize.nnls`` implements) runs on all
objects of a redshift together: each step adds to every unfinished problem's passive set
the variable with the largest positive gradient and solves the passive-set least-squares
problems as one batch of small normal-equation systems (``numpy.linalg.solve`` on an
(N, T, T) stack), stepping back along the segment when a solution leaves the feasible set.
The solutions are those of ``scipy.optimize.nnls`` (a test compares them, and the chi-square
of eazy-py's own fits).
"""

from __future__ import annotations

import numpy as np

#: a gradient component below this fraction of the largest |A^T b| counts as zero
_GRAD_TOL = 1e-10


def _solve_passive(gram: np.ndarray, atb: np.ndarray, passive: np.ndarray) -> np.ndarray:
    """Least squares restricted to each problem's passive set (zeros elsewhere)."""
    both = passive[:, :, None] & passive[:, None, :]
    g = np.where(both, gram, 0.0)
    idx = np.arange(gram.shape[1])
    g[:, idx, idx] = np.where(passive, g[:, idx, idx], 1.0)
    rhs = np.where(passive, atb, 0.0)
    try:
        return np.linalg.solve(g, rhs[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:  # a singular passive set: the minimum-norm solution
        return np.einsum("nij,nj->ni", np.linalg.pinv(g), rhs)


def nnls_batch(a: np.ndarray, b: np.ndarray, max_iter: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``min ||a[i] @ c - b[i]||, c >= 0`` for every problem ``i``.

    Parameters
    ----------
    a
        (N, M, T) design matrices (rows of a band not to be used must be zero in ``a`` and
        ``b``).
    b
        (N, M) data.
    max_iter
        Outer iterations at most (default ``3 T``, as scipy's).

    Returns
    -------
    coeffs, rnorm2
        (N, T) non-negative solutions and (N,) squared residual norms.
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    n, _, t = a.shape
    gram = np.einsum("nmi,nmj->nij", a, a)
    atb = np.einsum("nmi,nm->ni", a, b)
    scale = np.maximum(np.abs(atb).max(axis=1, initial=0.0), 1e-300)[:, None]
    x = np.zeros((n, t))
    passive = np.zeros((n, t), bool)
    for _ in range(max_iter or 3 * t):
        w = atb - np.einsum("nij,nj->ni", gram, x)
        cand = np.where(~passive & (w > _GRAD_TOL * scale), w, -np.inf)
        best = np.argmax(cand, axis=1)
        active = np.isfinite(cand[np.arange(n), best])
        if not active.any():
            break
        rows = np.flatnonzero(active)
        passive[rows, best[rows]] = True
        for _inner in range(3 * t):
            s = _solve_passive(gram[rows], atb[rows], passive[rows])
            p = passive[rows]
            infeasible = (p & (s <= 0)).any(axis=1)
            done = rows[~infeasible]
            x[done] = np.where(passive[done], s[~infeasible], 0.0)
            if not infeasible.any():
                break
            rows, s, p = rows[infeasible], s[infeasible], p[infeasible]
            xr = x[rows]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(p & (s <= 0), xr / (xr - s), np.inf)
            alpha = np.clip(ratio.min(axis=1), 0.0, 1.0)[:, None]
            xr = xr + alpha * (s - xr)
            keep = p & (xr > 1e-14 * np.maximum(np.abs(xr).max(axis=1, keepdims=True), 1e-300))
            passive[rows] = keep
            x[rows] = np.where(keep, xr, 0.0)
    resid = np.einsum("nmi,ni->nm", a, x) - b
    return x, np.einsum("nm,nm->n", resid, resid)
