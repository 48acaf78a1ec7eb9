"""Template fitting as a JWST team runs it: EAZY's own templates found where they are
installed, zero points and prior learned from labelled objects, out-of-fold fits whose
zero points and prior never saw the held-out labels, the batched NNLS that makes it fast."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import nnls

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.fit.eazy_crossval import cross_validate
from rail.deepdisc.fit.eazy_data import EAZY_DIR_ENV, resolve_template_set
from rail.deepdisc.fit.eazy_model import build_model
from rail.deepdisc.fit.eazy_training import LabelTraining, train_on_labels
from rail.deepdisc.fit.eazy_zeropoints import fit_zeropoints
from rail.deepdisc.fit.eazyfit import template_fits
from rail.deepdisc.fit.nnls import nnls_batch
from rail.deepdisc.folds import fold_of_ids
from rail.deepdisc.spectra.bands import NIRCAM_BANDS

pytest.importorskip("eazy", reason="needs the eazy or fitters extra (eazy-py)")

EAZY_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "eazy-photoz"


def test_nnls_batch_equals_scipy():
    rng = np.random.default_rng(1)
    n, m, t = 400, 9, 12
    a = rng.random((m, t))[None] * (1 + 0.3 * rng.random((n, m, t)))
    truth = np.where(rng.random((n, t)) < 0.3, rng.random((n, t)), 0.0)
    b = np.einsum("nmi,ni->nm", a, truth) + 0.05 * rng.standard_normal((n, m))
    x, r2 = nnls_batch(a, b)
    ref = [nnls(a[i], b[i]) for i in range(n)]
    np.testing.assert_allclose(x, np.array([q[0] for q in ref]), atol=1e-9)
    np.testing.assert_allclose(r2, np.array([q[1] ** 2 for q in ref]), rtol=1e-9, atol=1e-12)
    assert (x >= 0).all()


def test_template_fits_equal_eazy_template_lsq():
    from rail.deepdisc.fit.eazy_templates import import_eazy

    eazy = import_eazy()
    rng = np.random.default_rng(2)
    temp = rng.random((12, 9)) + 0.1
    f = rng.random((50, 9)) * 10
    e = 0.5 + rng.random((50, 9))
    e[3, 4] = -99.0  # a band without data
    tef = 0.05 * rng.random(9)
    chi2, _, fmodel = template_fits(temp, f, e, tef)
    for i in range(50):
        c2, _, fm, _ = eazy.photoz.template_lsq(np.where(e[i] > 0, f[i], 0.0), e[i], temp,
                                                tef, np.ones(9), False, "nnls", True, 1)
        assert chi2[i] == pytest.approx(c2, rel=1e-6)
        np.testing.assert_allclose(fmodel[i][e[i] > 0], fm[e[i] > 0], rtol=1e-6, atol=1e-9)


def test_template_set_found_where_eazy_keeps_it(monkeypatch, tmp_path):
    monkeypatch.setenv(EAZY_DIR_ENV, str(EAZY_ROOT))
    choice = resolve_template_set("auto")
    assert choice.name == "fsps"
    assert choice.templates.endswith("tweak_fsps_QSF_12_v3.param")
    assert choice.template_error_file.endswith("TEMPLATE_ERROR.eazy_v1.0")
    assert "fsps QSF 12 v3" in choice.description
    # an explicit folder wins; one without templates is refused, not silently replaced
    assert resolve_template_set("fsps", eazy_photoz_dir=str(EAZY_ROOT)).name == "fsps"
    with pytest.raises(OptionError, match="eazy_photoz_dir"):
        resolve_template_set("auto", eazy_photoz_dir=str(tmp_path))
    # nowhere to be found: 'auto' falls back (and says so), 'fsps' says how to get it; here
    # without the sps extra (with it, the fallback is 'sps': tests/test_sps_templates.py)
    monkeypatch.delenv(EAZY_DIR_ENV)
    monkeypatch.setattr("rail.deepdisc.fit.eazy_data.eazy_package_data", lambda: tmp_path)
    monkeypatch.setattr("rail.deepdisc.fit.eazy_data.bagpipes_available", lambda: False)
    fallback = resolve_template_set("auto")
    assert fallback.name == "cww" and fallback.template_error_file == ""
    assert "CWW" in fallback.description
    with pytest.raises(OptionError, match="fetch_eazy_photoz"):
        resolve_template_set("fsps")


def test_folds_depend_on_ids_only():
    ids = np.arange(100, 700)
    fold = fold_of_ids(ids, 3, seed=4)
    assert set(fold) == {0, 1, 2}
    assert all(abs(np.sum(fold == f) - 200) < 45 for f in range(3))
    shuffled = np.random.default_rng(0).permutation(ids.size)
    np.testing.assert_array_equal(fold_of_ids(ids[shuffled], 3, seed=4), fold[shuffled])
    np.testing.assert_array_equal(fold_of_ids(ids[:50], 3, seed=4), fold[:50])
    assert not np.array_equal(fold_of_ids(ids, 3, seed=5), fold)
    with pytest.raises(InputError, match="at least"):
        fold_of_ids(ids[:2], 3, seed=4)


@pytest.fixture(scope="module")
def nircam_model():
    tef = str(EAZY_ROOT / "templates" / "TEMPLATE_ERROR.eazy_v1.0")
    return build_model(NIRCAM_BANDS, str(EAZY_ROOT / "templates" / "fsps_full" /
                                         "tweak_fsps_QSF_12_v3.param"),
                       zmax=8.0, zstep=0.02, template_error_file=tef)


def _mock_photometry(model, n: int, seed: int, offsets: np.ndarray):
    """Objects made of the model's own templates at known redshifts, with per-band
    calibration offsets and 2% noise."""
    rng = np.random.default_rng(seed)
    iz = rng.integers(5, model.zgrid.size - 5, n)
    coeffs = rng.random((n, model.tempfilt.shape[1])) ** 4
    truth = np.einsum("nt,ntf->nf", coeffs, model.tempfilt[iz])
    truth *= 100.0 / truth[:, 3:4]
    err = 0.02 * truth + 0.05
    flux = (truth + err * rng.standard_normal(truth.shape)) * offsets
    return flux, err * offsets, model.zgrid[iz]


def test_zeropoints_recover_calibration_offsets(nircam_model):
    offsets = np.ones(len(NIRCAM_BANDS))
    offsets[[1, 6]] = [1.08, 0.93]
    flux, err, z = _mock_photometry(nircam_model, 300, 3, offsets)
    zp = fit_zeropoints(nircam_model, flux, err, z, reference=3, iterations=4)
    assert zp.zeropoints[3] == 1.0 and zp.n_objects == 300
    # each band's own offset is removed; what remains is smooth across the bands (a tilt
    # the templates can take up at fixed redshift, as in EAZY: it moves no redshift)
    left = zp.zeropoints * offsets
    bump = left[1:-1] / np.sqrt(left[:-2] * left[2:])
    assert np.abs(bump - 1).max() < 0.01, left
    assert np.abs(left - 1).max() < 0.04, left


def test_no_fold_saw_its_own_labels(nircam_model):
    offsets = np.ones(len(NIRCAM_BANDS))
    offsets[2] = 1.06
    flux, err, z = _mock_photometry(nircam_model, 240, 5, offsets)
    mag = 31.4 - 2.5 * np.log10(flux[:, 3])
    fold = fold_of_ids(np.arange(1, 241), 3, seed=0)
    settings = LabelTraining(reference=3)
    cv = cross_validate(nircam_model, flux, err, z, mag, fold, settings)
    np.testing.assert_array_equal(cv.rows, np.arange(240))
    for f in range(3):
        # the fold's own labels replaced by nonsense: its fits must not change at all
        scrambled = np.where(fold == f, np.random.default_rng(f).uniform(0, 8, z.size), z)
        other = cross_validate(nircam_model, flux, err, scrambled, mag, fold, settings)
        rows = fold == f
        np.testing.assert_array_equal(other.result.lnp[rows], cv.result.lnp[rows])
        assert other.folds[f]["zeropoints"] == cv.folds[f]["zeropoints"]
        # while the other folds, trained on the scrambled labels, do change
        assert not np.array_equal(other.result.lnp[~rows], cv.result.lnp[~rows])
    # and a model trained on every label is not the fold models
    full = train_on_labels(nircam_model, flux, err, z, mag, settings)
    assert cv.folds[0]["zeropoints"] != np.round(full.zeropoints, 6).tolist()
    good = np.abs(cv.result.zmode - z) / (1 + z) < 0.15
    assert good.mean() > 0.9


def test_eazy_stages_use_found_templates_and_zeropoints(jades_kron, tmp_path, monkeypatch):
    from rail.estimation.algos.eazy import EazyCrossValidator, EazyInformer

    monkeypatch.setenv(EAZY_DIR_ENV, str(EAZY_ROOT))
    bands = list(NIRCAM_BANDS)
    cols = {"bands": [f"flux_{b}" for b in bands],
            "err_bands": [f"flux_err_{b}" for b in bands], "hdf5_groupname": "",
            "input_type": "flux", "prior_band": "flux_jwst_f200w"}
    inf = EazyInformer.make_stage(name="zp_inform", model=str(tmp_path / "m.hdf5"),
                                  filter_list=bands, zmax=12.0, **cols)
    model = inf.inform(jades_kron).data
    assert model.meta["template_set"] == "fsps"
    assert model.meta["label_training"]["n_labels"] == np.isfinite(jades_kron["redshift"]).sum()
    assert model.zeropoints.shape == (9,) and model.zeropoints[3] == 1.0
    assert not np.allclose(model.zeropoints, 1.0)
    cv = EazyCrossValidator.make_stage(name="zp_cv", output=str(tmp_path / "cv.hdf5"),
                                       id_col="object_id", redshift_col="redshift",
                                       ancil_columns=["ra", "dec"], folds=3, seed=0, **cols)
    ens = cv.cross_validate(model, jades_kron).data
    ancil = ens.ancil
    labelled = np.isfinite(jades_kron["redshift"])
    assert ens.npdf == labelled.sum()
    np.testing.assert_array_equal(ancil["object_id"], jades_kron["object_id"][labelled])
    np.testing.assert_array_equal(ancil["fold"], fold_of_ids(ancil["object_id"], 3, 0))
    np.testing.assert_allclose(ancil["ra"], jades_kron["ra"][labelled])
    assert os.path.exists(tmp_path / "cv.hdf5")
