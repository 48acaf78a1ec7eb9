"""The field report's comparison of the headline method with every other: paired bootstrap
intervals of the σ_IQR ratio and of the outlier-rate difference."""

from __future__ import annotations

import numpy as np
import pytest

from rail.deepdisc.evaluate.field_report import comparison_lines, headline_comparison
from rail.deepdisc.evaluate.metrics import point_metrics
from rail.deepdisc.evaluate.report import MethodResult


def _method(name, z, width, seed, outliers=0.0):
    rng = np.random.default_rng(seed)
    zp = z + width * (1 + z) * rng.normal(size=z.size)
    wrong = rng.random(z.size) < outliers
    zp[wrong] = z[wrong] + 1.0
    return MethodResult(name, None, z_phot=zp)


def test_ratio_and_intervals_tell_a_real_gain_from_noise():
    z = np.random.default_rng(0).uniform(0.3, 5.0, 1500)
    sharp = _method("hybrid", z, 0.03, 1, outliers=0.05)
    broad = _method("EAZY", z, 0.05, 2, outliers=0.15)
    twin = _method("twin", z, 0.03, 3, outliers=0.05)
    bright = np.ones(z.size, bool)
    bright[:100] = False
    out = headline_comparison([sharp, broad, twin], z, bright, "hybrid")
    assert set(out) == {"EAZY", "twin"} and out["EAZY"]["n"] == 1400
    e = out["EAZY"]
    direct = [point_metrics(m.point()[bright], z[bright])["sigma_iqr"] for m in (sharp, broad)]
    assert e["sigma_iqr_ratio"] == pytest.approx(direct[0] / direct[1], rel=1e-9)
    assert e["sigma_iqr_ratio_16"] < e["sigma_iqr_ratio"] < e["sigma_iqr_ratio_84"] < 0.75
    assert e["outlier_rate_difference"] == pytest.approx(-0.10, abs=0.03)
    assert e["outlier_rate_difference_84"] < 0
    t = out["twin"]  # the same quality: a ratio near 1, clear of EAZY's interval
    assert abs(t["sigma_iqr_ratio"] - 1.0) < 0.1
    assert t["sigma_iqr_ratio_16"] > e["sigma_iqr_ratio_84"]
    # a method without a photo-z for some objects is compared on the objects both have
    partial = MethodResult("partial", None, z_phot=np.where(np.arange(z.size) % 2 == 0,
                                                              broad.point(), np.nan))
    assert headline_comparison([sharp, partial], z, bright, "hybrid")["partial"]["n"] == 700
    lines = comparison_lines(out, "hybrid", "objects")
    assert any(line.startswith("| EAZY | ") for line in lines)
    assert headline_comparison([sharp, broad], z, bright, "nobody") == {}
