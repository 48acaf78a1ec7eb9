"""Template sets, filter-curve lookup and the metric definitions."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

from rail.deepdisc.evaluate.metrics import point_metrics
from rail.deepdisc.spectra.filters import eazy_res_text, resolve_filter, resolve_filters
from rail.deepdisc.spectra.library import EARLY, SPIRAL, STARBURST
from rail.deepdisc.spectra.sed_files import rail_sed_dir, read_templates
from rail.deepdisc.spectra.template_sets import oracle_templates
from rail.deepdisc.spectra.templates import (
    CWW_RED_LIMIT,
    cosmos_library,
    cosmos_templates,
    cww_templates,
    extend_red,
)


def test_cww_set_is_bpz_default_extended_redward():
    tset = cww_templates()
    assert list(tset.names[:3]) == ["El_B2004a", "Sbc_B2004a", "Scd_B2004a"]
    assert tset.nt_array() == [1, 2, 5]
    for i in range(len(tset)):
        wave, flux = tset.entry_sed(i)
        assert wave[0] > 0 and wave[-1] >= CWW_RED_LIMIT and np.all(flux >= 0)
    el_wave, el_flux = tset.entry_sed(0)
    assert "extended" in tset.sources[0]
    # the tail is a lambda^-4 law continuing the template's last 10%
    tail = el_wave > 3.0e4
    slope = np.polyfit(np.log(el_wave[tail]), np.log(el_flux[tail]), 1)[0]
    assert slope == pytest.approx(-4.0, abs=1e-6)
    # amplitude: within the range of f_lambda lambda^4 over the tabulated last 10%
    tab = (el_wave > 0.9 * 25600) & (el_wave <= 25600)
    first = np.flatnonzero(el_wave > 25600)[0]
    flam4 = el_flux * el_wave**4
    assert flam4[tab].min() <= flam4[first] <= flam4[tab].max()


def _band_fluxes(wave, flux, curves, zs):
    """f_nu-weighted band fluxes (n_z, n_bands) of a rest-frame table, linearly interpolated."""
    out = np.zeros((zs.size, len(curves)))
    for j, c in enumerate(curves):
        norm = np.trapezoid(c.throughput / c.wave, c.wave)
        for k, z in enumerate(zs):
            rest = np.interp(c.wave / (1 + z), wave, flux, left=0.0, right=0.0)
            out[k, j] = np.trapezoid(rest * c.throughput * c.wave, c.wave) / norm
    return out


def test_cww_set_on_its_common_grid_keeps_each_templates_own_sampling():
    """The set's common grid holds every template as its file tabulates it: each entry's own
    wavelengths give back the (extended) file, and its row on the whole grid has the file's
    band fluxes in NIRCam and LSST bands from z = 0 to 12 (a uniform ln-wavelength grid of
    step 1e-3 would change SB2's by 1%)."""
    tset = cww_templates()
    tables = read_templates(os.path.join(rail_sed_dir(), "CWWSB4.list"))
    assert len(tables) == len(tset)
    assert not np.all(tset.tabulated[0])  # not every template has every grid wavelength
    with pytest.raises(ValueError, match="not on a grid uniform"):
        _ = tset.dlnwave
    curves = [resolve_filter(b) for b in ("jwst_f090w", "jwst_f200w", "jwst_f444w",
                                          "DC2LSST_u", "DC2LSST_r", "DC2LSST_y")]
    zs = np.arange(0.0, 12.01, 0.1)
    for i, (path, wave, flux) in enumerate(tables):
        wave, flux = extend_red(wave, flux, CWW_RED_LIMIT)
        own_wave, own_flux = tset.entry_sed(i)
        assert np.array_equal(own_wave, wave) and np.array_equal(own_flux, flux), path
        native = _band_fluxes(wave, flux, curves, zs)
        common = _band_fluxes(tset.wave, tset.flux[i], curves, zs)
        seen = native > 0
        assert seen.sum() > 0.5 * seen.size
        assert np.array_equal(common > 0, seen), path
        assert np.max(np.abs(common[seen] / native[seen] - 1.0)) < 1e-3, path


def test_extend_red_leaves_long_templates_alone():
    wave = np.linspace(1000, 2e5, 50)
    flux = np.ones(50)
    w, f = extend_red(wave, flux, 1e5)
    assert w is wave and f is flux


def test_cosmos_and_oracle_sets():
    cosmos = cosmos_templates()
    assert len(cosmos) == 31 and sum(cosmos.nt_array()) == 31
    oracle = oracle_templates()
    assert len(oracle) == 123 and all("." not in n for n in oracle.names)
    sub = oracle_templates(entries=[5, 5, 0])
    assert len(sub) == 2
    with pytest.raises(ValueError, match="outside the library"):
        oracle_templates(entries=[500])


def test_one_library_type_for_the_simulator_and_the_fitters():
    """The oracle set is the simulator's library itself, sorted by broad type; broad types
    and the quiescent population are one rule."""
    lib, oracle = cosmos_library(), oracle_templates()
    order = np.argsort(lib.broad_type, kind="stable")
    assert np.array_equal(oracle.flux, lib.flux[order]) and np.array_equal(oracle.wave, lib.wave)
    assert np.array_equal(oracle.quiescent, lib.quiescent[order])
    assert np.array_equal(lib.quiescent, lib.broad_type == EARLY)
    assert oracle.nt_array() == [int(np.sum(lib.broad_type == t)) for t in (0, 1, 2)]
    backwards = lib.take(np.arange(len(lib))[::-1])
    assert backwards.names[0] == lib.names[-1] and backwards.sources[0] == lib.sources[-1]
    with pytest.raises(ValueError, match="not sorted by broad type"):
        backwards.nt_array()
    assert backwards.by_broad_type().nt_array() == oracle.nt_array()
    # without broad types, they follow from quiescence and the star-forming sequence; for
    # COSMOS that is the rule by template name
    derived = replace(lib, broad_type=None)
    young = np.nan_to_num(lib.sf_position, nan=0.0) >= 0.5
    assert np.array_equal(derived.broad_type,
                          np.where(lib.quiescent, EARLY, np.where(young, STARBURST, SPIRAL)))
    assert np.array_equal(derived.broad_type, lib.broad_type)
    with pytest.raises(ValueError, match="quiescent entries"):
        replace(lib, quiescent=~lib.quiescent)


def test_filter_lookup():
    jwst = resolve_filter("jwst_f444w")
    assert jwst.source.startswith("astro-sedpy") and 43000 < jwst.pivot < 45000
    assert jwst.throughput[0] == 0 and jwst.throughput[-1] == 0
    dc2 = resolve_filter("DC2LSST_r")  # pz-rail-base's BPZ filter directory
    assert dc2.source.endswith("DC2LSST_r.res") and 6000 < dc2.pivot < 6500
    sedpy = resolve_filter("wfc3_ir_f160w")
    assert 15000 < sedpy.pivot < 16000
    coarse = jwst.resampled(0.002)
    assert coarse.wave.size < jwst.wave.size and coarse.pivot == pytest.approx(jwst.pivot,
                                                                               rel=1e-5)
    with pytest.raises(ValueError, match="no filter curve for 'nope_band'") as err:
        resolve_filters(["jwst_f200w", "nope_band"])
    assert "jwst_f200w" not in str(err.value).split("no filter curve")[1][:20]
    text = eazy_res_text([jwst, dc2])
    assert text.splitlines()[0].split()[:2] == [str(jwst.wave.size), "jwst_f444w"]


def test_point_metrics_definitions():
    z_true = np.array([0.0, 1.0, 2.0, 3.0, np.nan])
    z_phot = np.array([0.1, 1.0, 2.0, 3.0, 1.0])
    m = point_metrics(z_phot, z_true)
    dz = np.array([0.1, 0.0, 0.0, 0.0])
    assert m["n"] == 4
    assert m["bias"] == pytest.approx(np.median(dz))
    assert m["sigma_iqr"] == pytest.approx(np.subtract(*np.percentile(dz, [75, 25])) / 1.349)
    assert m["outlier_rate"] == 0.0
    assert m["outlier_rate_rail"] == pytest.approx(0.25)  # |dz| > max(0.06, 3 sigma_IQR)
    assert np.isnan(point_metrics([np.nan], [1.0])["sigma_iqr"])
    with pytest.raises(ValueError, match="z_true"):
        point_metrics([1.0, 2.0], [1.0])
