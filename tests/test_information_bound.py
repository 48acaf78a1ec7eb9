"""The information bound of benchmarks/information_bound.py tells informative colours from
uninformative ones, and reads both field sources."""

from __future__ import annotations

import numpy as np
from scripts import load_script

ib = load_script("benchmarks/information_bound.py", "information_bound_script")
DEPTHS = {f"b{i}": 30.0 for i in range(5)}


def _fluxes(z: np.ndarray, informative: bool, rng: np.random.Generator) -> np.ndarray:
    """Bright galaxies (F = 25 mag in band 0) whose colours are a smooth function of
    redshift, or random and independent of it."""
    base = 10.0 ** (-0.4 * (25.0 - ib.NJY_ZEROPOINT))
    slopes = np.linspace(-1.0, 1.0, 5)
    colour = np.log1p(z)[:, None] * slopes if informative else \
        rng.uniform(-1.0, 1.0, (z.size, 1)) * slopes
    return base * np.exp(colour)


def test_the_bound_separates_informative_from_uninformative_colours():
    rng = np.random.default_rng(0)
    z = rng.uniform(0.2, 4.0, 12000)
    kwargs = {"scatter": 0.02, "aperture_factor": 1.5, "n_test": 1000, "seed": 0}
    good = ib.bound(_fluxes(z, True, rng), z, DEPTHS, 0, **kwargs)
    bad = ib.bound(_fluxes(z, False, rng), z, DEPTHS, 0, **kwargs)
    assert good["noiseless_3000"]["sigma_iqr"] < 0.01
    assert good["noisy_3000"]["sigma_iqr"] < 0.05
    assert bad["noiseless_3000"]["sigma_iqr"] > 0.15
    assert bad["noisy_3000"]["outlier_rate"] > 0.4
    # more labels never make the bound much worse
    assert good["noisy_3000"]["sigma_iqr"] <= good["noisy_600"]["sigma_iqr"] + 0.005
    assert good["noisy_600"]["n"] == 1000


def test_both_field_sources_give_fluxes_redshifts_and_depths():
    flux, z, depths, det = ib.second_renderer_catalog(300, seed=2)
    assert flux.shape == (300, len(depths)) and z.shape == (300,)
    assert np.all(np.isfinite(flux)) and np.all(z > 0)
    sim_flux, sim_z, sim_depths, sim_det = ib.simulator_catalog("jades", "cosmos", 300, 2)
    assert sim_flux.shape[1] == len(sim_depths) and sim_flux.shape[0] == sim_z.size > 200
    assert list(depths)[det] == list(sim_depths)[sim_det] == "jwst_f200w"
