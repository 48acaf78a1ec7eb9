"""Metric definitions, detection matching and the comparison report."""

from __future__ import annotations

import numpy as np
import pytest
import qp

from rail.deepdisc.evaluate.matching import box_iou, completeness_purity, greedy_match, match_scene
from rail.deepdisc.evaluate.metrics import brier_score, photoz_metrics, point_metrics
from rail.deepdisc.evaluate.report import MethodResult, write_report


def test_point_metrics_by_hand():
    z_true = np.array([1.0, 1.0, 1.0, 1.0, 2.0])
    z_phot = np.array([1.0, 1.2, 0.8, 1.02, 3.5])
    m = point_metrics(z_phot, z_true)
    delta = np.array([0.0, 0.1, -0.1, 0.01, 0.5])
    q25, q75 = np.percentile(delta, [25, 75])
    assert m["n"] == 5
    assert m["sigma_iqr"] == pytest.approx((q75 - q25) / 1.349)
    assert m["bias"] == pytest.approx(0.01)
    assert m["outlier_rate"] == pytest.approx(0.2)
    assert m["sigma_mad"] == pytest.approx(1.4826 * np.median(np.abs(delta - 0.01)))
    assert point_metrics(np.array([np.nan]), np.array([1.0]))["n"] == 0


def test_photoz_metrics_of_calibrated_gaussians():
    rng = np.random.default_rng(0)
    z_true = rng.uniform(0.2, 3.0, 3000)
    sigma = 0.05 * (1 + z_true)
    centre = z_true + rng.normal(0, 1, z_true.size) * sigma
    ens = qp.Ensemble(qp.stats.norm, data={"loc": centre[:, None], "scale": sigma[:, None]})
    m = photoz_metrics(ens, z_true, z_phot=centre)
    assert m["sigma_iqr"] == pytest.approx(0.05, rel=0.1)
    assert m["pit_ks"] < 0.05  # calibrated
    too_narrow = qp.Ensemble(qp.stats.norm, data={"loc": centre[:, None],
                                                  "scale": 0.3 * sigma[:, None]})
    assert photoz_metrics(too_narrow, z_true, z_phot=centre)["pit_ks"] > 0.15
    assert 0 <= m["brier"] <= 2 and np.isfinite(m["cde_loss"])


def test_brier_of_a_sharp_correct_pdf_is_small():
    z = np.array([0.505, 1.205])
    sharp = qp.Ensemble(qp.stats.norm, data={"loc": z[:, None], "scale": np.full((2, 1), 1e-4)})
    assert brier_score(sharp, z, 3.0) < 0.01
    wrong = qp.Ensemble(qp.stats.norm, data={"loc": z[:, None] + 1,
                                             "scale": np.full((2, 1), 1e-4)})
    assert brier_score(wrong, z, 3.0) == pytest.approx(2.0, abs=0.01)


def test_iou_and_greedy_matching():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    b = np.array([[0, 0, 10, 5], [100, 100, 101, 101]])
    iou = box_iou(a, b)
    assert iou[0, 0] == pytest.approx(0.5) and iou[1, 0] == 0 and iou[0, 1] == 0
    # two detections on one object: the higher score wins, one to one
    det = np.array([[0, 0, 10, 10], [1, 0, 10, 10]])
    obj = np.array([[0, 0, 10, 10]])
    match, best = match_scene(det, np.array([0.6, 0.9]), obj)
    assert match.tolist() == [-1, 0] and best[1] == pytest.approx(0.9)
    assert greedy_match(np.zeros((0, 3)), np.zeros(0), 0.5).size == 0


def test_completeness_and_purity():
    matched = np.array([0, 1, -1, 2, -1])
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.6])
    cp = completeness_purity(matched, scores, 4)
    assert cp["completeness"] == pytest.approx(2 / 4)  # object 2 only at score 0.3
    assert cp["purity"] == pytest.approx(2 / 4)
    sel = np.array([True, False, False, False])
    assert completeness_purity(matched, scores, 4, sel)["completeness"] == 1.0


def test_report_writes_table_and_figures(tmp_path):
    rng = np.random.default_rng(1)
    n = 400
    truth = {"redshift": rng.uniform(0.2, 4, n), "snr_jwst_f200w": rng.uniform(2, 60, n),
             "mag_jwst_f200w": rng.uniform(24, 30, n)}
    results = []
    for name, scatter in (("good", 0.03), ("bad", 0.2)):
        loc = truth["redshift"] + rng.normal(0, scatter, n) * (1 + truth["redshift"])
        ens = qp.Ensemble(qp.stats.norm, data={"loc": loc[:, None],
                                               "scale": scatter * (1 + loc[:, None])})
        ens.set_ancil({"zmode": loc})
        results.append(MethodResult(name, ens, seconds=1.5))
    from rail.deepdisc.evaluate.report import Detections

    det = Detections(object_row=np.array([0, 1, 2, -1]), score=np.array([0.9, 0.8, 0.7, 0.6]))
    out = write_report(tmp_path, results, truth, survey="jades", detections=det)
    text = (tmp_path / "report.md").read_text()
    assert "| good |" in text and "| bad |" in text and "σ_IQR" in text
    for key in ("zphot_vs_ztrue", "pit", "metrics_vs_magnitude", "metrics_vs_redshift", "nz",
                "detection"):
        assert open(out[key], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    import json

    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert metrics["bright"]["good"]["sigma_iqr"] < metrics["bright"]["bad"]["sigma_iqr"]
    assert "flags" not in metrics  # no method carries quality flags
    with pytest.raises(ValueError, match="row-aligned"):
        write_report(tmp_path / "x", [MethodResult("short", results[0].ensemble[np.arange(5)])],
                     truth, survey="jades")


def test_report_splits_metrics_by_quality_flag(tmp_path):
    rng = np.random.default_rng(2)
    n = 600
    z = rng.uniform(0.2, 4, n)
    truth = {"redshift": z, "snr_jwst_f200w": rng.uniform(2, 60, n),
             "mag_jwst_f200w": rng.uniform(24, 30, n)}
    ood = (np.arange(n) % 5 == 0).astype(np.int8)
    scatter = np.where(ood == 1, 0.2, 0.02)
    loc = z + rng.normal(0, 1, n) * scatter * (1 + z)
    ens = qp.Ensemble(qp.stats.norm, data={"loc": loc[:, None],
                                           "scale": (scatter * (1 + loc))[:, None]})
    ens.set_ancil({"zmode": loc, "flag_ood": ood, "flag_edge": np.zeros(n, np.int8)})
    plain = qp.Ensemble(qp.stats.norm, data={"loc": loc[:, None], "scale": 0.1 + 0 * loc[:, None]})
    plain.set_ancil({"zmode": loc})
    write_report(tmp_path, [MethodResult("deepdisc", ens), MethodResult("bpz", plain)], truth,
                 survey="jades")
    import json

    flags = json.loads((tmp_path / "metrics.json").read_text())["metrics"]["flags"]
    assert list(flags) == ["deepdisc"]  # only methods with flags
    m = flags["deepdisc"]
    assert m["flag_ood=0"]["n"] == n - ood.sum() and m["flag_ood=1"]["n"] == ood.sum()
    assert m["flag_ood=1"]["sigma_iqr"] > 5 * m["flag_ood=0"]["sigma_iqr"]
    assert m["flag_edge=1"]["n"] == 0
    text = (tmp_path / "report.md").read_text()
    assert "## By quality flag" in text and "| flag_ood=1 |" in text


def test_cde_loss_terms_average_to_the_cde_loss():
    """The per-object CDE-loss terms (for bootstrap resampling) average to qp's CDE loss."""
    import qp

    from rail.deepdisc.evaluate.metrics import cde_loss, cde_loss_terms

    rng = np.random.default_rng(4)
    n = 300
    means = rng.uniform(0.2, 4.0, (n, 2))
    ens = qp.Ensemble(qp.mixmod, data={"means": means, "stds": rng.uniform(0.05, 0.3, (n, 2)),
                                       "weights": np.full((n, 2), 0.5)})
    z = means[:, 0] + rng.normal(0, 0.1, n)
    grid = np.linspace(0.0, 6.0, 601)
    terms = cde_loss_terms(ens, z, grid)
    assert terms.shape == (n,)
    assert terms.mean() == pytest.approx(cde_loss(ens, z, grid), rel=1e-9)
