"""The ``sps`` template set: a deterministic basis of the sps library, lines that keep their
flux, use through EAZY, and EAZY's offline fallback chosen by what is installed."""

from __future__ import annotations

import numpy as np
import pytest

from rail.deepdisc.errors import OptionError
from rail.deepdisc.fit import eazy_data
from rail.deepdisc.spectra import sps_templates as st
from rail.deepdisc.spectra.bands import NIRCAM_BANDS, filter_curve
from rail.deepdisc.spectra.library import EARLY, LIGHTSPEED_AA
from rail.deepdisc.spectra.photometer import AB_FNU0, Photometer
from rail.deepdisc.spectra.template_sets import builtin_templates

#: the basis itself needs the sps extra; the refusal and the fallback choice run without it
needs_bagpipes = pytest.mark.skipif(not st.bagpipes_available(),
                                    reason="needs the sps extra (bagpipes)")


def _band_maggies(wave: np.ndarray, flux: np.ndarray, z: float, band: str) -> float:
    """Photon-counting AB maggies of a rest f_lambda (4 pi d_L^2 = 1) at z, by the
    trapezoid rule on the union of the filter's and the redshifted spectrum's points."""
    lam, trans = filter_curve(band)
    obs = wave * (1.0 + z)
    grid = np.union1d(lam, obs[(obs > lam[0]) & (obs < lam[-1])])
    f = np.interp(grid, obs, flux / (1.0 + z), left=0.0, right=0.0)
    t = np.interp(grid, lam, trans, left=0.0, right=0.0)
    fnu = np.trapezoid(f * t * grid, grid) / np.trapezoid(t * LIGHTSPEED_AA / grid, grid)
    return fnu / AB_FNU0


@needs_bagpipes
def test_basis_is_deterministic_and_spans_the_library():
    tset = builtin_templates("sps")
    lib = st.sps_library()
    assert len(tset) == st.BASIS_SIZE and len(set(tset.names)) == st.BASIS_SIZE
    assert builtin_templates("sps") is tset  # built once per process
    # both populations, sorted by broad type (BPZ's order)
    assert np.sum(tset.broad_type == EARLY) == st.N_QUIESCENT
    assert np.all(tset.quiescent == (tset.params["log_ssfr"] < -10.0))
    assert list(tset.broad_type) == sorted(tset.broad_type)
    # a second k-means from the same seed chooses the same entries
    features = st.shape_features(lib)
    groups = [np.flatnonzero(lib.quiescent), np.flatnonzero(~lib.quiescent)]
    sizes = [st.N_QUIESCENT, st.N_STAR_FORMING]
    again = st.choose_basis(features, groups, sizes)
    np.testing.assert_array_equal(again, st.choose_basis(features, groups, sizes))
    assert sorted(lib.names[again]) == sorted(tset.names)
    # it spans the library: UV-optical colours and [OIII]+H-beta strengths from end to end
    colour = lib.uv_optical_colour
    basis_colour = colour[again]
    assert basis_colour.min() < np.quantile(colour, 0.1)
    assert basis_colour.max() > np.quantile(colour, 0.9)
    ew = lib.params["ew_oiii_hb"][again]
    assert ew.max() > np.quantile(lib.params["ew_oiii_hb"], 0.9)
    # and is nearer the library's entries, on average, than random bases of the same size
    def mean_distance(rows):
        d = ((features[:, None, :] - features[None, rows, :]) ** 2).sum(axis=2)
        return np.sqrt(d.min(axis=1)).mean()
    rng = np.random.default_rng(1)
    draws = [mean_distance(rng.choice(len(lib), st.BASIS_SIZE, replace=False))
              for _ in range(5)]
    assert mean_distance(again) < min(draws)


@needs_bagpipes
def test_rendered_lines_keep_the_photometers_line_fluxes():
    """Band fluxes of the templates (lines drawn in) = continuum + Photometer.line_maggies."""
    basis = st.sps_basis()
    tset = builtin_templates("sps")
    lines = st.rendered_lines(basis)
    phot = Photometer(basis, NIRCAM_BANDS, igm=False)
    row = {n: i for i, n in enumerate(tset.names)}
    # distinct wavelengths even as a template file writes them (8 significant digits)
    assert np.all(np.diff(np.array([f"{w:.7e}" for w in tset.wave], dtype=float)) > 0)
    largest_line_share = 0.0
    for z in (0.4, 2.3, 6.5):
        entries = np.arange(len(basis))
        zz = np.full(len(basis), z)
        cont = phot.maggies(entries, zz)
        line = phot.line_maggies(lines, zz)
        expect = cont + line
        got = np.array([[_band_maggies(tset.wave, tset.flux[row[n]], z, b)
                         for b in NIRCAM_BANDS] for n in basis.names])
        np.testing.assert_allclose(got, expect, rtol=2e-3)  # measured: 3e-4
        largest_line_share = max(largest_line_share, float(np.max(line / expect)))
    assert largest_line_share > 0.2  # the lines matter: without them this would fail


@needs_bagpipes
def test_sps_templates_fit_through_eazy():
    """EAZY loads the set by name and finds the redshifts of its own templates' photometry."""
    pytest.importorskip("eazy", reason="needs the eazy or fitters extra (eazy-py)")
    from rail.deepdisc.fit.eazy_model import build_model
    from rail.deepdisc.fit.eazy_templates import load_templates
    from rail.deepdisc.fit.eazyfit import fit

    loaded = load_templates("sps")
    tset = builtin_templates("sps")
    assert loaded.names == list(tset.names)
    assert all("sps_library entry" in s for s in loaded.sources)
    model = build_model(NIRCAM_BANDS, "sps", zmin=0.0, zmax=5.0, zstep=0.03)
    basis = st.sps_basis()
    phot = Photometer(basis, NIRCAM_BANDS)
    entries = np.array([0, 2, 5, 8, 11, 14])
    z = np.array([0.5, 1.2, 2.1, 3.0, 1.6, 4.4])
    fnu = phot.maggies(entries, z, lines=st.rendered_lines(basis)[entries])
    res = fit(model, fnu, 0.01 * fnu)
    assert np.all(np.abs(res.zbest - z) / (1.0 + z) < 0.02)  # the grid's step is 0.03


def test_sps_is_refused_without_bagpipes(monkeypatch):
    monkeypatch.setattr(st, "bagpipes_available", lambda: False)
    with pytest.raises(OptionError, match=r"bagpipes.*\[sps\]"):
        builtin_templates("sps")


@pytest.mark.parametrize("installed, expect", [(True, "sps"), (False, "cww")])
def test_eazy_falls_back_to_the_best_installed_set(monkeypatch, installed, expect):
    monkeypatch.delenv(eazy_data.EAZY_DIR_ENV, raising=False)
    monkeypatch.setattr(eazy_data, "eazy_package_data", lambda: None)
    monkeypatch.setattr(eazy_data, "bagpipes_available", lambda: installed)
    choice = eazy_data.resolve_template_set("auto")
    assert (choice.name, choice.templates) == (expect, expect)
    assert choice.description.startswith(eazy_data.DESCRIPTIONS[expect])
    assert eazy_data.fallback_set() == expect
