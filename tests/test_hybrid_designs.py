"""The hybrid-designs benchmark's S/N weights: labelled objects made to stand for the
catalog's S/N distribution."""

from __future__ import annotations

import numpy as np
from scripts import load_script

designs = load_script("benchmarks/hybrid_designs.py", "hybrid_designs")


def test_weights_give_the_labelled_objects_the_catalogs_snr_distribution():
    rng = np.random.default_rng(3)
    catalog = 10 ** rng.normal(1.3, 0.4, 20000)  # fainter
    labelled = 10 ** rng.normal(1.7, 0.4, 600)  # a spectroscopic selection: brighter
    w = designs.snr_weights(labelled, catalog)
    assert w.shape == labelled.shape and np.all(w > 0)
    assert np.all(w <= designs.WEIGHT_CLIP) and np.all(w >= 1 / designs.WEIGHT_CLIP)
    faint = labelled < np.median(labelled)
    assert w[faint].mean() > 2 * w[~faint].mean()
    weighted_mean = np.average(np.log10(labelled), weights=w)
    assert abs(weighted_mean - 1.3) < abs(np.log10(labelled).mean() - 1.3) / 2
    # the same distribution: every weight near 1
    same = designs.snr_weights(labelled, 10 ** rng.normal(1.7, 0.4, 20000))
    assert np.all(np.abs(same - 1) < 0.5)
