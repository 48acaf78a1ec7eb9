"""The mock population: limits, evolution, columns, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from rail.deepdisc.sim.population import PopulationConfig, sample_population
from rail.deepdisc.spectra.bands import LSST_BANDS, NIRCAM_BANDS


@pytest.fixture(scope="module")
def jades_pop():
    cfg = PopulationConfig(bands=NIRCAM_BANDS, limit_band="jwst_f200w", mag_limit=30.0,
                           zmax=12.0)
    return sample_population(6000, cfg, seed=5)


def test_columns_and_limits(jades_pop):
    cat = jades_pop
    for col in ("id", "redshift", "Re_maj", "sersic_n", "axis_ratio", "position_angle",
                "sed_index", "sed_name", "ebv", "bulge_fraction"):
        assert col in cat
    for band in NIRCAM_BANDS:
        flux = cat[f"{band}_fnu"]
        assert np.all(flux >= 0)
        np.testing.assert_allclose(cat[f"mag_{band}"][flux > 0],
                                   31.4 - 2.5 * np.log10(flux[flux > 0]))
    assert np.all(cat["mag_jwst_f200w"] <= 30.0)
    assert cat["redshift"].min() >= 0.02 and cat["redshift"].max() <= 12.0
    assert np.all((cat["axis_ratio"] > 0) & (cat["axis_ratio"] <= 1))
    assert np.all((cat["sersic_n"] >= 0.5) & (cat["sersic_n"] <= 6.0))
    assert np.all(cat["Re_maj"] > 0)
    assert np.all((cat["position_angle"] >= 0) & (cat["position_angle"] < 180))


def test_redshift_distribution_is_deep_field_like(jades_pop):
    z = jades_pop["redshift"]
    assert 1.8 < np.median(z) < 3.8          # JADES-like median
    assert (z > 6).sum() > 0.01 * z.size      # a real high-z tail
    assert (z > 9).sum() >= 1
    # the luminosity function's faint end: most galaxies are near the limit
    mags = jades_pop["mag_jwst_f200w"]
    assert (mags > 28).mean() > 0.5


def test_quiescent_galaxies_live_at_low_redshift(jades_pop):
    q = jades_pop["is_quiescent"].astype(bool)
    assert q.any()
    assert jades_pop["redshift"][q].max() < 6.0
    assert np.all(jades_pop["ebv"][q] == 0)


def test_sizes_shrink_with_redshift(jades_pop):
    z, re_kpc, mag = jades_pop["redshift"], jades_pop["Re_maj_kpc"], jades_pop["abs_mag"]
    sf = jades_pop["is_quiescent"] == 0
    bright = sf & (mag < -19) & (mag > -20)
    low = np.median(re_kpc[bright & (z > 0.5) & (z < 1.5)])
    high = np.median(re_kpc[bright & (z > 5) & (z < 7)])
    assert high < 0.6 * low


def test_same_seed_same_catalog():
    cfg = PopulationConfig(bands=LSST_BANDS, limit_band="lsst_i", mag_limit=26.0, zmax=4.0)
    a = sample_population(500, cfg, seed=9)
    b = sample_population(500, cfg, seed=9)
    c = sample_population(500, cfg, seed=10)
    for k in a:
        if k != "_meta":
            np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["redshift"], c["redshift"])
    assert np.all(a["mag_lsst_i"] <= 26.0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"limit_band": "lsst_i"}, "limit band"),
    ({"zmax": -1.0}, "zmax"),
    ({"mag_limit": float("nan")}, "mag_limit"),
])
def test_bad_config_is_named(kwargs, match):
    base = {"bands": NIRCAM_BANDS, "limit_band": "jwst_f200w", "mag_limit": 29.0}
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sample_population(10, PopulationConfig(**base), seed=0)


def test_non_positive_count_is_refused():
    with pytest.raises(ValueError, match="positive"):
        sample_population(0, PopulationConfig(bands=NIRCAM_BANDS, limit_band="jwst_f200w",
                                               mag_limit=29.0), seed=0)


def test_model_magnitudes_reproduce_the_catalog(jades_pop):
    from rail.deepdisc.sim.population import model_magnitudes

    cat = jades_pop
    mags = model_magnitudes(cat["sed_index"], cat["redshift"], cat["abs_mag"],
                            cat["is_quiescent"], ["jwst_f200w", "jwst_f444w"])
    np.testing.assert_allclose(mags[:, 0], cat["mag_jwst_f200w"], atol=2e-3)
    np.testing.assert_allclose(mags[:, 1], cat["mag_jwst_f444w"], atol=2e-3)


def test_hst_catalog_photometry(jades_pop):
    from rail.deepdisc.sim.catalog_photometry import HST_DEPTHS, catalog_photometry
    from rail.deepdisc.sim.population import model_magnitudes
    from rail.deepdisc.spectra.bands import HST_ACS_BANDS

    cat = {k: v[:3000] for k, v in jades_pop.items() if k != "_meta"}
    table = catalog_photometry(cat, HST_ACS_BANDS, HST_DEPTHS, seed=3)
    err = table["flux_err_hst_f606w"][0]
    assert 31.4 - 2.5 * np.log10(5 * err) == pytest.approx(HST_DEPTHS["hst_f606w"])
    # the noise is Gaussian at the depth around the noiseless model fluxes
    model = 10 ** (-0.4 * (model_magnitudes(cat["sed_index"], cat["redshift"], cat["abs_mag"],
                                            cat["is_quiescent"], ["hst_f606w"])[:, 0] - 31.4))
    pulls = (table["flux_hst_f606w"] - model) / err
    assert abs(np.mean(pulls)) < 0.1 and np.std(pulls) == pytest.approx(1.0, rel=0.05)
    # high-z galaxies drop out of the optical bands; detections have finite errors
    dropouts = cat["redshift"] > 6.5
    assert np.mean(table["mag_hst_f606w"][dropouts] == 99.0) > 0.6
    detected = table["mag_hst_f814w"] < 99
    assert np.all(table["mag_err_hst_f814w"][detected] > 0)
    with pytest.raises(ValueError, match="no depth"):
        catalog_photometry(cat, ["hst_f435w"], {}, seed=1)
