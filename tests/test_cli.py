"""The rail-deepdisc command: simulate and show, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from rail.deepdisc.cli import main
from rail.deepdisc.store.scenes import SceneStore


def test_simulate_and_show(tmp_path, capsys):
    out = tmp_path / "field.hdf5"
    rc = main(["simulate", "--survey", "lsst", "--scenes", "3", "--size", "48", "--seed", "5",
               "--workers", "1", "--catalog-output", str(tmp_path / "cat.hdf5"),
               "--output", str(out), "-q"])
    assert rc == 0
    assert "3 scenes" in capsys.readouterr().out
    with SceneStore(out) as store:
        assert store.bands == ("lsst_u", "lsst_g", "lsst_r", "lsst_i", "lsst_z", "lsst_y")
        assert store.info.pixel_scale_arcsec == pytest.approx(0.2)
    png = tmp_path / "scene.png"
    assert main(["show", str(out), "--scene", "2", "--output", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    assert imread(png).shape[0] > 300


@pytest.mark.parametrize(("args", "message"), [
    (["--survey", "euclid", "--scenes", "2"], "unknown survey 'euclid'"),
    (["--scenes", "2", "--limit-band", "lsst_i"], "limit band 'lsst_i'"),
])
def test_simulate_errors_before_work(tmp_path, capsys, args, message):
    out = tmp_path / "x.hdf5"
    assert main(["simulate", *args, "--output", str(out), "-q"]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "message"), [
    (["--scenes", "0"], "--scenes: must be > 0, got 0"),
    (["--scenes", "2", "--size", "-5"], "--size: must be in [8, 4096], got -5"),
    (["--scenes", "2", "--objects-per-scene", "0"],
     "--objects-per-scene: must be in (0, 100000], got 0"),
    (["--scenes", "2", "--mag-limit", "55"], "--mag-limit: must be in (10, 40), got 55"),
])
def test_flags_out_of_bounds_are_refused_while_parsing(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", *args, "--output", str(tmp_path / "x.hdf5")])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["simulate", "--scenes", "2", "--output", str(blocker / "x.hdf5"), "-q"]) == 2
    assert "cannot" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_show_bad_scene_index(jades_store, tmp_path, capsys):
    assert main(["show", jades_store, "--scene", "99", "--output",
                 str(tmp_path / "x.png")]) == 2
    assert "scenes 0..5" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_simulated_objects_are_listed_once(jades_store):
    with SceneStore(jades_store) as store:
        ids = store.objects(["object_id"])["object_id"]
    assert np.unique(ids).size == ids.size and ids.min() >= 1


def test_train_and_estimate_commands(tiny_train_store, tmp_path, capsys):
    import qp
    import torch

    model = tmp_path / "model.pt"
    assert main(["train", "--input", tiny_train_store, "--model", str(model), "--epochs", "1",
                 "--backbone", "resnet18_fpn", "--num-threads", "2", "-q"]) == 0
    assert torch.load(model, weights_only=True)["format"] == "deepdisc-model"
    out = tmp_path / "pz.hdf5"
    assert main(["estimate", "--input", tiny_train_store, "--model", str(model), "--output",
                 str(out), "--mode", "detect", "--num-threads", "2", "-q"]) == 0
    assert qp.read(str(out)).npdf >= 0
    assert (tmp_path / "pz_detections.hdf5").exists()
    assert "wrote" in capsys.readouterr().out


def test_estimate_with_a_missing_model_fails_clearly(tiny_train_store, tmp_path, capsys):
    rc = main(["estimate", "--input", tiny_train_store, "--model", str(tmp_path / "none.pt"),
               "--output", str(tmp_path / "pz.hdf5"), "-q"])
    assert rc == 2
    assert "none.pt" in capsys.readouterr().err
    assert not (tmp_path / "pz.hdf5").exists()
