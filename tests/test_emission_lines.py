"""Nebular emission lines: exact band integrals, the F410M excess of z ~ 7 emitters,
equivalent widths in the published range, exact selection, libraries and bad input."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from sedpy.observate import getSED

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.sim.population import (
    PopulationConfig,
    catalog_magnitudes,
    model_magnitudes,
    sample_population,
)
from rail.deepdisc.sim.sed_choice import galaxy_lines
from rail.deepdisc.spectra import nebular
from rail.deepdisc.spectra.bands import NIRCAM_BANDS, filter_curve, load_filter
from rail.deepdisc.spectra.igm import madau_transmission
from rail.deepdisc.spectra.library import SEDLibrary
from rail.deepdisc.spectra.library import log_wave_grid as _log_grid
from rail.deepdisc.spectra.named_libraries import get_library
from rail.deepdisc.spectra.photometer import Photometer
from rail.deepdisc.spectra.sed_files import rail_sed_dir
from rail.deepdisc.spectra.templates import cosmos_library

BLEND = [nebular.LINE_NAMES.index(n) for n in nebular.BLEND]


def flat_library() -> SEDLibrary:
    """One star-forming entry with f_lambda = 1 everywhere (EW is then exact)."""
    wave = _log_grid()
    one = np.array(["flat"])
    return SEDLibrary(one, one, np.zeros(1), np.zeros(1, bool), wave, np.ones((1, wave.size)),
                      has_lines=np.zeros(1, bool))


def excess(lib: SEDLibrary, entry: int, z: float, ew: float, bands: list[str],
           oh: float = 7.9) -> np.ndarray:
    """Magnitude change (negative: brighter) that lines of EW ``ew`` give in each band."""
    e, zz = np.array([entry]), np.array([z])
    phot = Photometer(lib, bands)
    lines = galaxy_lines(lib, e, zz, np.array([ew]), np.array([oh]))
    return -2.5 * np.log10(phot.maggies(e, zz, lines) / phot.maggies(e, zz))[0]


@pytest.mark.parametrize("ew", [500.0, 1000.0])
def test_f410m_excess_of_a_z7_emitter_matches_its_equivalent_width(ew):
    """At z = 7 H-beta and [OIII] fall in F410M: the excess is what the EW implies.

    For a continuum flat in f_lambda, lines of rest EWs W_l add, in photon-counting
    photometry, ``(1 + z) sum_l W_l T(l_l) l_l / int T lambda dlambda`` to the band flux,
    with l_l the observed wavelengths; computed here from the filter curve alone.
    """
    z = 7.0
    lam, trans = filter_curve("jwst_f410m")
    norm = np.trapezoid(trans * lam, lam)
    ratios = nebular.intrinsic_ratios(np.array([7.9]))[0, BLEND]
    w_rest = ew * ratios / ratios.sum()  # flat continuum: the EWs split as the fluxes
    lam_obs = nebular.LINE_WAVE[BLEND] * (1 + z)
    assert np.all(np.interp(lam_obs, lam, trans) > 0.5 * trans.max())  # all three inside
    gain = (1 + z) * np.sum(w_rest * np.interp(lam_obs, lam, trans) * lam_obs) / norm
    expected = -2.5 * np.log10(1 + gain)
    got = excess(flat_library(), 0, z, ew, ["jwst_f410m"])[0]
    assert got == pytest.approx(expected, rel=0.01)
    # the one-number estimate (all the EW at [OIII]5007's transmission) is within a few %
    t5007 = np.interp(5008.24 * (1 + z), lam, trans)
    rough = -2.5 * np.log10(1 + ew * (1 + z) * t5007 * 5008.24 * (1 + z) / norm)
    assert got == pytest.approx(rough, rel=0.04)
    assert got < (-0.6 if ew == 500 else -1.0)  # a strong, visible medium-band excess


def test_no_f410m_excess_where_the_lines_miss_it():
    """At z = 6.5 [OIII] sits in F356W and H-alpha in F444W's red wing, none in F410M."""
    dm = excess(flat_library(), 0, 6.5, 1000.0, ["jwst_f356w", "jwst_f410m"])
    assert abs(dm[1]) < 0.01
    assert dm[0] < -0.5


def test_lines_integrate_exactly_against_sedpy_on_a_real_template():
    """A COSMOS starburst with lines, our photometry vs sedpy on a finely sampled spectrum.

    The lines are Gaussians of 50 km/s sampled at 0.05 A: sedpy integrates the spectrum
    itself, so this checks the analytic line integrals (and their normalisation against
    the continuum's), not just their formula.
    """
    lib = cosmos_library()
    entry = int(np.flatnonzero(lib.names == "SB10_A_0_ebv0.10")[0])
    z, bands = 7.0, list(NIRCAM_BANDS)
    e, zz = np.array([entry]), np.array([z])
    lines = galaxy_lines(lib, e, zz, np.array([800.0]), np.array([7.9]))
    ours = -2.5 * np.log10(Photometer(lib, bands).maggies(e, zz, lines)[0])
    wave = np.arange(lib.wave[0], 60000.0, 0.05)
    wave_obs = wave * (1 + z)
    # the IGM acts on the continuum; Ly-alpha's losses are in its luminosity already
    flux = np.interp(wave, lib.wave, lib.flux[entry]) * madau_transmission(wave_obs, z)
    for lam0, lum in zip(lines.wave, lines.lum[0], strict=True):
        sigma = lam0 * 50.0 / 2.998e5
        flux += lum * np.exp(-0.5 * ((wave - lam0) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    ref = getSED(wave_obs, flux / (1 + z), [load_filter(b) for b in bands])
    visible = ref < ref.min() + 5
    np.testing.assert_allclose(ours[visible], ref[visible], atol=0.01)
    assert ours[bands.index("jwst_f410m")] < ours[bands.index("jwst_f444w")] - 0.3


def test_ew_normalisation_on_the_template_continuum():
    """The blend's lines over the template's own continuum give back the EW asked for."""
    lib = cosmos_library()
    rows = np.arange(len(lib))
    ew = np.full(rows.size, 600.0)
    lines = galaxy_lines(lib, rows, np.full(rows.size, 3.0), ew, np.full(rows.size, 8.3))
    np.testing.assert_allclose(nebular.blend_ew(lines.lum, lib.line_continuum), ew,
                               rtol=1e-10)
    # line ratios follow the metallicity calibrations and case B
    r = nebular.intrinsic_ratios(np.array([7.8, 8.7]))
    names = nebular.LINE_NAMES
    assert r[0, names.index("OIII5007")] > 4 > 1 > r[1, names.index("OIII5007")]
    assert r[0, names.index("Ha")] == pytest.approx(2.86)
    # dust reddens H-alpha / H-beta (Balmer decrement) and leaves Ly-alpha to its escape
    d = nebular.dust_factors(np.array([0.0, 0.3]))
    assert d[0, names.index("Ha")] == 1 and d[1, names.index("Ha")] > 1.5


@pytest.fixture(scope="module")
def jades_lines():
    cfg = PopulationConfig(bands=NIRCAM_BANDS, limit_band="jwst_f200w", mag_limit=29.5,
                           zmax=12.0, emission_lines=True)
    return sample_population(5000, cfg, seed=3)


def test_population_ews_are_in_the_published_range(jades_lines):
    """Median EW([OIII]+Hb) ~100 A at z ~ 2 and several hundred A at z > 5."""
    cat = jades_lines
    z, ew = cat["redshift"], cat["ew_oiii_hb"]
    sf = cat["is_quiescent"] == 0
    assert np.all(ew[~sf] == 0) and np.all(ew[sf] > 0)
    high, cosmic_noon = sf & (z > 5), sf & (z > 1.7) & (z < 2.5)
    assert high.sum() > 100
    # Endsley et al. 2021, 2023: median ~760 A at z ~ 7, ~0.3 dex wide
    assert 400 < np.median(ew[high]) < 1100
    assert 0.2 < np.std(np.log10(ew[high])) < 0.45
    # Boyett et al. 2022: [OIII]5007 median 69 A at z ~ 2 (x ~1.5 with 4959 and H-beta)
    assert 60 < np.median(ew[cosmic_noon]) < 250
    assert np.median(ew[high]) > 3 * np.median(ew[cosmic_noon])
    oh = cat["oh_abundance"]
    assert np.all((oh >= 7.6) & (oh <= 8.85))
    assert np.median(oh[high]) < np.median(oh[cosmic_noon])


def test_catalog_magnitudes_include_the_lines(jades_lines):
    cat = jades_lines
    bands = ["jwst_f200w", "jwst_f410m"]
    mags = catalog_magnitudes(cat, bands)
    np.testing.assert_allclose(mags[:, 0], cat["mag_jwst_f200w"], atol=2e-3)
    np.testing.assert_allclose(mags[:, 1], cat["mag_jwst_f410m"], atol=2e-3)
    continuum = model_magnitudes(cat["sed_index"], cat["redshift"], cat["abs_mag"],
                                 cat["is_quiescent"], bands)
    assert np.all(mags <= continuum + 1e-9)  # lines only add flux
    o3_in_f410m = (cat["redshift"] > 6.9) & (cat["redshift"] < 7.6)
    if o3_in_f410m.any():
        assert np.all(mags[o3_in_f410m, 1] < continuum[o3_in_f410m, 1] - 0.2)


def test_same_seed_same_catalog_with_lines():
    cfg = PopulationConfig(bands=NIRCAM_BANDS, limit_band="jwst_f200w", mag_limit=28.0,
                           zmax=10.0, emission_lines=True, line_ew_scale=1.5)
    a, b = (sample_population(400, cfg, seed=9) for _ in range(2))
    c = sample_population(400, cfg, seed=10)
    for k in a:
        if k != "_meta":
            np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["ew_oiii_hb"], c["ew_oiii_hb"])
    off = sample_population(400, PopulationConfig(bands=NIRCAM_BANDS, limit_band="jwst_f200w",
                                                   mag_limit=28.0, zmax=10.0), seed=9)
    assert "ew_oiii_hb" not in off and "oh_abundance" not in off


def test_selection_with_lines_misses_no_galaxy():
    """Galaxies that lines lift above the limit are drawn: a catalog to limit L equals a
    deeper catalog cut at L (counts and distributions), in a band lines dominate."""
    from scipy.stats import ks_2samp

    kw = {"bands": ["jwst_f200w", "jwst_f410m"], "limit_band": "jwst_f410m", "zmax": 10.0,
          "emission_lines": True}
    direct = sample_population(1500, PopulationConfig(mag_limit=27.0, **kw), seed=1)
    deep = sample_population(6000, PopulationConfig(mag_limit=28.0, **kw), seed=2)
    cut = deep["mag_jwst_f410m"] <= 27.0
    density = deep["_meta"]["surface_density_arcmin2"] * cut.mean()
    assert direct["_meta"]["surface_density_arcmin2"] == pytest.approx(density, rel=0.05)
    for col in ("redshift", "ew_oiii_hb"):
        assert ks_2samp(direct[col], deep[col][cut]).pvalue > 0.01


def test_cww_and_user_template_lists(tmp_path):
    """Any template set gets lines, except templates that already show them."""
    cww = get_library("cww")
    assert set(cww.template[cww.has_lines]) >= {"SB2_B2004a", "SB3_B2004a"}
    cfg = PopulationConfig(bands=NIRCAM_BANDS, limit_band="jwst_f200w", mag_limit=28.0,
                           zmax=8.0, sed_library="cww", emission_lines=True)
    cat = sample_population(300, cfg, seed=4)
    assert cat["_meta"]["sed_library"] == "cww"
    own = cww.has_lines[cat["sed_index"]]
    assert np.all(cat["ew_oiii_hb"][own] == 0)
    assert np.all(cat["ew_oiii_hb"][~own & (cat["is_quiescent"] == 0)] > 0)
    np.testing.assert_allclose(catalog_magnitudes(cat, ["jwst_f410m"], cww)[:, 0],
                               cat["mag_jwst_f410m"], atol=2e-3)
    listing = tmp_path / "mine.list"
    listing.write_text(f"{rail_sed_dir()}/Ell2_A_0.sed\n{rail_sed_dir()}/SB8_A_0.sed\n"
                       f"# a comment\n{rail_sed_dir()}/Sc_A_0.sed\n")
    lib = get_library(str(listing))
    assert list(lib.quiescent[lib.ebv == 0]) == [True, False, False]
    cfg = PopulationConfig(bands=NIRCAM_BANDS, limit_band="jwst_f200w", mag_limit=27.0,
                           zmax=6.0, sed_library=str(listing), emission_lines=True)
    assert sample_population(100, cfg, seed=1)["ew_oiii_hb"].max() > 0


def test_eazy_param_file_is_a_template_list(tmp_path):
    """An EAZY templates .param file (paths relative to the folder above templates/,
    wavelength scale per template) is read as the template list it names."""
    folder = tmp_path / "templates" / "mine"
    folder.mkdir(parents=True)
    wave, flux = np.loadtxt(f"{rail_sed_dir()}/Sc_A_0.sed", unpack=True)
    np.savetxt(folder / "Sc_nm.dat", np.column_stack([wave / 10.0, flux]))  # in nm
    param = folder / "mine.param"
    param.write_text("1 templates/mine/Sc_nm.dat 10.0 0.0 1.0\n"
                     f"2 {rail_sed_dir()}/Ell2_A_0.sed 1.0\n")
    listing = tmp_path / "same.list"
    listing.write_text(f"{rail_sed_dir()}/Sc_A_0.sed\n{rail_sed_dir()}/Ell2_A_0.sed\n")
    from_param, from_list = get_library(str(param)), get_library(str(listing))
    assert list(from_param.quiescent[from_param.ebv == 0]) == [False, True]
    np.testing.assert_allclose(from_param.flux, from_list.flux, rtol=1e-6, atol=1e-30)
    (folder / "broken.param").write_text("1 templates/mine/missing.dat 1.0\n")
    with pytest.raises(InputError, match=r"missing\.dat"):
        get_library(str(folder / "broken.param"))


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_sed_library_is_named(tmp_path):
    base = {"bands": NIRCAM_BANDS, "limit_band": "jwst_f200w", "mag_limit": 27.0}
    with pytest.raises(OptionError, match=r"sed_library.*no_such_library"):
        sample_population(10, PopulationConfig(sed_library="no_such_library", **base), seed=0)
    listing = tmp_path / "broken.list"
    listing.write_text("missing_template.sed\n")
    before = _sha(listing)
    with pytest.raises(InputError, match=r"missing_template\.sed"):
        sample_population(10, PopulationConfig(sed_library=str(listing), **base), seed=0)
    assert _sha(listing) == before
    with pytest.raises(OptionError, match="line_ew_scale"):
        PopulationConfig(line_ew_scale=-1.0, **base).validate()


def test_sps_library_lines_and_photometry():
    """bagpipes SEDs: continuum + own lines integrate like bagpipes' full spectrum."""
    pytest.importorskip("bagpipes")
    from rail.deepdisc.spectra.sps import _bagpipes, _components, sps_library

    lib = sps_library(size=40, seed=3)
    p = lib.params
    young = int(np.argmax(p["ew_oiii_hb"]))
    assert p["ew_oiii_hb"][young] > 300 and np.all(lib.flux >= 0)
    # bagpipes' own spectrum with its lines in pixels, redshifted and integrated by sedpy
    pipes = _bagpipes()
    model = pipes.model_galaxy(_components(p, young), spec_wavs=np.arange(900.0, 60000, 2.0))
    z, bands = 7.0, ["jwst_f356w", "jwst_f410m", "jwst_f444w"]
    ref = getSED(model.wavelengths * (1 + z), model.spectrum_full / (1 + z),
                 [load_filter(b) for b in bands])
    e, zz = np.array([young]), np.array([z])
    lines = galaxy_lines(lib, e, zz, p["ew_oiii_hb"][e], np.zeros(1))
    ours = -2.5 * np.log10(Photometer(lib, bands, igm=False).maggies(e, zz, lines)[0])
    # the entries' scale, from the rest-UV continuum (no strong lines there)
    sel = (model.wavelengths > 1400) & (model.wavelengths < 1600)
    ours_sel = (lib.wave > 1400) & (lib.wave < 1600)
    offset = -2.5 * np.log10(np.mean(model.spectrum_full[sel])
                             / np.mean(lib.flux[young, ours_sel]))
    np.testing.assert_allclose(ours + offset, ref, atol=0.02)
    # a population on it: only stars younger than the Universe, lines from the entries
    cfg = PopulationConfig(bands=NIRCAM_BANDS, limit_band="jwst_f200w", mag_limit=28.0,
                           zmax=9.0, sed_library="sps")
    cat = sample_population(200, cfg, seed=2, library=lib)
    from astropy.cosmology import Planck18

    assert np.all(p["age"][cat["sed_index"]] < Planck18.age(cat["redshift"]).value)
    np.testing.assert_allclose(catalog_magnitudes(cat, ["jwst_f410m"], lib)[:, 0],
                               cat["mag_jwst_f410m"], atol=2e-3)
