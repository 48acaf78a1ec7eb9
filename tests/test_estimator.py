"""DeepDISC RAIL stages: forced/detect estimation, evaluators, ceci runs, bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import qp
import tables_io
import torch

from rail.deepdisc.store.scenes import SceneStore
from rail.estimation.algos.deepdisc import (
    DeepDiscEstimator,
    DeepDiscInformer,
    DeepDiscModelHandle,
)


def _estimate(model, store, tmp_path, **options):
    stage = DeepDiscEstimator.make_stage(
        name=f"est_{options.get('mode', 'forced')}_{len(list(tmp_path.iterdir()))}",
        model=model, output=str(tmp_path / "pz.hdf5"),
        detections=str(tmp_path / "det.hdf5"), num_threads=2, **options)
    stage.set_data("input", None, path=store, do_read=False)
    stage.run()
    stage.finalize()
    return qp.read(str(tmp_path / "pz.hdf5")), tables_io.read(str(tmp_path / "det.hdf5"))


def test_forced_mode_one_row_per_object_in_order(tiny_model, jades_store, tmp_path):
    ens, det = _estimate(tiny_model, jades_store, tmp_path, mode="forced", chunk_size=25)
    with SceneStore(jades_store) as store:
        obj = store.objects()
    n = len(obj["object_id"])
    assert ens.npdf == n and len(det["object_id"]) == n
    np.testing.assert_array_equal(np.ravel(ens.ancil["object_id"]), obj["object_id"])
    np.testing.assert_array_equal(det["object_id"], obj["object_id"])
    assert ens.gen_class is qp.mixmod
    zgrid = np.linspace(0, 15, 301)
    pdfs = ens.pdf(zgrid)
    assert np.all(np.isfinite(pdfs)) and np.all(pdfs >= 0)
    assert np.all(pdfs.max(axis=1) > 0)
    w, m = ens.objdata["weights"], ens.objdata["means"]
    np.testing.assert_allclose(np.ravel(ens.ancil["zmean"]), np.sum(w * m, axis=1), rtol=1e-5)
    np.testing.assert_allclose(np.ravel(ens.ancil["redshift"]), obj["redshift"])
    for col in ("zmode", "zmedian", "score", "ra", "dec", "scene", "flag_edge",
                "flag_low_score"):
        assert col in ens.ancil


def test_rail_evaluators_run_on_the_forced_output(tiny_model, jades_store, tmp_path):
    """DistToPoint and PointToPoint evaluators, reading the ensemble and the store's
    /objects table from their files, chunk by chunk, as a pipeline does."""
    from rail.evaluation.dist_to_point_evaluator import DistToPointEvaluator
    from rail.evaluation.point_to_point_evaluator import PointToPointEvaluator

    _estimate(tiny_model, jades_store, tmp_path, mode="forced")
    results = {}
    for cls, metrics, extra in (
        (DistToPointEvaluator, ["cdeloss", "pit"], {}),
        (PointToPointEvaluator, ["point_stats_iqr", "point_bias", "point_outlier_rate"],
         {"point_estimate_key": "zmode"}),
    ):
        name = cls.__name__
        stage = cls.make_stage(
            name=f"eval_{name}", metrics=metrics, hdf5_groupname="objects", chunk_size=40,
            output=str(tmp_path / f"{name}.hdf5"),
            summary=str(tmp_path / f"{name}_summary.hdf5"),
            single_distribution_summary=str(tmp_path / f"{name}_single.hdf5"), **extra)
        stage.set_data("input", None, path=str(tmp_path / "pz.hdf5"), do_read=False)
        stage.set_data("truth", None, path=jades_store, do_read=False)
        stage.run()
        stage.finalize()
        results[name] = tables_io.read(str(tmp_path / f"{name}_summary.hdf5"))
    assert np.isfinite(np.ravel(results["DistToPointEvaluator"]["cdeloss"])[0])
    p2p = results["PointToPointEvaluator"]
    assert 0 < np.ravel(p2p["point_stats_iqr"])[0] < 1
    assert 0 <= np.ravel(p2p["point_outlier_rate"])[0] <= 1


def test_detect_mode(tiny_model, jades_store, tmp_path):
    ens, det = _estimate(tiny_model, jades_store, tmp_path, mode="detect",
                         score_threshold=0.01)
    n = len(det["score"])
    assert ens.npdf == n > 0
    for col in ("scene", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "score", "mask_area",
                "x", "y", "ra", "dec", "object_id", "separation"):
        assert len(det[col]) == n, col
    assert np.all(det["score"] >= 0.01)
    matched = det["object_id"] >= 0
    with SceneStore(jades_store) as store:
        obj = store.objects()
    assert set(det["object_id"][matched]) <= set(obj["object_id"])
    assert np.all(np.isfinite(det["separation"][matched]))
    assert np.all(np.isnan(np.ravel(ens.ancil["redshift"])[~matched]))
    # one detection per object at most
    assert np.unique(det["object_id"][matched]).size == matched.sum()
    # sky positions follow the scene WCS: within the field
    assert np.all(np.abs(det["dec"] - obj["dec"].mean()) < 0.1)


def test_other_bands_fail_at_once_naming_both(tiny_model, lsst_store, tmp_path):
    with pytest.raises(ValueError) as err:
        _estimate(tiny_model, lsst_store, tmp_path)
    assert "lsst_u" in str(err.value) and "jwst_f090w" in str(err.value)
    assert not (tmp_path / "pz.hdf5").exists()


def test_model_handle_loads_weights_only(tiny_model):
    obj = DeepDiscModelHandle("model", path=tiny_model).read()
    assert obj["format"] == "deepdisc-model"
    assert isinstance(torch.load(tiny_model, weights_only=True)["state_dict"], dict)


def test_bad_mode_is_named(tiny_model, jades_store, tmp_path):
    with pytest.raises(ValueError, match="mode"):
        _estimate(tiny_model, jades_store, tmp_path, mode="guess")


def _ceci(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ceci", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900)


def test_stages_run_the_ceci_way(tiny_train_store, tmp_path):
    res = _ceci("rail.estimation.algos.deepdisc.DeepDiscInformer",
                f"--input={tiny_train_store}", "--model=model.pt", "--epochs=1",
                "--backbone=resnet18_fpn", "--num_threads=2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert torch.load(tmp_path / "model.pt", weights_only=True)["format"] == "deepdisc-model"
    res = _ceci("rail.estimation.algos.deepdisc.DeepDiscEstimator",
                f"--input={tiny_train_store}", "--model=model.pt", "--output=pz.hdf5",
                "--mode=forced", "--num_threads=2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    ens = qp.read(str(tmp_path / "pz.hdf5"))
    with SceneStore(tiny_train_store) as store:
        assert ens.npdf == store.n_objects
    assert (tmp_path / "detections.hdf5").exists()


def test_informer_interactive(tiny_train_store, tmp_path):
    stage = DeepDiscInformer.make_stage(name="inform_tiny", epochs=1, backbone="resnet18_fpn",
                                        num_threads=2, model=str(tmp_path / "m.pt"))
    handle = stage.inform(tiny_train_store)
    assert handle.data["format"] == "deepdisc-model"
    assert (tmp_path / "m.pt").exists()
