"""The network: presets, losses, inference outputs, mixture maths, safe model files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from rail.deepdisc.net.architectures import BACKBONES, architecture
from rail.deepdisc.net.heads import mixture_nll
from rail.deepdisc.net.model_file import build_from_state, model_meta, read_model_file, save_model
from rail.deepdisc.net.network import DeepDiscNet


def _batch(n_images=2, size=64, n_bands=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n_images, n_bands, size, size, generator=g) * 0.1
    targets = []
    for i in range(n_images):
        boxes = torch.tensor([[10.0, 12.0, 20.0, 21.0], [30.0, 30.0, 45.0, 40.0]])
        masks = torch.zeros(2, size, size, dtype=torch.uint8)
        for j, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
            masks[j, y0:y1, x0:x1] = 1
            images[i, :, y0:y1, x0:x1] += 3.0
        targets.append({"boxes": boxes, "labels": torch.ones(2, dtype=torch.int64),
                        "masks": masks,
                        "redshifts": torch.tensor([1.5, float("nan")])})
    return images, targets


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_trains_and_infers(backbone):
    torch.manual_seed(0)
    net = DeepDiscNet(architecture(backbone), n_bands=3)
    images, targets = _batch()
    net.train()
    losses = net(images, targets)
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier",
                           "loss_box_reg", "loss_mask", "loss_redshift"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    first = next(p for p in net.backbone.parameters())
    assert first.grad is not None and torch.isfinite(first.grad).all()
    net.eval()
    with torch.no_grad():
        dets = net(images)
    assert len(dets) == 2
    for d in dets:
        k = net.arch["num_components"]
        assert d["z_means"].shape == (len(d["boxes"]), k)
        assert torch.all(d["z_stds"] > 0)
        np.testing.assert_allclose(d["z_log_weights"].exp().sum(1).numpy(), 1.0, rtol=1e-5)


def test_forced_mode_returns_one_row_per_box():
    net = DeepDiscNet(architecture("resnet18_fpn"), n_bands=3).eval()
    images, targets = _batch(size=72)  # not a multiple of 32: padded, not resampled
    boxes = [targets[0]["boxes"], targets[1]["boxes"][:1]]
    out = net.forced(images, boxes)
    assert [len(o["scores"]) for o in out] == [2, 1]
    assert out[0]["masks"].shape[0] == 2
    assert torch.all((out[0]["scores"] >= 0) & (out[0]["scores"] <= 1))


def test_the_first_layer_takes_any_number_of_bands():
    for n_bands in (1, 6, 9):
        net = DeepDiscNet(architecture("resnet18_fpn"), n_bands=n_bands).eval()
        with torch.no_grad():
            net(torch.zeros(1, n_bands, 64, 64))
    with pytest.raises(ValueError, match="expected images of shape"):
        net(torch.zeros(1, 3, 64, 64))


def test_mixture_nll_matches_scipy():
    log_w = torch.log(torch.tensor([[0.3, 0.7], [0.5, 0.5]]))
    mu = torch.tensor([[0.5, 2.0], [1.0, 3.0]])
    sigma = torch.tensor([[0.1, 0.4], [0.2, 0.3]])
    z = torch.tensor([0.6, 2.5])
    ours = mixture_nll(log_w, mu, sigma, z).numpy()
    w, m, s = log_w.exp().numpy(), mu.numpy(), sigma.numpy()
    ref = -np.log(np.sum(w * norm.pdf(z.numpy()[:, None], m, s), axis=1))
    np.testing.assert_allclose(ours, ref, rtol=1e-5)


def test_means_start_at_given_redshifts():
    arch = architecture("resnet18_fpn", num_components=3, z_init=[0.5, 2.0, 6.0])
    net = DeepDiscNet(arch, n_bands=2).eval()
    out = net.forced(torch.zeros(1, 2, 64, 64), [torch.tensor([[10.0, 10.0, 20.0, 20.0]])])
    means = np.sort(out[0]["z_means"].numpy()[0])
    np.testing.assert_allclose(means, [0.5, 2.0, 6.0], rtol=0.25)


def test_normaliser_is_colour_preserving():
    net = DeepDiscNet(architecture("resnet18_fpn"), n_bands=2)
    net.normalizer.set_scale([2.0, 0.5])
    x = torch.tensor([[[[2000.0]], [[500.0]]]])  # 1000 sigma in both bands
    stretched, snr = net.normalizer(x)
    assert torch.allclose(snr, torch.full_like(snr, 1000.0))
    assert torch.allclose(stretched[0, 0], stretched[0, 1])
    # bright pixels: differences of the stretch are log flux ratios
    y = torch.tensor([[[[20000.0]], [[500.0]]]])
    s2, _ = net.normalizer(y)
    ratio = (s2[0, 0] - s2[0, 1]) * net.normalizer.stretch_range
    assert float(ratio) == pytest.approx(math.log(10.0), rel=1e-3)
    with pytest.raises(ValueError, match="positive"):
        net.normalizer.set_scale([1.0, -1.0])


def test_model_file_round_trip_with_weights_only(tmp_path):
    torch.manual_seed(1)
    net = DeepDiscNet(architecture("resnet18_fpn"), n_bands=3)
    net.normalizer.set_scale([1.0, 2.0, 3.0])
    path = save_model(tmp_path / "m.pt", net, {"bands": ["a", "b", "c"]})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "deepdisc-model"
    meta = model_meta(raw)
    assert meta["bands"] == ["a", "b", "c"] and meta["architecture"]["backbone"] == "resnet18_fpn"
    again = build_from_state(read_model_file(path))
    for (k, a), (_, b) in zip(net.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable"):
        read_model_file(tmp_path / "bad.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a pz-rail-deepdisc model"):
        read_model_file(tmp_path / "other.pt")


def test_unknown_backbone_and_options_are_named():
    with pytest.raises(ValueError, match="vgg16"):
        architecture("vgg16")
    with pytest.raises(ValueError, match="anchor_size"):
        architecture("resnet18_fpn", anchor_size=[1])


def test_older_model_files_without_the_pdf_calibration_load(tmp_path):
    net = DeepDiscNet(architecture("resnet18_fpn"), n_bands=2)
    path = save_model(tmp_path / "m.pt", net, {"bands": ["a", "b"]})
    obj = read_model_file(path)
    del obj["state_dict"]["roi_heads.redshift_head.width_scale"]
    del obj["state_dict"]["roi_heads.redshift_head.z_shift"]
    head = build_from_state(obj).roi_heads.redshift_head
    assert float(head.width_scale) == 1.0 and float(head.z_shift) == 0.0
    del obj["state_dict"]["roi_heads.box_predictor.cls_score.weight"]
    with pytest.raises(ValueError, match="cls_score"):
        build_from_state(obj)
