"""Issue 7 pieces: width calibration, feature density, quality flags, spectroscopic labels."""

from __future__ import annotations

import numpy as np
import pytest
import qp
import torch

from rail.deepdisc.net.density import FeatureDensity
from rail.deepdisc.net.model_file import read_model_file
from rail.deepdisc.net.quality import overlap_fraction, quality_flags
from rail.deepdisc.sim.labels import SpecSelection, relabel_store, spectroscopic_subset
from rail.deepdisc.store.scenes import SceneStore, read_objects


def test_density_flags_what_training_never_saw():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(3000, 4))
    dens = FeatureDensity.fit(train, k=10)
    inside = dens.score(rng.normal(size=(2000, 4)))
    outside = dens.score(rng.normal(size=(200, 4)) + 6.0)
    assert np.mean(inside > 1) == pytest.approx(0.01, abs=0.01)
    assert np.all(outside > 1)
    again = FeatureDensity.from_state(dens.to_state())
    np.testing.assert_allclose(again.score(train[:50]), dens.score(train[:50]), rtol=1e-5)
    assert np.isinf(dens.score(np.array([[np.nan, 0, 0, 0]])))[0]


def test_density_on_chosen_columns():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(2000, 5))
    dens = FeatureDensity.fit(train, columns=(1, 3))
    test = rng.normal(size=(300, 5))
    odd = test.copy()
    odd[:, [0, 2, 4]] += 8.0  # far away only in the columns the density ignores
    np.testing.assert_allclose(dens.score(odd), dens.score(test))
    odd[:, 3] += 8.0
    assert np.all(dens.score(odd) > 1)
    again = FeatureDensity.from_state(dens.to_state())
    assert again.columns == (1, 3)
    np.testing.assert_allclose(again.score(test), dens.score(test), rtol=1e-5)


def test_overlap_and_flags():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [40, 40, 50, 50], [0, 0, 10, 10.0]])
    scenes = np.array([0, 0, 0, 1])
    np.testing.assert_allclose(overlap_fraction(boxes, scenes), [0.5, 0.5, 0.0, 0.0])
    feats = np.zeros((4, 2 * 3 + 2))
    feats[:, 3 + 1] = np.arcsinh(np.array([20.0, 3.0, 50.0, 1.0]) / 2)  # core S/N, band 1
    scores = np.array([0.9, 0.2, 0.5, 0.7])
    flags = quality_flags(feats, boxes, scenes, scores, 60, 60, ref_band=1, n_bands=3,
                          density=None)
    np.testing.assert_allclose(flags["snr"], [20, 3, 50, 1], rtol=1e-6)
    assert flags["flag_low_snr"].tolist() == [0, 1, 0, 1]
    assert flags["flag_blend"].tolist() == [1, 1, 0, 0]
    assert flags["flag_edge"].tolist() == [1, 1, 0, 1]
    assert flags["flag_low_score"].tolist() == [0, 1, 0, 0]
    assert np.all(np.isnan(flags["ood_score"]))


def test_trained_model_carries_the_density(tiny_model):
    obj = read_model_file(tiny_model)
    assert "feature_density" in obj and obj["feature_density"]["bank"].ndim == 2
    assert "roi_heads.redshift_head.width_scale" in obj["state_dict"]
    torch.load(tiny_model, weights_only=True)  # still a safe file


def test_width_calibration_lowers_the_validation_nll(tiny_model, jades_store):
    from rail.deepdisc.net.calibrate import calibrate_widths
    from rail.deepdisc.net.data import SceneTrainingData
    from rail.deepdisc.net.model_file import build_from_state

    net = build_from_state(read_model_file(tiny_model))
    data = SceneTrainingData(jades_store, range(6))
    cal = calibrate_widths(net, data, 4, torch.device("cpu"))
    data.close()
    assert cal["n_objects"] > 40
    assert 0.3 <= cal["width_scale"] <= 3.0
    assert cal["nll_after"] < cal["nll_before"]
    assert float(net.roi_heads.redshift_head.width_scale) == pytest.approx(cal["width_scale"])


def test_forced_output_has_quality_columns(tiny_model, jades_store, tmp_path):
    from rail.estimation.algos.deepdisc import DeepDiscEstimator

    stage = DeepDiscEstimator.make_stage(name="flags", model=tiny_model, num_threads=2,
                                         output=str(tmp_path / "pz.hdf5"),
                                         detections=str(tmp_path / "det.hdf5"))
    stage.estimate(jades_store)
    ens = qp.read(str(tmp_path / "pz.hdf5"))
    for col in ("snr", "flag_low_snr", "ood_score", "flag_ood", "blend", "flag_blend",
                "flag_edge", "flag_low_score"):
        assert col in ens.ancil, col
    truth = read_objects(jades_store)
    snr = np.ravel(ens.ancil["snr"])
    # the pixel S/N of the box core follows the true aperture S/N
    assert np.corrcoef(np.log10(np.clip(snr, 1, None)),
                       np.log10(np.clip(truth["snr_jwst_f200w"], 1, None)))[0, 1] > 0.8
    assert np.all(np.isfinite(np.ravel(ens.ancil["ood_score"])))


def test_spectroscopic_subset_is_bright_and_incomplete(jades_store, tmp_path):
    obj = read_objects(jades_store)
    sel = SpecSelection(mag_50=27.0)
    keep = spectroscopic_subset(obj, sel, seed=1)
    assert 0.1 < keep.mean() < 0.9
    assert np.median(obj["mag_jwst_f200w"][keep]) < np.median(obj["mag_jwst_f200w"][~keep])
    np.testing.assert_array_equal(keep, spectroscopic_subset(obj, sel, seed=1))
    out = relabel_store(jades_store, tmp_path / "spec.hdf5", keep)
    with SceneStore(out) as store:
        new = store.objects(["redshift", "redshift_kind", "object_id"])
    np.testing.assert_array_equal(np.isfinite(new["redshift"]), keep)
    assert set(new["redshift_kind"][keep]) == {b"spec"}
    assert set(new["redshift_kind"][~keep]) == {b"none"}
    with pytest.raises(ValueError, match="keep has"):
        relabel_store(jades_store, tmp_path / "bad.hdf5", keep[:-1])
    assert not (tmp_path / "bad.hdf5").exists()
