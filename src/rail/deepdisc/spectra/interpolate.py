"""Row-wise linear interpolation on a uniform grid (one table row per object)."""

from __future__ import annotations

import numpy as np


def row_interp(x: np.ndarray, grid: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Linear interpolation of each row of ``table`` (on the uniform ``grid``) at ``x``.

    ``x`` has shape (n,) or (n, k) with ``table`` of shape (n, len(grid)); values beyond
    the grid are clamped to its ends.
    """
    step = grid[1] - grid[0]
    pos = np.clip((x - grid[0]) / step, 0.0, grid.size - 1.0)
    i0 = np.minimum(np.floor(pos).astype(np.int64), grid.size - 2)
    frac = pos - i0
    rows = np.arange(table.shape[0]).reshape((-1,) + (1,) * (np.ndim(x) - 1))
    return table[rows, i0] * (1.0 - frac) + table[rows, i0 + 1] * frac
