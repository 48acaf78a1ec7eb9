"""Template sets, filter-curve lookup and the metric definitions."""

from __future__ import annotations

import numpy as np
import pytest

from rail.deepdisc.evaluate.metrics import point_metrics
from rail.deepdisc.spectra.filters import eazy_res_text, resolve_filter, resolve_filters
from rail.deepdisc.spectra.template_sets import oracle_templates
from rail.deepdisc.spectra.templates import (
    CWW_RED_LIMIT,
    cosmos_templates,
    cww_templates,
    extend_red,
)


def test_cww_set_is_bpz_default_extended_redward():
    tset = cww_templates()
    assert tset.names[:3] == ["El_B2004a", "Sbc_B2004a", "Scd_B2004a"]
    assert tset.nt_array() == [1, 2, 5]
    for t in tset.templates:
        assert t.wave[0] > 0 and t.wave[-1] >= CWW_RED_LIMIT and np.all(t.flux >= 0)
    el = tset.templates[0]
    assert "extended" in el.source
    # the tail is a lambda^-4 law continuing the template's last 10%
    tail = el.wave > 3.0e4
    slope = np.polyfit(np.log(el.wave[tail]), np.log(el.flux[tail]), 1)[0]
    assert slope == pytest.approx(-4.0, abs=1e-6)
    # amplitude: within the range of f_lambda lambda^4 over the tabulated last 10%
    tab = (el.wave > 0.9 * 25600) & (el.wave <= 25600)
    first = np.flatnonzero(el.wave > 25600)[0]
    flam4 = el.flux * el.wave**4
    assert flam4[tab].min() <= flam4[first] <= flam4[tab].max()


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
