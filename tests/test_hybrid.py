"""The hybrid: image and template PDFs fused with exponents fitted out of fold.

Checked on ensembles made here with known truth: without its template input the hybrid is
the image estimator; two independent, calibrated measurements fuse into a sharper, still
calibrated one; no fold's exponents saw that fold's labels; rows are matched by id; the
RAIL stages run and keep the image ensemble's ancillary columns."""

from __future__ import annotations

import numpy as np
import pytest
import qp

from rail.deepdisc.errors import InputError
from rail.deepdisc.hybrid.ensembles import prepare
from rail.deepdisc.hybrid.fusion import cross_fit, fit_weights
from rail.deepdisc.hybrid.grid import redshift_grid, trapz_weights
from rail.deepdisc.net.predict import Mixtures
from rail.estimation.algos.hybrid import (
    HybridCrossValidator,
    HybridEstimator,
    HybridInformer,
)

N = 600


@pytest.fixture(scope="module")
def truth():
    rng = np.random.default_rng(7)
    return rng.uniform(0.2, 5.0, N)


def _image(z: np.ndarray, sigma: float, seed: int) -> qp.Ensemble:
    """A calibrated Gaussian-mixture 'image' estimate: mean scattered by its width."""
    rng = np.random.default_rng(seed)
    width = sigma * (1 + z)
    mean = z + width * rng.standard_normal(z.size)
    k = 3
    mix = Mixtures(np.full((z.size, k), 1.0 / k), mean[:, None] + np.zeros((1, k)),
                   width[:, None] * np.array([[0.9, 1.0, 1.1]]))
    ens = mix.ensemble()
    ens.set_ancil({"object_id": np.arange(1, z.size + 1), "redshift": z,
                   "snr": np.full(z.size, 50.0), "blend": np.zeros(z.size),
                   "ood_score": np.zeros(z.size), "zmode": mean, "flag_blend": np.zeros(z.size)})
    return ens


def _templates(z: np.ndarray, sigma: float, seed: int) -> qp.Ensemble:
    """A calibrated tabulated 'template' estimate on an EAZY-like grid."""
    rng = np.random.default_rng(seed)
    grid = redshift_grid(8.0, 0.01)
    width = sigma * (1 + z)
    mean = z + width * rng.standard_normal(z.size)
    pdf = np.exp(-0.5 * ((grid[None, :] - mean[:, None]) / width[:, None]) ** 2)
    ens = qp.Ensemble(qp.interp, data={"xvals": grid, "yvals": pdf})
    ens.set_ancil({"id": np.arange(1, z.size + 1), "chi2": np.full(z.size, 5.0),
                   "n_filters": np.full(z.size, 9)})
    return ens


def _sigma(pdf: np.ndarray, grid: np.ndarray, z: np.ndarray) -> float:
    d = (grid[np.argmax(pdf, axis=1)] - z) / (1 + z)
    q75, q25 = np.percentile(d, [75, 25])
    return (q75 - q25) / 1.349


def test_without_templates_the_hybrid_is_the_image_estimator(truth, tmp_path):
    image, templates = _image(truth, 0.05, 1), _templates(truth, 0.03, 2)
    photometric = _templates(truth, 0.04, 8)
    model = HybridInformer.make_stage(name="h_off_inform", fusion_methods=["image"],
                                      model=str(tmp_path / "off.json")).inform(
        image, templates, photometric)
    fused = HybridEstimator.make_stage(name="h_off_est",
                                       output=str(tmp_path / "off.hdf5")).estimate(
        image, templates, photometric, model.data).data
    grid = np.asarray(fused.metadata["xvals"]).ravel()
    expected = image.pdf(grid)
    expected /= (expected @ trapz_weights(grid))[:, None]
    np.testing.assert_allclose(fused.pdf(grid), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(fused.ancil["object_id"], image.ancil["object_id"])


def test_two_calibrated_measurements_fuse_into_a_sharper_one(truth):
    image, templates = _image(truth, 0.06, 3), _templates(truth, 0.04, 4)
    inputs = prepare([image, templates], floor=1e-3)
    weights = fit_weights(inputs.logs, truth, inputs.grid)
    alpha, beta = weights.exponents(None, 1)[:, 0]
    # independent, calibrated inputs: Bayes' product, exponents near 1
    assert 0.7 < alpha < 1.3 and 0.7 < beta < 1.3
    fold = np.arange(N) % 3
    fused, fits = cross_fit(inputs.logs, truth, fold, inputs.grid)
    assert len(fits) == 3
    s_fused = _sigma(fused, inputs.grid, truth)
    s_img = _sigma(np.exp(inputs.logs[0]), inputs.grid, truth)
    s_tpl = _sigma(np.exp(inputs.logs[1]), inputs.grid, truth)
    # 1 / sigma^2 add up: 0.06 and 0.04 -> 0.033
    assert s_fused < 0.9 * min(s_img, s_tpl)
    assert s_fused == pytest.approx(1 / np.sqrt(1 / s_img**2 + 1 / s_tpl**2), rel=0.2)


def test_sample_weights_are_a_weighted_mean_of_the_objects(truth):
    """Weight 0 drops an object from the fit, weight 2 counts it twice; bad weights stop."""
    image, templates = _image(truth, 0.06, 3), _templates(truth, 0.04, 4)
    inputs = prepare([image, templates], floor=1e-3)
    half = np.arange(N) < N // 2
    dropped = fit_weights(inputs.logs, truth, inputs.grid, sample_weight=half.astype(float))
    subset = fit_weights([lp[half] for lp in inputs.logs], truth[half], inputs.grid)
    np.testing.assert_allclose(dropped.theta, subset.theta, atol=1e-3)
    twice = fit_weights(inputs.logs, truth, inputs.grid, sample_weight=1.0 + half)
    equal = fit_weights(inputs.logs, truth, inputs.grid)
    assert not np.allclose(twice.theta, equal.theta, atol=1e-6)
    stacked = fit_weights([np.concatenate([lp, lp[half]]) for lp in inputs.logs],
                          np.concatenate([truth, truth[half]]), inputs.grid)
    np.testing.assert_allclose(twice.theta, stacked.theta, atol=1e-3)
    with pytest.raises(InputError, match="sample_weight"):
        fit_weights(inputs.logs, truth, inputs.grid, sample_weight=-np.ones(N))


def test_no_fold_exponent_saw_that_folds_labels(truth):
    image, templates = _image(truth, 0.08, 5), _templates(truth, 0.05, 6)
    inputs = prepare([image, templates], floor=1e-3)
    fold = np.arange(N) % 3
    fused, fits = cross_fit(inputs.logs, truth, fold, inputs.grid, design="gated",
                            covariates=np.random.default_rng(0).normal(size=(N, 2)),
                            features=["log_snr", "blend"])
    for f in range(3):
        scrambled = np.where(fold == f, np.random.default_rng(f).uniform(0, 8, N), truth)
        other, other_fits = cross_fit(inputs.logs, scrambled, fold, inputs.grid,
                                      design="gated",
                                      covariates=np.random.default_rng(0).normal(size=(N, 2)),
                                      features=["log_snr", "blend"])
        np.testing.assert_array_equal(other[fold == f], fused[fold == f])
        np.testing.assert_array_equal(other_fits[f].theta, fits[f].theta)
        assert not np.array_equal(other[fold != f], fused[fold != f])


def test_rows_are_matched_by_id(truth):
    image, templates = _image(truth, 0.05, 1), _templates(truth, 0.03, 2)
    shuffled = np.random.default_rng(1).permutation(N)
    moved = templates[shuffled]
    moved.set_ancil({k: np.asarray(v)[shuffled] for k, v in templates.ancil.items()})
    a = prepare([image, templates], floor=1e-3)
    b = prepare([image, moved], floor=1e-3)
    np.testing.assert_allclose(a.logs[1], b.logs[1], rtol=0, atol=1e-12)
    short = templates[np.arange(N - 1)]
    short.set_ancil({k: np.asarray(v)[:-1] for k, v in templates.ancil.items()})
    with pytest.raises(InputError, match=f"no object {N}"):
        prepare([image, short], floor=1e-3)


def test_cross_validator_stage_gives_out_of_fold_pdfs(truth, tmp_path):
    image, templates = _image(truth, 0.06, 3), _templates(truth, 0.04, 4)
    photometric = _templates(truth, 0.05, 9)
    stage = HybridCrossValidator.make_stage(name="h_cv", folds=3, seed=1,
                                            output=str(tmp_path / "cv.hdf5"))
    ens = stage.cross_validate(image, templates, photometric).data
    assert ens.npdf == N
    assert set(np.unique(ens.ancil["fold"])) == {0, 1, 2}
    np.testing.assert_array_equal(ens.ancil["object_id"], image.ancil["object_id"])
    assert np.all(np.isfinite(ens.ancil["zmode"]))
    grid = np.asarray(ens.metadata["xvals"]).ravel()
    # three independent measurements of 0.06, 0.04 and 0.05: about 0.028 together
    assert _sigma(ens.pdf(grid), grid, truth) < 0.036
