"""Scenes -> ScenePhotometry -> BPZ and EAZY -> RAIL evaluators, rows lined up throughout."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import qp
from rail.evaluation.dist_to_point_evaluator import DistToPointEvaluator
from rail.evaluation.point_to_point_evaluator import PointToPointEvaluator

from rail.deepdisc.evaluate.metrics import point_metrics
from rail.deepdisc.fit.bpz import bpz_stage_configs, prepare_bpz_data
from rail.deepdisc.fit.photometry_table import mag_limits
from rail.deepdisc.spectra.bands import NIRCAM_BANDS
from rail.deepdisc.store.scenes import read_objects
from rail.estimation.algos.eazy import EazyEstimator, EazyInformer
from rail.tools.scene_tools import ScenePhotometry

bpz_lite = pytest.importorskip("rail.estimation.algos.bpz_lite",
                               reason="needs the fitters extra (pz-rail-bpz)")
pytest.importorskip("eazy", reason="needs the fitters extra (eazy-py)")

FLUX = [f"flux_{b}" for b in NIRCAM_BANDS]
FLUX_ERR = [f"flux_err_{b}" for b in NIRCAM_BANDS]
EAZY_JWST = {"bands": FLUX, "err_bands": FLUX_ERR, "hdf5_groupname": "", "input_type": "flux"}


def _installed_files() -> dict[str, int]:
    import desc_bpz
    import eazy
    from rail.utils.path_utils import RAILDIR

    out = {}
    for root in (os.path.dirname(eazy.__file__), os.path.dirname(desc_bpz.__file__),
                 os.path.join(RAILDIR, "rail")):
        for d, _, files in os.walk(root):
            if "__pycache__" not in d:
                for f in files:
                    out[os.path.join(d, f)] = os.stat(os.path.join(d, f)).st_mtime_ns
    return out


def test_ensembles_line_up_with_the_scenes_and_evaluate(jades_store, tmp_path):
    before = _installed_files()
    objects = read_objects(jades_store)
    phot = ScenePhotometry.make_stage(name="tp_phot", output=str(tmp_path / "phot.hdf5"))
    table = phot.measure(jades_store).data
    n = objects["object_id"].size

    setup = prepare_bpz_data(tmp_path / "bpz", "cww", NIRCAM_BANDS, madau=True, n_workers=2)
    mags = [f"mag_{b}" for b in NIRCAM_BANDS]
    inform, estimate = bpz_stage_configs(setup, mags, [f"mag_err_{b}" for b in NIRCAM_BANDS],
                                         mag_limits(table, NIRCAM_BANDS, 31.4),
                                         "mag_jwst_f200w", zmax=12.0, chunk_size=25)
    bpz_inf = bpz_lite.BPZliteInformer.make_stage(name="tp_bpz_inf",
                                                  model=str(tmp_path / "bpz.pkl"), **inform)
    bpz_inf.inform({k: v.copy() for k, v in table.items()})
    bpz = bpz_lite.BPZliteEstimator.make_stage(name="tp_bpz", model=bpz_inf.get_handle("model"),
                                               output=str(tmp_path / "bpz.hdf5"), **estimate)
    bpz_ens = bpz.estimate({k: v.copy() for k, v in table.items()}).data

    eazy_inf = EazyInformer.make_stage(name="tp_eazy_inf", model=str(tmp_path / "eazy.hdf5"),
                                       filter_list=list(NIRCAM_BANDS), zmax=12.0,
                                       prior_band="flux_jwst_f200w", **EAZY_JWST)
    model = eazy_inf.inform(table)
    eazy = EazyEstimator.make_stage(name="tp_eazy", model=model, chunk_size=25,
                                    output=str(tmp_path / "eazy_pz.hdf5"), **EAZY_JWST)
    eazy_ens = eazy.estimate(table).data

    for ens in (bpz_ens, eazy_ens, qp.read(str(tmp_path / "eazy_pz.hdf5"))):
        assert ens.npdf == n
        np.testing.assert_array_equal(np.squeeze(ens.ancil["id"]), objects["object_id"])
        np.testing.assert_array_equal(np.squeeze(ens.ancil["redshift"]), objects["redshift"])
    truth = {"photometry": {"redshift": objects["redshift"]}}
    for name, ens in (("bpz", bpz_ens), ("eazy", eazy_ens)):
        p2p = PointToPointEvaluator.make_stage(
            name=f"tp_p2p_{name}", hdf5_groupname="photometry", output_mode="return",
            force_exact=True, metrics=["point_stats_iqr", "point_bias", "point_outlier_rate"])
        summary = p2p.evaluate(ens, truth)["summary"].data
        ours = point_metrics(np.squeeze(ens.ancil["zmode"]), objects["redshift"])
        assert summary["point_stats_iqr"][0] == pytest.approx(ours["sigma_iqr"])
        assert summary["point_bias"][0] == pytest.approx(ours["bias"])
        assert summary["point_outlier_rate"][0] == pytest.approx(ours["outlier_rate_rail"])
        d2p = DistToPointEvaluator.make_stage(
            name=f"tp_d2p_{name}", hdf5_groupname="photometry", output_mode="return",
            force_exact=True, metrics=["cdeloss"], limits=[0.0, 12.0])
        assert np.isfinite(d2p.evaluate(ens, truth)["summary"].data["cdeloss"]).all()
    assert _installed_files() == before


def test_eazy_stages_run_the_ceci_way(jades_store, tmp_path):
    phot = ScenePhotometry.make_stage(name="ceci_phot", output=str(tmp_path / "phot.hdf5"))
    phot.measure(jades_store)
    common = [f"--bands={','.join(FLUX)}", f"--err_bands={','.join(FLUX_ERR)}",
              "--hdf5_groupname=", "--input_type=flux", "--prior_band=flux_jwst_f200w"]
    res = subprocess.run(
        [sys.executable, "-m", "ceci", "rail.estimation.algos.eazy.EazyInformer",
         "--input=phot.hdf5", "--model=model.hdf5", "--zmax=12.0",
         f"--filter_list={','.join(NIRCAM_BANDS)}", *common],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    res = subprocess.run(
        [sys.executable, "-m", "ceci", "rail.estimation.algos.eazy.EazyEstimator",
         "--input=phot.hdf5", "--model=model.hdf5", "--output=pz.hdf5", *common],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ens = qp.read(str(tmp_path / "pz.hdf5"))
    np.testing.assert_array_equal(np.squeeze(ens.ancil["id"]),
                                  read_objects(jades_store)["object_id"])
    bad = subprocess.run(
        [sys.executable, "-m", "ceci", "rail.estimation.algos.eazy.EazyEstimator",
         "--input=phot.hdf5", "--model=model.hdf5", "--output=bad.hdf5", *common[1:],
         f"--bands={','.join([*FLUX[:-1], 'flux_nope'])}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "flux_nope" in bad.stderr
    assert not (tmp_path / "bad.hdf5").exists()
