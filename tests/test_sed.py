"""Synthetic photometry, IGM and dust against astro-sedpy and physics."""

from __future__ import annotations

import numpy as np
import pytest
from sedpy.observate import getSED

from rail.deepdisc.magnitudes import flux_to_mag, mag_to_flux
from rail.deepdisc.spectra.bands import LSST_BANDS, NIRCAM_BANDS, load_filter, validate_bands
from rail.deepdisc.spectra.dust import calzetti_transmission
from rail.deepdisc.spectra.igm import madau_transmission
from rail.deepdisc.spectra.named_libraries import get_library
from rail.deepdisc.spectra.photometer import Photometer
from rail.deepdisc.spectra.sed_files import rail_sed_dir, read_sed_file
from rail.deepdisc.spectra.templates import cosmos_library, cww_library


@pytest.fixture(scope="module")
def library():
    return cosmos_library()


@pytest.mark.parametrize(("bands", "template", "z"), [
    (NIRCAM_BANDS, "SB5_A_0", 2.3),
    (NIRCAM_BANDS, "Sc_A_1", 0.7),
    (NIRCAM_BANDS, "SB11_A_0", 7.4),
    (LSST_BANDS, "Ell3_A_0", 0.45),
    (LSST_BANDS, "Sd_A_0", 1.6),
])
def test_magnitudes_match_sedpy(library, bands, template, z):
    """Our vectorised photometry of a shipped template agrees with astro-sedpy's."""
    # the template straight from pz-rail-base's file, redshifted by hand for sedpy
    wave, flam = read_sed_file(f"{rail_sed_dir()}/{template}.sed")
    wave_obs = wave * (1 + z)
    flux_obs = flam / (1 + z) * madau_transmission(wave_obs, z)
    flux_obs[wave < 912.0] = 0.0
    ref = getSED(wave_obs, flux_obs, [load_filter(b) for b in bands])
    entry = list(library.names).index(f"{template}_ebv0.00")
    ours = -2.5 * np.log10(Photometer(library, bands).maggies(np.array([entry]),
                                                                 np.array([z]))[0])
    visible = ref < ref.min() + 5  # bands with real flux (dropout bands are ~inf)
    assert visible.sum() >= 3
    np.testing.assert_allclose(ours[visible], ref[visible], atol=0.01)


def test_lyman_break_dropouts(library):
    """F090W drops out once Ly-alpha passes its red edge; the forest blueward is dark.

    At z = 7.0 Ly-alpha (9726 A) still lies inside F090W (half-power red edge ~10050 A,
    last transmission at 10700 A), so F090W/F200W ~ 0.1-0.25 is physical (real z ~ 7
    galaxies have F090W - F115W ~ 2 mag); at z = 8 Ly-alpha is past the whole filter.
    """
    entry = np.array([list(library.names).index("SB9_A_0_ebv0.00")])
    phot = Photometer(library, ["jwst_f090w", "jwst_f200w"])
    f090, f200 = phot.maggies(entry, np.array([8.0]))[0]
    assert f090 < 0.01 * f200
    f090, f200 = phot.maggies(entry, np.array([9.0]))[0]
    assert f090 < 0.001 * f200
    # at z = 7 the IGM leaves < 1% of the continuum blueward of Ly-alpha
    lam = np.linspace(8000.0, 9700.0, 50)
    assert np.all(madau_transmission(lam, 7.0) < 0.12)
    no_igm = Photometer(library, ["jwst_f090w"], igm=False).maggies(entry, np.array([7.0]))[0, 0]
    with_igm = phot.maggies(entry, np.array([7.0]))[0, 0]
    lam_f, t_f = (np.asarray(a) for a in (load_filter("jwst_f090w").wavelength,
                                          load_filter("jwst_f090w").transmission))
    red = lam_f > 1215.67 * 8.0
    red_share = np.trapezoid(t_f[red] / lam_f[red], lam_f[red]) / np.trapezoid(t_f / lam_f, lam_f)
    # what is left is the part of F090W redward of Ly-alpha, give or take the forest
    assert with_igm / no_igm == pytest.approx(red_share, abs=0.05)
    # and a low-z galaxy is not a dropout
    f090, f200 = phot.maggies(entry, np.array([2.0]))[0]
    assert f090 > 0.3 * f200


def test_igm_limits():
    lam = np.array([1000.0, 3000.0, 5000.0])
    assert np.all(madau_transmission(lam, 0.0) == 1.0)
    t = madau_transmission(np.array([1216.0 * 3.9]), 3.0)[0]
    assert 0.3 < t < 0.9  # the z ~ 3 forest absorbs tens of percent
    # Lyman-limit systems: ~10% left at 800 A rest at z = 3, less further blueward
    t_ll = madau_transmission(np.array([800.0 * 4, 600.0 * 4]), 3.0)
    assert t_ll[0] < 0.15 and t_ll[1] < t_ll[0]


def test_calzetti_dust_reddens():
    lam = np.array([1500.0, 5500.0, 20000.0])
    t = calzetti_transmission(lam, 0.3)
    assert t[0] < t[1] < t[2] <= 1.0
    assert -2.5 * np.log10(t[1]) == pytest.approx(4.05 * 0.3, rel=0.05)  # A_V = R_V E(B-V)


def test_flux_units_round_trip():
    mags = np.array([20.0, 25.0, 31.4])
    np.testing.assert_allclose(flux_to_mag(mag_to_flux(mags)), mags)
    assert mag_to_flux(31.4) == pytest.approx(1.0)
    assert mag_to_flux(23.9) == pytest.approx(1000.0, rel=1e-3)  # 1 uJy


def test_library_is_the_cosmos_set(library):
    assert len(set(library.template)) == 31
    assert library.flux.shape == (len(library), library.wave.size)
    assert np.all(library.flux[:, library.wave < 912] == 0)
    assert set(np.round(library.ebv, 2)) == {0.0, 0.1, 0.2, 0.3, 0.4}


def test_mixed_library_draws_from_every_set():
    """'cosmos+cww' holds both sets' entries; a population drawn from it uses templates of
    both; 'sps' cannot be mixed."""
    from rail.deepdisc.errors import OptionError
    from rail.deepdisc.sim.population import PopulationConfig, sample_population

    mixed, cosmos, cww = get_library("cosmos+cww"), cosmos_library(), cww_library()
    assert len(mixed) == len(cosmos) + len(cww) and len(set(mixed.names)) == len(mixed)
    assert np.array_equal(mixed.flux[len(cosmos):], cww.flux)
    assert mixed.quiescent.sum() == cosmos.quiescent.sum() + cww.quiescent.sum()
    config = PopulationConfig(survey="lsst", realism="full", sed_library="cosmos+cww",
                              star_fraction=0.0)
    assert config.library == "cosmos+cww"
    catalog = sample_population(400, config, seed=2)
    entries = np.asarray(catalog["sed_index"])
    from_cww = np.mean(entries >= len(cosmos))
    assert 0.05 < from_cww < 0.6
    assert PopulationConfig(survey="lsst").library == "cosmos"
    with pytest.raises(OptionError, match="sps"):
        PopulationConfig.from_mapping({"survey": "lsst", "sed_library": "cosmos+sps"})
    with pytest.raises(OptionError, match="nope"):
        PopulationConfig.from_mapping({"survey": "lsst", "sed_library": "cosmos+nope"})


def test_unknown_band_is_named():
    with pytest.raises(ValueError, match="jwst_f999w"):
        validate_bands(["jwst_f200w", "jwst_f999w"])
