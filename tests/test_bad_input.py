"""Bad input never loses a file, never gives silent NaN results, and fails with one clear line.

Each test runs the command (or stage) as a user would, and checks the exit status (or the
typed exception), that the message names the file, option, object or scene at fault, and
that every file that existed before is unchanged (sha256). The store and simulation cases
are in test_bad_input_store.py, the photometry and template-fitting ones in
test_bad_input_fit.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import qp

from rail.deepdisc.cli import main
from rail.deepdisc.errors import InputError, TrainingError
from rail.deepdisc.store.scenes import SceneStore

TRAIN = ["--epochs", "1", "--backbone", "resnet18_fpn", "--num-threads", "1",
         "--batch-size", "4", "--val-fraction", "0.25", "-q"]


def _digest(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` (names relative to it)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def work(tmp_path, tiny_train_store, tiny_model):
    """A folder holding a small store ``ok.hdf5``, a model ``m.pt`` and a directory
    ``somedir`` with a file the user cares about."""
    shutil.copyfile(tiny_train_store, tmp_path / "ok.hdf5")
    shutil.copyfile(tiny_model, tmp_path / "m.pt")
    (tmp_path / "somedir").mkdir()
    (tmp_path / "somedir" / "thesis.tex").write_text("years of work")
    return tmp_path


def _run(argv, capsys) -> tuple[int, str]:
    rc = main(argv)
    return rc, capsys.readouterr().err


# --- defect 1: an output that is a directory ------------------------------------------------
@pytest.mark.parametrize("command", ["train", "estimate"])
def test_output_that_is_a_directory_is_refused(work, capsys, command):
    before = _digest(work)
    if command == "train":
        argv = ["train", "--input", str(work / "ok.hdf5"), "--model", str(work / "somedir"),
                *TRAIN]
    else:
        argv = ["estimate", "--input", str(work / "ok.hdf5"), "--model", str(work / "m.pt"),
                "--output", str(work / "somedir"), "-q"]
    rc, err = _run(argv, capsys)
    assert rc == 2
    assert "somedir" in err and "directory" in err
    assert _digest(work) == before


def test_stage_refuses_a_directory_output_before_ceci_can_delete_it(work):
    from rail.deepdisc.errors import OutputPathError
    from rail.estimation.algos.deepdisc import DeepDiscEstimator

    before = _digest(work)
    with pytest.raises(OutputPathError, match="somedir"):
        DeepDiscEstimator.make_stage(name="est", model=str(work / "m.pt"),
                                     input=str(work / "ok.hdf5"),
                                     output=str(work / "somedir"))
    assert _digest(work) == before


# --- defect 2: an output equal to an input ----------------------------------------------------
@pytest.mark.parametrize("case", ["estimate-input", "estimate-model", "train-input",
                                  "detections-output"])
def test_output_equal_to_an_input_is_refused(work, capsys, case):
    store, model = str(work / "ok.hdf5"), str(work / "m.pt")
    argv = {
        "estimate-input": ["estimate", "--input", store, "--model", model, "--output", store],
        "estimate-model": ["estimate", "--input", store, "--model", model, "--output", model],
        "train-input": ["train", "--input", store, "--model", store, *TRAIN],
        "detections-output": ["estimate", "--input", store, "--model", model, "--output",
                              str(work / "pz.hdf5"), "--detections", str(work / "pz.hdf5")],
    }[case]
    before = _digest(work)
    rc, err = _run([*argv, "-q"] if argv[-1] != "-q" else argv, capsys)
    assert rc == 2
    assert "same file" in err or "also an input" in err
    assert _digest(work) == before


# --- defect 3: non-finite pixels and impossible redshifts -----------------------------------
def _with_nan_patch(source: Path, dest: Path) -> None:
    shutil.copyfile(source, dest)
    with h5py.File(dest, "r+") as f:
        images = f["images"][0]
        images[:, 20:30, 20:30] = np.nan
        images[2, 0, 0] = np.inf
        f["images"][0] = images


def test_nan_pixels_are_missing_data_not_nan_photo_zs(work, capsys):
    _with_nan_patch(work / "ok.hdf5", work / "nan.hdf5")
    out = work / "pz.hdf5"
    rc, err = _run(["estimate", "--input", str(work / "nan.hdf5"), "--model",
                    str(work / "m.pt"), "--output", str(out), "--num-threads", "1", "-q"],
                   capsys)
    assert rc == 0, err
    ens = qp.read(str(out))
    with SceneStore(work / "nan.hdf5") as store:
        assert ens.npdf == store.n_objects
    for column in ("weights", "means", "stds"):
        assert np.all(np.isfinite(ens.objdata[column]))
    for column in ("zmode", "zmean", "zmedian", "snr", "score"):
        assert np.all(np.isfinite(ens.ancil[column])), column


def test_training_on_nan_pixels_gives_finite_weights(work, capsys):
    import torch

    _with_nan_patch(work / "ok.hdf5", work / "nan.hdf5")
    rc, err = _run(["train", "--input", str(work / "nan.hdf5"), "--model",
                    str(work / "new.pt"), *TRAIN], capsys)
    assert rc == 0, err
    state = torch.load(work / "new.pt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize("bad", [-3.0, 1.0e6, np.inf])
def test_impossible_redshifts_are_refused_naming_the_object(work, capsys, bad):
    store = work / "ok.hdf5"
    with h5py.File(store, "r+") as f:
        z = f["objects/redshift"][:]
        z[3] = bad
        f["objects/redshift"][...] = z
        oid, scene = int(f["objects/object_id"][3]), int(f["objects/scene"][3])
    before = _digest(work)
    # the same refusal, the same message, whatever the store is used for
    for args in (["train", "--input", str(store), "--model", str(work / "new.pt"), *TRAIN],
                 ["estimate", "--input", str(store), "--model", str(work / "m.pt"),
                  "--output", str(work / "pz_bad.hdf5"), "--num-threads", "1", "-q"],
                 ["photometry", str(store), "--output", str(work / "phot_bad.hdf5"), "-q"]):
        rc, err = _run(args, capsys)
        assert rc == 2, (args[0], err)
        assert f"object {oid} of scene {scene}" in err and "ok.hdf5" in err, (args[0], err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert _digest(work) == before


def test_a_non_finite_loss_stops_training_and_writes_no_model(work, monkeypatch, capsys):
    import torch

    from rail.deepdisc.net.network import DeepDiscNet

    real = DeepDiscNet.forward

    def poisoned(self, images, targets=None):
        out = real(self, images, targets)
        if self.training and targets is not None:
            out["loss_redshift"] = out["loss_redshift"] * torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(DeepDiscNet, "forward", poisoned)
    before = _digest(work)
    rc, err = _run(["train", "--input", str(work / "ok.hdf5"), "--model",
                    str(work / "new.pt"), *TRAIN], capsys)
    assert rc == 2
    assert "loss became nan" in err and "no model was written" in err
    assert _digest(work) == before


def test_library_raises_a_training_error(tiny_train_store, monkeypatch):
    import torch

    from rail.deepdisc.net.config import TrainConfig
    from rail.deepdisc.net.network import DeepDiscNet
    from rail.deepdisc.net.train import train

    real = DeepDiscNet.forward

    def infinite(self, images, targets=None):
        out = real(self, images, targets)
        if self.training and targets is not None:
            out["loss_mask"] = out["loss_mask"] + torch.tensor(float("inf"))
        return out

    monkeypatch.setattr(DeepDiscNet, "forward", infinite)
    cfg = TrainConfig.from_mapping(backbone="resnet18_fpn", epochs=1, num_threads=1)
    with pytest.raises(TrainingError, match="epoch 1, batch 1"):
        train(tiny_train_store, cfg, progress=False)


def test_a_clean_training_logs_no_nan(work, caplog):
    import logging

    with caplog.at_level(logging.INFO):
        assert main(["train", "--input", str(work / "ok.hdf5"), "--model",
                     str(work / "new.pt"), *TRAIN[:-1]]) == 0
    text = caplog.text.lower()
    assert "nan" not in text.replace("nanmedian", "")
    assert "widths" in text  # the calibration says what it did


# --- defect 4: two runs, one output -----------------------------------------------------------
def test_two_stages_writing_one_output_use_different_temporary_names(work):
    from rail.estimation.algos.deepdisc import DeepDiscEstimator

    kwargs = {"model": str(work / "m.pt"), "input": str(work / "ok.hdf5"),
              "output": str(work / "pz.hdf5")}
    a = DeepDiscEstimator.make_stage(name="a", **kwargs)
    b = DeepDiscEstimator.make_stage(name="b", **kwargs)
    assert a.get_output("output", final_name=True) == b.get_output("output", final_name=True)
    assert a.get_output("output") != b.get_output("output")
    assert Path(a.get_output("output")).name.startswith("inprogress_")


def test_two_estimations_at_once_both_publish_complete_files(work):
    out = work / "pz.hdf5"
    argv = [sys.executable, "-m", "rail.deepdisc.cli", "estimate", "--input",
            str(work / "ok.hdf5"), "--model", str(work / "m.pt"), "--output", str(out),
            "--num-threads", "1", "-q"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=work) for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    for code, (_, err) in zip(codes, results, strict=True):
        assert code == 0 or str(out) in err, err
    assert 0 in codes
    with SceneStore(work / "ok.hdf5") as store:
        assert qp.read(str(out)).npdf == store.n_objects
    assert not [p for p in work.iterdir() if "inprogress" in p.name or p.suffix == ".tmp"]


# --- defect 6: a stage run twice ------------------------------------------------------------
def test_estimate_twice_on_one_stage_gives_the_same_rows(work, monkeypatch):
    import tables_io
    from rail.core.data import DataStore

    from rail.estimation.algos.deepdisc import DeepDiscEstimator

    monkeypatch.setattr(DataStore, "allow_overwrite", True)  # as notebooks re-running do
    stage = DeepDiscEstimator.make_stage(name="twice", model=str(work / "m.pt"),
                                         output=str(work / "pz.hdf5"),
                                         detections=str(work / "det.hdf5"), num_threads=1)
    stage.estimate(str(work / "ok.hdf5"))
    first = tables_io.read(str(work / "det.hdf5"))
    stage.estimate(str(work / "ok.hdf5"))
    second = tables_io.read(str(work / "det.hdf5"))
    with SceneStore(work / "ok.hdf5") as store:
        n = store.n_objects
    assert len(first["object_id"]) == len(second["object_id"]) == n
    assert qp.read(str(work / "pz.hdf5")).npdf == n


# --- defect 9: the demo without the template fitters ----------------------------------------
def test_demo_without_the_fitters_says_which_extra(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec

    def no_eazy(name, *args, **kwargs):
        return None if name == "eazy" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", no_eazy)
    rc, err = _run(["demo", "--output-dir", str(tmp_path / "demo"), "--quick", "-q"], capsys)
    assert rc == 2
    assert "eazy-py" in err and "pz-rail-deepdisc[fitters]" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "demo").exists()


# --- defect 10: importing the command is cheap ------------------------------------------------
def test_help_and_version_import_nothing_heavy():
    code = ("import sys; from rail.deepdisc.cli import build_parser; p = build_parser(); "
            "[p.parse_args([c, '--help']) if False else None for c in ()]; "
            "print(sorted(m for m in ('torch', 'torchvision', 'galsim', 'ceci', 'qp', "
            "'astropy', 'rail.core') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout.replace("'", '"')) == []
    version = subprocess.run([sys.executable, "-m", "rail.deepdisc.cli", "--version"],
                             capture_output=True, text=True, check=True)
    assert version.stdout.startswith("rail-deepdisc ")


# --- weak errors --------------------------------------------------------------------------------
def test_a_pickled_object_is_refused_without_torchs_advice(work, capsys):
    import torch

    torch.save({"format": "deepdisc-model", "payload": Path("x")}, work / "evil.pt")
    rc, err = _run(["estimate", "--input", str(work / "ok.hdf5"), "--model",
                    str(work / "evil.pt"), "--output", str(work / "pz.hdf5"), "-q"], capsys)
    assert rc == 2
    assert "evil.pt" in err and "never unpickles" in err
    assert "weights_only" not in err and "False" not in err
    assert not (work / "pz.hdf5").exists()


def test_model_of_other_bands_is_refused_before_work(work, lsst_store, capsys):
    before = _digest(work)
    rc, err = _run(["estimate", "--input", lsst_store, "--model", str(work / "m.pt"),
                    "--output", str(work / "pz.hdf5"), "-q"], capsys)
    assert rc == 2
    assert "lsst_u" in err and "jwst_f090w" in err
    assert _digest(work) == before


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--epochs", "0", "must be >= 1"), ("--val-fraction", "1", "must be in [0, 1)"),
    ("--backbone", "vgg", "must be one of"), ("--device", "tpu", "must be one of"),
])
def test_bad_training_flags_are_named(work, capsys, flag, value, message):
    before = _digest(work)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--input", str(work / "ok.hdf5"), "--model", str(work / "new.pt"),
              flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and message in err
    assert _digest(work) == before


def test_a_bug_keeps_its_traceback(work, monkeypatch):
    import rail.deepdisc.cli.deepdisc as commands

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(commands, "_cmd_estimate", broken)
    with pytest.raises(ZeroDivisionError):
        main(["estimate", "--input", str(work / "ok.hdf5"), "--model", str(work / "m.pt"),
              "--output", str(work / "pz.hdf5"), "-q"])


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)


@pytest.mark.parametrize("case", ["missing_model", "output_is_the_input"])
def test_the_ceci_form_of_a_stage_fails_in_one_line(work, case):
    """``python -m ceci module.Stage ...`` (how every pipeline runs a stage): a user's
    mistake is one line naming the file, exit 2, no traceback, nothing changed."""
    import subprocess
    import sys

    store = work / "ok.hdf5"
    model = "/nowhere/m.pt" if case == "missing_model" else str(work / "m.pt")
    output = work / "pz.hdf5" if case == "missing_model" else store
    before = _digest(work)
    res = subprocess.run(
        [sys.executable, "-m", "ceci", "rail.estimation.algos.deepdisc.DeepDiscEstimator",
         f"--input={store}", f"--model={model}", f"--output={output}",
         f"--detections={work / 'det.hdf5'}", "--name=est", "--num_threads=1"],
        capture_output=True, text=True, timeout=300, cwd=work)
    assert res.returncode == 2, res.stderr[-2000:]
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert errors[0].startswith("DeepDiscEstimator: error:")
    assert ("/nowhere/m.pt" if case == "missing_model" else "ok.hdf5") in errors[0]
    assert _digest(work) == before
