"""Training: reproducibility, resuming from checkpoints, data and augmentation, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rail.deepdisc.net.train as train_mod
from rail.deepdisc.net.config import TrainConfig
from rail.deepdisc.net.data import SceneTrainingData, augment_scene, noise_scales, scene_targets
from rail.deepdisc.net.model_file import model_meta, read_model_file
from rail.deepdisc.net.train import train
from rail.deepdisc.store.scenes import SceneStore

FAST = {"backbone": "resnet18_fpn", "batch_size": 4, "num_threads": 2, "val_fraction": 0.25}


def _config(**options) -> TrainConfig:
    return TrainConfig.from_mapping({**FAST, **options})


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_gives_identical_weights(tiny_train_store):
    cfg = _config(epochs=1, seed=5)
    a = train(tiny_train_store, cfg, progress=False)
    b = train(tiny_train_store, cfg, progress=False)
    c = train(tiny_train_store, _config(epochs=1, seed=6), progress=False)
    assert _same(_weights(a.model), _weights(b.model))
    assert not _same(_weights(a.model), _weights(c.model))
    hist = a.meta["training"]["history"]
    assert len(hist) == 1 and set(hist[0]["train"]) == {"total", "detection", "redshift"}
    assert hist[0]["val"]["redshift"] > 0


def test_resume_after_interruption_gives_the_same_weights(tiny_train_store, tmp_path,
                                                          monkeypatch):
    cfg = _config(epochs=3, seed=2)
    straight = train(tiny_train_store, cfg, progress=False)

    real_save = train_mod._Loop.save_checkpoint

    def save_then_die(loop, epoch):
        real_save(loop, epoch)
        if epoch == 2:
            raise KeyboardInterrupt("power cut")

    resumable = _config(epochs=3, seed=2, checkpoint_dir=str(tmp_path))
    monkeypatch.setattr(train_mod._Loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_train_store, resumable, progress=False)
    monkeypatch.setattr(train_mod._Loop, "save_checkpoint", real_save)
    resumed = train(tiny_train_store, resumable, progress=False)
    assert [h["epoch"] for h in resumed.meta["training"]["history"]] == [1, 2, 3]
    assert _same(_weights(straight.model), _weights(resumed.model))


def test_fine_tuning_keeps_bands_and_checks_them(tiny_model, tiny_train_store, lsst_store):
    init = read_model_file(tiny_model)
    tuned = train(tiny_train_store, _config(epochs=1, freeze_backbone_epochs=1, seed=1,
                                            init_model=tiny_model), progress=False)
    assert model_meta(init)["normalization"]["scale"] == tuned.meta["normalization"]["scale"]
    before = {k: v for k, v in init["state_dict"].items() if k.startswith("backbone.body")}
    after = {k: v for k, v in tuned.model.state_dict().items() if k.startswith("backbone.body")}
    assert _same(before, after)  # frozen for the only epoch
    heads = [k for k in init["state_dict"] if k.startswith("roi_heads.redshift_head")]
    assert not _same({k: init["state_dict"][k] for k in heads},
                     {k: tuned.model.state_dict()[k] for k in heads})
    with pytest.raises(ValueError, match="lsst_u") as err:
        train(lsst_store, _config(epochs=1, init_model=tiny_model), progress=False)
    assert "jwst_f090w" in str(err.value)


def test_targets_match_the_segmap(tiny_train_store):
    with SceneStore(tiny_train_store) as store:
        chunk = store.read_chunk(0, 1)
    obj = chunk.scene_objects(0)
    t = scene_targets(obj, chunk.segmap[0], 64, 64)
    assert t["boxes"].shape == (len(obj["object_id"]), 4)
    np.testing.assert_array_equal(t["masks"].sum(axis=(1, 2)), obj["footprint_area"])
    for box, mask in zip(t["boxes"].astype(int), t["masks"], strict=True):
        ys, xs = np.nonzero(mask)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == tuple(box)


def test_augmentation_moves_boxes_with_the_pixels(tiny_train_store):
    data = SceneTrainingData(tiny_train_store, [0, 1, 2])
    image, target = data.load(1)
    for seed in range(8):
        img, t = augment_scene(image, target, np.random.default_rng(seed))
        for box, mask in zip(t["boxes"].astype(int), t["masks"], strict=True):
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == tuple(box)
        # flux is conserved and each object's pixels moved with its mask
        np.testing.assert_allclose(img.sum(), image.sum(), rtol=1e-5)
        m0 = t["masks"][0].astype(bool)
        np.testing.assert_allclose(img[:, m0].sum(), image[:, target["masks"][0] > 0].sum(),
                                   rtol=1e-5)
    img, _ = augment_scene(image, target, np.random.default_rng(0), band_dropout=0.999)
    assert (np.abs(img).sum(axis=(1, 2)) == 0).sum() == 1
    data.close()


def test_noise_scales_match_the_depths(tiny_train_store):
    from rail.deepdisc.sim.surveys import JADES

    with SceneStore(tiny_train_store) as store:
        np.testing.assert_allclose(noise_scales(store, range(8)), JADES.pixel_noise_njy(),
                                   rtol=1e-5)


@pytest.mark.parametrize(("change", "match"), [
    ({"epochs": 0}, "epochs"), ({"val_fraction": 1.0}, "val_fraction"),
    ({"device": "tpu"}, "device"), ({"backbone": "vgg"}, "vgg"),
])
def test_bad_options_are_named(tiny_train_store, change, match):
    with pytest.raises(ValueError, match=match):
        train(tiny_train_store, _config(**change), progress=False)


def test_labelled_scenes_only_trains_on_the_scenes_with_labels(tiny_train_store, tmp_path):
    from rail.deepdisc.sim.labels import relabel_store
    from rail.deepdisc.store.scenes import read_objects

    scene = read_objects(tiny_train_store)["scene"]
    labelled_scenes = np.unique(scene)[[0, 2, 4, 5, 6]]  # of the scenes with objects
    sparse = relabel_store(tiny_train_store, tmp_path / "sparse.hdf5",
                           np.isin(scene, labelled_scenes))
    every = train(sparse, _config(epochs=1, seed=1), progress=False).meta["training"]
    only = train(sparse, _config(epochs=1, seed=1, labelled_scenes_only=True),
                 progress=False).meta["training"]
    assert every["n_train_scenes"] + every["n_val_scenes"] == 8
    assert only["n_train_scenes"] + only["n_val_scenes"] == len(labelled_scenes)
    assert only["n_train_scenes"] < every["n_train_scenes"]


def test_folds_train_side_by_side_on_cpu_cores(monkeypatch):
    """On the CPU the folds use every usable core as separate processes; on a GPU, under
    MPI, or with one core, one after another."""
    import rail.deepdisc.net.crossval as cv

    monkeypatch.setattr(cv, "usable_cores", lambda: 2)
    assert cv.fold_processes(3, "cpu", 0) == (2, 1)
    assert cv.fold_processes(3, "cpu", 1) == (2, 1)
    assert cv.fold_processes(3, "cpu", 2) == (1, 2)
    assert cv.fold_processes(3, "cuda", 0) == (1, 0)
    assert cv.fold_processes(1, "cpu", 0) == (1, 0)
    monkeypatch.setattr(cv, "usable_cores", lambda: 16)
    assert cv.fold_processes(3, "cpu", 0) == (3, 5)
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4")
    assert cv.fold_processes(3, "cpu", 0) == (1, 0)


def test_folds_give_the_same_pdfs_in_processes_as_one_after_another(jades_store,
                                                                    tmp_path, monkeypatch):
    """Each fold's model and PDFs do not depend on whether the folds ran in worker
    processes or in this one."""
    import rail.deepdisc.net.crossval as cv
    from rail.deepdisc.net.config import EstimateConfig

    config = _config(epochs=1, num_threads=1, seed=5)
    estimate = EstimateConfig.from_mapping(num_threads=1)
    runs = {}
    for cores in (1, 2):
        monkeypatch.setattr(cv, "usable_cores", lambda cores=cores: cores)
        runs[cores] = cv.cross_validate(jades_store, config, estimate, 2, seed=5,
                                        workdir=str(tmp_path), progress=False)
    one, two = runs[1], runs[2]
    np.testing.assert_array_equal(one.object_id, two.object_id)
    np.testing.assert_array_equal(one.fold, two.fold)
    np.testing.assert_allclose(one.ensemble.objdata["means"], two.ensemble.objdata["means"],
                               rtol=1e-5, atol=1e-6)
    assert [m["n_train_labels"] for m in one.meta] == [m["n_train_labels"] for m in two.meta]
    def losses(run):
        return [epoch["train"]["total"] for m in run.meta for epoch in m["history"]]

    assert losses(one) == pytest.approx(losses(two), rel=1e-5)
