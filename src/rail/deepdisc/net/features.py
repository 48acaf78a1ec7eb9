"""The photometric feature vector of a box: its layout, defined once.

The redshift head sees, besides the pooled network features, a vector computed straight from
the input pixels in each box (:meth:`rail.deepdisc.net.heads.RedshiftHead.pooled_inputs`):
``asinh(S/N / 2)`` of the whole box in each band, the same for the box's core, then the log
width and log height. The training set's density in the core-S/N columns gives the
out-of-distribution flag, and the reference band's core S/N gives the ``snr`` column.
"""

from __future__ import annotations

import numpy as np

#: the S/N values enter as asinh(S/N / SOFTENING)
SOFTENING = 2.0


def feature_size(n_bands: int) -> int:
    """Length of the vector for ``n_bands`` bands."""
    return 2 * n_bands + 2


def core_snr_columns(n_bands: int) -> tuple[int, ...]:
    """Columns holding the (stretched) core S/N of each band."""
    return tuple(range(n_bands, 2 * n_bands))


def core_snr(features: np.ndarray, n_bands: int, band: int) -> np.ndarray:
    """The core S/N in band ``band`` of each row (the stretch undone)."""
    if len(features) == 0:
        return np.zeros(0)
    return SOFTENING * np.sinh(features[:, core_snr_columns(n_bands)[band]])


def empty(n_bands: int) -> np.ndarray:
    """A (0, feature_size) array, for chunks without boxes."""
    return np.zeros((0, feature_size(n_bands)))
