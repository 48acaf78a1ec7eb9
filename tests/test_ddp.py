"""Distributed data-parallel training on the CPU (gloo): ``--nproc 2`` and ``torchrun``
give the same model, which loads and estimates; rank 0 keeps the checkpoints."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import qp
import torch

from rail.deepdisc.cli import main
from rail.deepdisc.store.scenes import SceneStore

OPTIONS = ["--epochs", "2", "--backbone", "resnet18_fpn", "--batch-size", "2",
           "--val-fraction", "0.25", "--seed", "4", "-q"]


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_two_process_training_loads_and_estimates(tiny_train_store, tmp_path):
    model = tmp_path / "ddp.pt"
    ckpt = tmp_path / "ckpt"
    assert main(["train", "--input", tiny_train_store, "--model", str(model), "--nproc", "2",
                 "--checkpoint-dir", str(ckpt), *OPTIONS]) == 0
    meta = torch.load(model, weights_only=True)
    import json

    training = json.loads(meta["meta"])["training"]
    assert training["processes"] == 2 and [h["epoch"] for h in training["history"]] == [1, 2]
    assert sorted(p.name for p in ckpt.iterdir()) == ["last.pt"]

    out = tmp_path / "pz.hdf5"
    assert main(["estimate", "--input", tiny_train_store, "--model", str(model), "--output",
                 str(out), "--num-threads", "1", "-q"]) == 0
    ens = qp.read(str(out))
    with SceneStore(tiny_train_store) as store:
        assert ens.npdf == store.n_objects
    assert np.all(np.isfinite(ens.ancil["zmode"]))

    # the same run again resumes from rank 0's checkpoint after the last epoch
    again = tmp_path / "again.pt"
    assert main(["train", "--input", tiny_train_store, "--model", str(again), "--nproc", "2",
                 "--checkpoint-dir", str(ckpt), *OPTIONS]) == 0
    a, b = _weights(model), _weights(again)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_torchrun_runs_the_command_with_the_same_result(tiny_train_store, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:  # pragma: no cover - torch always installs it
        pytest.fail("torchrun is not installed beside this interpreter")
    direct = tmp_path / "direct.pt"
    assert main(["train", "--input", tiny_train_store, "--model", str(direct), "--nproc", "2",
                 *OPTIONS]) == 0
    launched = tmp_path / "torchrun.pt"
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "rail.deepdisc.cli",
           "train", "--input", tiny_train_store, "--model", str(launched), *OPTIONS]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    a, b = _weights(direct), _weights(launched)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not [p for p in tmp_path.iterdir() if "inprogress" in p.name]
