"""The ``lowz`` population (bright red-sequence and blue-cloud galaxies at z < 1.5), its
SDSS/DESI-like spectroscopic targets, and the ground-based presets that choose it."""

from __future__ import annotations

import numpy as np
import pytest

from rail.deepdisc.cli import main
from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.sim import lowz
from rail.deepdisc.sim.field import FieldSpec, simulate_field
from rail.deepdisc.sim.population import (
    PopulationConfig,
    catalog_magnitudes,
    sample_population,
)
from rail.deepdisc.sim.surveys import get_survey
from rail.deepdisc.store.scenes import SceneStore


@pytest.fixture(scope="module")
def legacy_pop():
    cat = sample_population(12000, PopulationConfig(survey="legacy_dr10", mag_limit=21.0),
                            seed=3)
    meta = cat.pop("_meta")
    sdss = catalog_magnitudes(cat, lowz.SELECTION_BANDS)
    return cat, meta["surface_density_arcmin2"] * 3600.0, sdss


def test_presets_choose_the_lowz_model():
    ls, hsc = get_survey("legacy_dr10"), get_survey("hsc_wide")
    assert ls.bands == ("decam_g", "decam_r", "decam_i", "decam_z")
    assert ls.pixel_scale == 0.262 and ls.detection_band == "decam_r"
    assert hsc.bands == ("hsc_g", "hsc_r", "hsc_i", "hsc_z", "hsc_y")
    assert hsc.pixel_scale == 0.168 and hsc.detection_band == "hsc_i"
    for survey in (ls, hsc):
        assert survey.population_model == "lowz" and survey.zmax == 1.5
        assert all(p["kind"] == "moffat" for p in survey.psfs.values())
    assert ls.depths == {"decam_g": 24.7, "decam_r": 24.2, "decam_i": 23.6, "decam_z": 23.3}
    assert hsc.depths == {"hsc_g": 26.5, "hsc_r": 26.1, "hsc_i": 25.9, "hsc_z": 25.1,
                          "hsc_y": 24.4}
    for name in ("jades", "lsst", "hsc", "cfhtls"):
        assert get_survey(name).population_model == "deep"
        assert PopulationConfig(survey=name).resolved().population_model == "deep"


def test_counts_of_the_spectroscopic_selections(legacy_pop):
    """Surface densities and redshifts of SDSS/DESI-like selections near the surveys'."""
    cat, density, sdss = legacy_pop
    r, z = sdss[:, 1], cat["redshift"]
    assert np.all(cat["mag_decam_r"] <= 21.0) and z.max() <= 1.5
    n_main, n_bright, n_bgs = (density * np.mean(r < m) for m in (17.77, 19.5, 20.175))
    assert 60 < n_main < 130            # SDSS main sample: ~90 / deg^2
    assert 500 < n_bright < 1000        # DESI BGS bright: ~860 / deg^2
    assert 1100 < n_bgs < 1800          # BGS bright + faint: ~1,400 / deg^2
    assert 0.07 < np.median(z[r < 17.77]) < 0.13
    assert 0.15 < np.median(z[r < 19.5]) < 0.25
    lrg = (cat["spec_target"] & lowz.TARGET_BITS["lrg"]) > 0
    assert 60 < density * lrg.mean() < 250 and 0.35 < np.median(z[lrg]) < 0.65
    assert cat["is_quiescent"][lrg].mean() > 0.6  # mostly red, as BOSS galaxies are


def test_target_bits_follow_their_cuts(legacy_pop):
    cat, _, sdss = legacy_pop
    g, r, i = sdss.T
    bits = cat["spec_target"]
    assert bits.dtype == np.int16
    np.testing.assert_array_equal(bits, lowz.spectroscopic_targets(g, r, i))
    np.testing.assert_array_equal((bits & 1) > 0, r < 17.77)
    np.testing.assert_array_equal((bits & 2) > 0, r < 19.5)
    np.testing.assert_array_equal((bits & 4) > 0, (r >= 19.5) & (r < 20.175))
    # CMASS by hand on one red galaxy and one blue one
    red = lowz.spectroscopic_targets(np.array([21.0]), np.array([19.6]), np.array([18.8]))
    blue = lowz.spectroscopic_targets(np.array([20.0]), np.array([19.8]), np.array([19.7]))
    assert red[0] & 8 and not blue[0] & 8


def test_red_sequence_and_blue_cloud_have_their_own_seds_and_sizes(legacy_pop):
    cat, _, _ = legacy_pop
    red = cat["is_quiescent"].astype(bool)
    assert 0.25 < red.mean() < 0.7
    names = np.char.decode(cat["sed_name"].astype("S"))
    assert all(n.startswith(("Ell", "S0")) for n in set(names[red]))
    assert not any(n.startswith(("Ell", "S0")) for n in set(names[~red]))
    assert np.all(cat["ebv"][red] == 0) and np.mean(cat["ebv"][~red] > 0) > 0.5
    g_r = cat["mag_decam_g"] - cat["mag_decam_r"]
    low = cat["redshift"] < 0.3
    assert np.median(g_r[red & low]) > np.median(g_r[~red & low]) + 0.3
    assert np.median(cat["sersic_n"][red]) > 3 > np.median(cat["sersic_n"][~red])
    # at one stellar mass, early types are smaller (van der Wel et al. 2014)
    mass = (cat["log_mass"] > 10.3) & (cat["log_mass"] < 10.7) & low
    assert np.median(cat["Re_maj_kpc"][red & mass]) < np.median(cat["Re_maj_kpc"][~red & mass])
    # bright galaxies are massive: L* galaxies hold ~10^10.5-11 solar masses
    assert 10.3 < np.median(cat["log_mass"][red & low & (cat["mag_decam_r"] < 18)]) < 11.5


def test_model_magnitudes_reproduce_the_lowz_catalog(legacy_pop):
    """abs_mag keeps the deep model's meaning (UV for star-forming galaxies), so a catalog's
    magnitudes in any band follow from its columns."""
    cat, _, _ = legacy_pop
    bands = ["decam_g", "decam_r", "decam_i", "decam_z"]
    mags = catalog_magnitudes(cat, bands)
    # the population's distance moduli come from a fine redshift grid: 1e-4 mag apart
    np.testing.assert_allclose(mags, np.stack([cat[f"mag_{b}"] for b in bands], axis=1),
                               atol=1e-3)


def test_population_model_option_and_its_limits(tmp_path, capsys):
    cat = sample_population(300, PopulationConfig(survey="lsst", population_model="lowz",
                                                  mag_limit=22.0, zmax=1.5), seed=1)
    assert "spec_target" in cat and cat["redshift"].max() <= 1.5
    assert "spec_target" not in sample_population(50, PopulationConfig(survey="lsst"), seed=1)
    with pytest.raises(OptionError, match=r"lowz.*zmax = 3"):
        PopulationConfig(survey="lsst", population_model="lowz", zmax=3.0).validate()
    with pytest.raises(OptionError, match="population_model"):
        PopulationConfig(survey="lsst", population_model="nearby").validate()
    text = get_survey("legacy_dr10").source
    bad = tmp_path / "bad.yml"
    bad.write_text(open(text).read().replace("model: lowz", "model: local"))
    with pytest.raises(InputError, match=r"bad.yml: population.model: .*'local'"):
        get_survey(str(bad))
    assert main(["simulate", "--survey", "lsst", "--population-model", "lowz", "--zmax", "4",
                 "--scenes", "1", "--output", str(tmp_path / "x.hdf5")]) == 2
    assert "lowz" in capsys.readouterr().err
    assert not (tmp_path / "x.hdf5").exists()


def test_rendered_store_keeps_the_targets(tmp_path):
    spec = FieldSpec(survey="legacy_dr10", n_scenes=2, scene_size=48, seed=2,
                     objects_per_scene=4)
    path = simulate_field(spec, tmp_path / "ls.hdf5", n_workers=1, progress=False)
    with SceneStore(path) as store:
        assert store.bands == ("decam_g", "decam_r", "decam_i", "decam_z")
        obj = store.objects()
    assert obj["spec_target"].dtype == np.int16 and obj["spec_target"].size > 0
    assert np.all(obj["redshift"] <= 1.5)


def test_stars_are_no_spectroscopic_targets():
    cat = sample_population(800, PopulationConfig(survey="legacy_dr10", star_fraction=0.2),
                            seed=4)
    star = cat["is_star"].astype(bool)
    assert star.sum() > 50 and np.all(cat["spec_target"][star] == 0)
    galaxies = {k: v[~star] for k, v in cat.items() if k != "_meta"}
    sdss = catalog_magnitudes(galaxies, lowz.SELECTION_BANDS)
    np.testing.assert_array_equal(cat["spec_target"][~star],
                                  lowz.spectroscopic_targets(*sdss.T))
