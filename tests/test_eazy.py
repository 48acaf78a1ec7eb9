"""EAZY stages and library: fidelity to eazy-py, accuracy, model files, bad input."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from rail.deepdisc.evaluate.metrics import point_metrics
from rail.deepdisc.fit.eazy_model import (
    EazyModel,
    _filter_definition,
    build_model,
    interp_conserve,
    template_grid,
)
from rail.deepdisc.fit.eazy_templates import import_eazy, load_templates
from rail.deepdisc.fit.eazyfit import fit
from rail.deepdisc.fit.photometry_table import FLAG_EDGE
from rail.deepdisc.spectra.bands import NIRCAM_BANDS
from rail.deepdisc.spectra.filters import resolve_filters
from rail.deepdisc.store.scenes import read_objects
from rail.estimation.algos.eazy import EazyEstimator, EazyInformer, EazyModelHandle

pytest.importorskip("eazy", reason="needs the eazy or fitters extra (eazy-py)")

FLUX = [f"flux_{b}" for b in NIRCAM_BANDS]
FLUX_ERR = [f"flux_err_{b}" for b in NIRCAM_BANDS]
JWST = {"bands": FLUX, "err_bands": FLUX_ERR, "filter_list": list(NIRCAM_BANDS),
        "hdf5_groupname": ""}


@pytest.fixture(scope="module")
def fsps_model(fsps_param) -> EazyModel:
    tef = os.path.join(os.path.dirname(os.path.dirname(fsps_param)), "TEMPLATE_ERROR.eazy_v1.0")
    return build_model(NIRCAM_BANDS, fsps_param, zmin=0.0, zmax=12.0, zstep=0.01,
                       template_error_file=tef, template_error_amplitude=0.2)


def test_resampling_and_template_grid_match_eazy(fsps_param):
    eazy = import_eazy()
    x = np.linspace(1000, 9000, 80)
    xp = np.linspace(500, 12000, 700)
    fp = 1 + np.sin(xp / 300.0) ** 2
    np.testing.assert_allclose(interp_conserve(x, xp, fp),
                               eazy.utils.interp_conserve(x, xp, fp), rtol=1e-12)
    templates = load_templates(fsps_param).templates[:3]
    fdefs = [_filter_definition(eazy, c.resampled()) for c in resolve_filters(NIRCAM_BANDS)]
    z = np.array([0.1, 1.7, 4.2, 8.9])
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        ref = eazy.photoz.TemplateGrid(z, templates, filters=fdefs, add_igm=True, n_proc=-1,
                                       verbose=2).tempfilt
    np.testing.assert_allclose(template_grid(templates, z, fdefs), ref, rtol=1e-5,
                               atol=1e-6 * np.abs(ref).max())


def test_fit_matches_eazy_photoz(fsps_model, jades_field, jades_kron, tmp_path):
    """Chunked fits give eazy-py's own PhotoZ log-likelihood, object by object."""
    eazy = import_eazy()
    from astropy.table import Table

    rows = np.arange(25)
    fnu = np.stack([jades_kron[c][rows] for c in FLUX], axis=1)
    efnu = np.stack([jades_kron[c][rows] for c in FLUX_ERR], axis=1)
    ok = np.isfinite(fnu) & np.isfinite(efnu)
    res = fit(fsps_model, fnu, efnu, sys_err=0.01)
    cat = Table({"id": np.arange(1, rows.size + 1)})
    for j in range(len(FLUX)):
        cat[f"F{j + 1}"] = np.where(ok[:, j], fnu[:, j], -99.0)
        cat[f"E{j + 1}"] = np.where(ok[:, j], efnu[:, j], -99.0)
    res_file = tmp_path / "FILTER.RES"
    res_file.write_text(fsps_model.filters_res)
    param = tmp_path / "templates.param"
    param.write_text("".join(f"{i + 1} {t['source']} 1.0\n"
                             for i, t in enumerate(fsps_model.meta["templates"])))
    params = {"CATALOG_FILE": cat, "FILTERS_RES": str(res_file), "TEMPLATES_FILE": str(param),
              "TEMP_ERR_FILE": fsps_model.meta["template_error_file"], "TEMP_ERR_A2": 0.2,
              "SYS_ERR": 0.01, "Z_MIN": 0.0, "Z_MAX": 12.0, "Z_STEP": 0.01, "VERBOSITY": 0,
              "PRIOR_FILE": "none", "MW_EBV": 0.0, "N_MIN_COLORS": 1}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        grid = eazy.photoz.TemplateGrid(fsps_model.zgrid, load_templates(
            str(param)).templates, filters=[_filter_definition(eazy, c.resampled())
                                            for c in resolve_filters(NIRCAM_BANDS)],
            tempfilt_data=fsps_model.tempfilt.copy(), verbose=0)
        translate = Table({"column": ["id"], "trans": ["id"]})
        pz = eazy.photoz.PhotoZ(params=params, translate_file=translate, load_prior=False,
                                tempfilt=grid, n_proc=0)
        pz.fit_catalog(n_proc=0, prior=False, get_best_fit=False, verbose=False)
    np.testing.assert_allclose(pz.zgrid, fsps_model.zgrid, rtol=1e-6)
    # the same log p(z) wherever it is not negligible; eazy-py computes in float32, so
    # chi-square values of ~1e4 agree to ~1e-2 (and the 1100 A clip may fall one grid
    # point apart at the float32-rounded edge)
    good = (res.lnp > -30) & (pz.lnp > -1e19)
    assert good.sum() > 0.5 * (res.lnp > -30).sum()
    np.testing.assert_allclose(res.lnp[good], pz.lnp[good], atol=2e-2)
    same = np.argmax(res.lnp, axis=1) == np.argmax(pz.lnp, axis=1)
    assert same.mean() >= 0.9


def test_eazy_fsps_on_bright_jades_objects(fsps_model, jades_field, jades_kron, tmp_path):
    obj = read_objects(jades_field)
    rows = np.flatnonzero((obj["snr_jwst_f200w"] > 50) & ((jades_kron["flags"] & FLAG_EDGE) == 0))
    data = {k: v[rows] for k, v in jades_kron.items()}
    est = EazyEstimator.make_stage(name="eazy_fsps", model=fsps_model, input_type="flux",
                                   output=str(tmp_path / "eazy.hdf5"), **{
                                       k: v for k, v in JWST.items() if k != "filter_list"})
    ens = est.estimate(data).data
    zmode = np.squeeze(ens.ancil["zmode"])
    m = point_metrics(zmode, obj["redshift"][rows])
    assert m["sigma_iqr"] < 0.05, m
    np.testing.assert_array_equal(np.squeeze(ens.ancil["id"]), obj["object_id"][rows])
    for key in ("zmean", "zmedian", "zbest"):
        assert np.all(np.isfinite(ens.ancil[key]))


def test_model_file_is_plain_hdf5_and_round_trips(fsps_model, tmp_path):
    path = tmp_path / "model.hdf5"
    EazyModelHandle("model", data=fsps_model, path=str(path)).write()
    with h5py.File(path, "r") as f:
        assert all(f[k].dtype.kind in "fiu" for k in f)  # arrays only, nothing pickled
        assert "jwst_f444w" in f.attrs["filters_res"]
    back = EazyModelHandle("model", path=str(path)).read()
    np.testing.assert_array_equal(back.tempfilt, fsps_model.tempfilt)
    assert back.meta["templates"] == fsps_model.meta["templates"]
    with pytest.raises(ValueError, match="not a deepdisc-eazy-model"):
        EazyModel.load(_not_a_model(tmp_path))


def _not_a_model(tmp_path) -> str:
    path = tmp_path / "other.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "something"
    return str(path)


def test_defaults_read_rails_dc2_files(tmp_path):
    """No options: RAIL's DC2 test files, DC2LSST filters, CWW+SB4 from pz-rail-base."""
    import tables_io
    from rail.utils.path_utils import find_rail_file

    train = tables_io.read(find_rail_file("examples_data/testdata/test_dc2_training_9816.hdf5"))
    test = tables_io.read(find_rail_file(
        "examples_data/testdata/test_dc2_validation_9816.hdf5"))["photometry"]
    rows = np.random.default_rng(5).choice(test["redshift"].size, 300, replace=False)
    sub = {"photometry": {k: v[rows] for k, v in test.items()}}
    inf = EazyInformer.make_stage(name="eazy_dc2_inform", model=str(tmp_path / "m.hdf5"))
    model = inf.inform(train)
    assert model.data.nfilt == 6 and model.data.zgrid.max() < 3.0
    assert model.data.has_prior and model.data.meta["prior_band"] == "mag_i_lsst"
    est = EazyEstimator.make_stage(name="eazy_dc2_estimate", model=model,
                                   output=str(tmp_path / "pz.hdf5"))
    ens = est.estimate(sub).data
    m = point_metrics(np.squeeze(ens.ancil["zmode"]), sub["photometry"]["redshift"])
    assert ens.npdf == 300 and m["sigma_iqr"] < 0.08 and m["outlier_rate"] < 0.2, m


def test_bad_input_fails_before_fitting(fsps_model, jades_kron, tmp_path):
    data = {k: v[:5] for k, v in jades_kron.items()}
    # missing band columns
    est = EazyEstimator.make_stage(name="eazy_missing", model=fsps_model, input_type="flux",
                                   output=str(tmp_path / "x.hdf5"), hdf5_groupname="",
                                   bands=[*FLUX[:-1], "flux_nope"], err_bands=FLUX_ERR)
    with pytest.raises(ValueError, match="flux_nope"):
        est.estimate(data)
    # wrong number of bands for the model
    est = EazyEstimator.make_stage(name="eazy_count", model=fsps_model, input_type="flux",
                                   hdf5_groupname="", bands=FLUX[:3], err_bands=FLUX_ERR[:3])
    with pytest.raises(ValueError, match="9 filters"):
        est.estimate(data)
    assert not (tmp_path / "x.hdf5").exists()
    # a band without a filter curve
    with pytest.raises(ValueError, match="jwst_f999w"):
        build_model(["jwst_f200w", "jwst_f999w"], "cww")
    # unreadable template files
    bad = tmp_path / "bad.param"
    bad.write_text("1 templates/none_such.dat 1.0\n")
    with pytest.raises(ValueError, match=r"none_such\.dat"):
        build_model(["jwst_f200w"], str(bad))
    garbage = tmp_path / "garbage.dat"
    garbage.write_text("not a spectrum\n")
    bad.write_text(f"1 {garbage} 1.0\n")
    with pytest.raises(ValueError, match=r"garbage\.dat"):
        build_model(["jwst_f200w"], str(bad))
    with pytest.raises(ValueError, match=r"missing\.param"):
        build_model(["jwst_f200w"], str(tmp_path / "missing.param"))
    with pytest.raises(ValueError, match="template error file"):
        build_model(["jwst_f200w"], "cww", template_error_file=str(tmp_path / "no.def"))


def test_informer_checks_columns(jades_kron, tmp_path):
    inf = EazyInformer.make_stage(name="eazy_cols", model=str(tmp_path / "m.hdf5"),
                                  **{**JWST, "bands": [*FLUX[:-1], "flux_missing"]})
    with pytest.raises(ValueError, match="flux_missing"):
        inf.inform({k: v[:5] for k, v in jades_kron.items()})


def test_importing_the_package_does_not_import_eazy():
    code = "import sys, rail.deepdisc; print(any(m == 'eazy' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_eazy_writes_nothing_into_installed_packages(fsps_param, jades_kron, tmp_path):
    eazy = import_eazy()
    from rail.utils.path_utils import RAILDIR

    roots = [os.path.dirname(eazy.__file__), os.path.join(RAILDIR, "rail")]

    def listing() -> dict[str, int]:
        return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
                for root in roots for d, _, files in os.walk(root) if "__pycache__" not in d
                for f in files}

    before = listing()
    data = {k: v[:20] for k, v in jades_kron.items()}
    model = EazyInformer.make_stage(name="eazy_clean_inform", model=str(tmp_path / "m.hdf5"),
                                    templates_file=fsps_param, zmax=12.0, input_type="flux",
                                    training_prior=False, **JWST).inform(data)
    est = EazyEstimator.make_stage(name="eazy_clean", model=model, input_type="flux",
                                   output=str(tmp_path / "eazy.hdf5"),
                                   **{k: v for k, v in JWST.items() if k != "filter_list"})
    assert est.estimate(data).data.npdf == 20
    assert listing() == before
