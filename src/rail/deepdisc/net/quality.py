"""Quality columns and flags of each photo-z row, as the paper's catalog has them.

``snr`` is the core S/N of the box in the reference band (:func:`rail.deepdisc.sim.surveys.
reference_band`), measured on the pixels; ``flag_low_snr``: ``snr < LOW_SNR``. ``ood_score``
is the k-NN distance to the training set's features over its 99th percentile
(:mod:`rail.deepdisc.net.density`); ``flag_ood``: score > 1. ``blend`` is the largest
fraction of the box covered by another box of its scene; ``flag_blend``: > ``BLEND_OVERLAP``.
``flag_edge``: the box touches the scene edge. ``flag_low_score``: detection score below
``GOOD_SCORE`` (also the metrics' cut for completeness and purity).
"""

from __future__ import annotations

import numpy as np

from rail.deepdisc.evaluate.matching import box_area, box_intersection
from rail.deepdisc.net import features as photometric
from rail.deepdisc.net.density import FeatureDensity

#: thresholds of the flags
LOW_SNR = 10.0
BLEND_OVERLAP = 0.1
GOOD_SCORE = 0.5


def overlap_fraction(boxes: np.ndarray, scenes: np.ndarray) -> np.ndarray:
    """For each box, the largest fraction of its area covered by another box of its scene."""
    out = np.zeros(len(boxes))
    for scene in np.unique(scenes):
        idx = np.flatnonzero(scenes == scene)
        if idx.size < 2:
            continue
        inter = box_intersection(boxes[idx], boxes[idx])
        np.fill_diagonal(inter, 0.0)
        out[idx] = inter.max(axis=1) / np.maximum(box_area(boxes[idx]), 1e-9)
    return out


def edge_flag(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """1 where a box touches the scene edge."""
    return ((boxes[:, 0] <= 0) | (boxes[:, 1] <= 0) | (boxes[:, 2] >= width)
            | (boxes[:, 3] >= height)).astype(np.int8)


def quality_flags(features: np.ndarray, boxes: np.ndarray, scenes: np.ndarray,
                  scores: np.ndarray, height: int, width: int, ref_band: int, n_bands: int,
                  density: FeatureDensity | None) -> dict[str, np.ndarray]:
    """The quality columns of rows with these photometric features, boxes and scores."""
    snr = photometric.core_snr(features, n_bands, ref_band)
    ood = density.score(features) if density is not None else np.full(len(features), np.nan)
    blend = overlap_fraction(boxes, scenes)
    return {
        "snr": snr, "flag_low_snr": (snr < LOW_SNR).astype(np.int8),
        "ood_score": ood, "flag_ood": (ood > 1.0).astype(np.int8),
        "blend": blend, "flag_blend": (blend > BLEND_OVERLAP).astype(np.int8),
        "flag_edge": edge_flag(boxes, height, width),
        "flag_low_score": (np.asarray(scores) < GOOD_SCORE).astype(np.int8),
    }
