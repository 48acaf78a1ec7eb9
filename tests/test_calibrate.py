"""PDF recalibration on a labelled scene store (``rail-deepdisc calibrate``)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from rail.deepdisc.cli import main
from rail.deepdisc.net.calibrate import (
    Mixtures,
    fit_calibration,
    labelled_mixtures,
    recalibrated,
)
from rail.deepdisc.net.data import SceneTrainingData
from rail.deepdisc.net.model_file import build_from_state, model_meta, read_model_file

LOG_ZMAX = math.log1p(15.0)


def _sample(mix: Mixtures, rng: np.random.Generator) -> torch.Tensor:
    """One redshift drawn from each row's mixture."""
    w = mix.log_weights.exp().numpy()
    k = (rng.random(len(w))[:, None] > np.cumsum(w, axis=1)).sum(axis=1)
    rows = np.arange(len(w))
    return torch.from_numpy(rng.normal(mix.means.numpy()[rows, k],
                                       mix.stds.numpy()[rows, k]))


def test_fit_recovers_a_known_width_factor_and_shift():
    rng = np.random.default_rng(5)
    n = 4000
    mu = rng.uniform(0.2, 8.0, n)
    means = torch.from_numpy(np.stack([mu, mu + rng.uniform(0.5, 2.0, n)], axis=1))
    stds = 0.06 * (1.0 + means)
    log_w = torch.log(torch.tensor([[0.85, 0.15]], dtype=torch.float64)).expand(n, 2)
    given = Mixtures(log_w, means, stds, torch.zeros(n))
    # the truth follows the given PDFs made 30% narrower and shifted by -0.04 in ln(1+z):
    # the fit must find widths x 0.7 and that shift
    truth = recalibrated(given, 0.7, -0.04, LOG_ZMAX)
    z = _sample(truth, rng)
    fit = fit_calibration(given._replace(redshifts=z), LOG_ZMAX)
    assert fit["width_scale"] == pytest.approx(0.7, abs=0.03)
    assert fit["z_shift"] == pytest.approx(-0.04, abs=0.005)
    assert fit["nll_after"] < fit["nll_before"] and fit["n_objects"] == n
    widths = fit_calibration(given._replace(redshifts=z), LOG_ZMAX, fit_shift=False)
    assert widths["z_shift"] == 0.0 and widths["nll_after"] > fit["nll_after"]
    # calibrated PDFs: the fit leaves them as they are
    again = fit_calibration(truth._replace(redshifts=z), LOG_ZMAX)
    assert again["width_scale"] == pytest.approx(1.0, abs=0.04)
    assert again["z_shift"] == pytest.approx(0.0, abs=0.005)


def _digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_calibrate_writes_a_model_whose_head_gives_the_fitted_pdfs(tiny_model, jades_store,
                                                                   tmp_path, capsys):
    out = tmp_path / "recalibrated.pt"
    before = _digest(tiny_model)
    assert main(["calibrate", "--model", tiny_model, "--input", jades_store, "--output",
                 str(out), "--num-threads", "1", "-q"]) == 0
    assert "PDF widths x" in capsys.readouterr().out
    assert _digest(tiny_model) == before  # the input model is untouched
    obj = read_model_file(out)
    cal = model_meta(obj)["calibration"]
    assert cal["store"] == str(Path(jades_store).resolve()) and cal["scenes"] == [0, 6]
    assert cal["previous"] == model_meta(read_model_file(tiny_model))["calibration"]
    assert cal["nll_after"] <= cal["nll_before"] and cal["n_objects"] > 40
    head = build_from_state(obj).roi_heads.redshift_head
    assert float(head.width_scale) == pytest.approx(cal["width_scale"])
    assert float(head.z_shift) == pytest.approx(cal["z_shift"]) and cal["z_shift"] != 0.0

    # the written head gives the mixtures the fit scored: the uncalibrated ones transformed
    data = SceneTrainingData(jades_store, range(6))
    try:
        raw = build_from_state(read_model_file(tiny_model))
        raw.roi_heads.redshift_head.width_scale.fill_(1.0)
        expected = recalibrated(labelled_mixtures(raw, data, 4, torch.device("cpu")),
                                cal["width_scale"], cal["z_shift"],
                                raw.roi_heads.redshift_head.log_zmax)
        got = labelled_mixtures(build_from_state(obj), data, 4, torch.device("cpu"))
    finally:
        data.close()
    for a, b in zip(expected, got, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_calibrate_refuses_bad_input_before_work(tiny_model, jades_store, lsst_store,
                                                 tmp_path, capsys):
    out = tmp_path / "m.pt"
    cases = [
        (["--model", tiny_model, "--input", jades_store, "--output", tiny_model], "--output"),
        (["--model", tiny_model, "--input", lsst_store, "--output", str(out)], "bands"),
        (["--model", tiny_model, "--input", jades_store, "--output", str(out),
          "--scenes", "1"], "at least 20"),
        (["--model", tiny_model, "--input", jades_store, "--output", str(out),
          "--scenes", "2:99"], "holds 6 scenes"),
        (["--model", str(tmp_path / "none.pt"), "--input", jades_store, "--output",
          str(out)], "does not exist"),
    ]
    with pytest.raises(SystemExit):  # refused while parsing
        main(["calibrate", "--model", tiny_model, "--input", jades_store, "--output",
              str(out), "--batch-size", "0"])
    assert "argument --batch-size: must be >= 1, got 0" in capsys.readouterr().err
    for args, named in cases:
        assert main(["calibrate", *args, "-q"]) == 2, args
        err = capsys.readouterr().err
        assert named in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()


def test_training_calibrates_on_a_calibration_store(tiny_train_store, jades_store,
                                                    lsst_store):
    from rail.deepdisc.errors import ModelFileError
    from rail.deepdisc.net.config import TrainConfig
    from rail.deepdisc.net.train import train

    cfg = TrainConfig.from_mapping(backbone="resnet18_fpn", epochs=1, batch_size=4, seed=3,
                                   num_threads=1, val_fraction=0.25,
                                   calibration_store=jades_store)
    result = train(tiny_train_store, cfg, progress=False)
    cal = result.meta["calibration"]
    assert cal["store"] == str(Path(jades_store).resolve()) and cal["n_objects"] > 40
    assert cal["nll_after"] <= cal["nll_before"]
    head = result.model.roi_heads.redshift_head
    assert float(head.z_shift) == pytest.approx(cal["z_shift"]) and cal["z_shift"] != 0.0
    assert float(head.width_scale) == pytest.approx(cal["width_scale"])
    # a calibration store of other bands is refused before any training
    with pytest.raises(ModelFileError, match="bands"):
        train(tiny_train_store, replace(cfg, calibration_store=lsst_store), progress=False)


def test_fine_tuning_starts_from_the_uncalibrated_outputs(tiny_model, tiny_train_store,
                                                          jades_store, tmp_path):
    """A calibration fitted to the initial model's weights on other data does not steer the
    fine-tuning: from the model and from its recalibrated copy, the same weights come out."""
    from rail.deepdisc.net.config import TrainConfig
    from rail.deepdisc.net.train import train

    calibrated = tmp_path / "calibrated.pt"
    assert main(["calibrate", "--model", tiny_model, "--input", jades_store, "--output",
                 str(calibrated), "--num-threads", "1", "-q"]) == 0
    cfg = TrainConfig.from_mapping(backbone="resnet18_fpn", epochs=1, batch_size=4, seed=4,
                                   num_threads=1, val_fraction=0.25, calibrate=False)
    tuned = [train(tiny_train_store, replace(cfg, init_model=init), progress=False).model
             for init in (tiny_model, str(calibrated))]
    for key, value in tuned[0].state_dict().items():
        torch.testing.assert_close(value, tuned[1].state_dict()[key], rtol=0, atol=0)
    head = tuned[1].roi_heads.redshift_head
    assert float(head.width_scale) == 1.0 and float(head.z_shift) == 0.0
