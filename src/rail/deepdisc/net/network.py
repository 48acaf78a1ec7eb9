"""The DeepDISC network on torchvision: Mask R-CNN + FPN with a mixture-density redshift head.

* Backbones by name (:data:`ARCHITECTURES`): ``resnet50_fpn`` (the paper's best),
  ``resnet34_fpn``, ``resnet18_fpn`` (a CPU-size preset) and ``swin_t_fpn`` (a transformer,
  Swin-T, with an FPN). The first layer takes C bands; norms are trainable GroupNorm (the
  frozen BatchNorm of torchvision's detection backbones is an identity when training from
  scratch).
* Pixels are never resampled: scenes go in at their native size (padded with zeros to a
  multiple of 32), anchors and RoI levels are sized for sources of a few to ~100 pixels.
* :class:`ImageNormalizer` holds the per-band normalisation learned at inform time: pixels
  are divided by a robust per-band noise scale and stretched with ``asinh``, which is linear
  in the noise and logarithmic for bright pixels, so colours survive as differences.
* :class:`RedshiftRoIHeads` subclasses torchvision's ``RoIHeads`` and adds
  :class:`RedshiftHead`, a K-component Gaussian mixture in z computed from the pooled box
  features *and* from the input pixels pooled in the box (a photometric branch: colours
  enter directly). Its loss, the mean negative log-likelihood of the true redshift over
  foreground proposals whose object has a finite redshift, times a weight, is added to the
  detection and mask losses.

Model files hold a ``state_dict`` and a JSON string with everything needed to rebuild the
network (bands, architecture, normalisation, provenance), and load with
``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import (
    RoIHeads,
    fastrcnn_loss,
    maskrcnn_inference,
    maskrcnn_loss,
)
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

MODEL_FORMAT = "deepdisc-model"
MODEL_VERSION = 1

_COMMON: dict[str, Any] = {
    "anchor_sizes": [[4, 8], [12, 16], [24, 32], [48, 64], [96, 128]],
    "aspect_ratios": [0.5, 1.0, 2.0],
    "rpn_pre_nms_top_n_train": 600,
    "rpn_post_nms_top_n_train": 300,
    "rpn_pre_nms_top_n_test": 300,
    "rpn_post_nms_top_n_test": 150,
    "rpn_batch_size_per_image": 256,
    "box_batch_size_per_image": 64,
    "box_detections_per_img": 150,
    "box_score_thresh": 0.05,
    "box_nms_thresh": 0.5,
    "roi_canonical_scale": 56,
    "roi_sampling_ratio": 1,
    "num_components": 5,
    "photometry_pool": 8,
    "redshift_hidden": 256,
    "zmax": 15.0,
    "z_init": None,
}

#: named architectures: every entry is a complete, JSON-able description
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "resnet50_fpn": {**_COMMON, "backbone": "resnet50_fpn", "stem": "standard",
                     "fpn_channels": 256, "box_head_dim": 1024,
                     "mask_head_channels": [256, 256, 256, 256]},
    "resnet34_fpn": {**_COMMON, "backbone": "resnet34_fpn", "stem": "standard",
                     "fpn_channels": 192, "box_head_dim": 768,
                     "mask_head_channels": [192, 192, 192]},
    "resnet18_fpn": {**_COMMON, "backbone": "resnet18_fpn", "stem": "standard",
                     "fpn_channels": 128, "box_head_dim": 512,
                     "mask_head_channels": [128, 128]},
    "swin_t_fpn": {**_COMMON, "backbone": "swin_t_fpn", "stem": "standard",
                   "fpn_channels": 192, "box_head_dim": 768,
                   "mask_head_channels": [192, 192, 192]},
}
BACKBONES = tuple(ARCHITECTURES)


def architecture(backbone: str, **overrides: Any) -> dict[str, Any]:
    """A complete architecture description for a named backbone, with overrides.

    Raises
    ------
    ValueError
        For an unknown backbone or an unknown override key.
    """
    if backbone not in ARCHITECTURES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {list(BACKBONES)}")
    arch = copy.deepcopy(ARCHITECTURES[backbone])
    unknown = set(overrides) - set(arch)
    if unknown:
        raise ValueError(f"unknown architecture options {sorted(unknown)}; "
                         f"known: {sorted(arch)}")
    arch.update(copy.deepcopy(overrides))
    if arch["stem"] not in ("standard", "fine"):
        raise ValueError("stem must be 'standard' (stride 4) or 'fine' (stride 2, no max-pool)")
    return arch


def group_norm(channels: int) -> nn.GroupNorm:
    """Trainable GroupNorm with up to 32 groups of at least 4 channels."""
    groups = max(1, min(32, channels // 4))
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels)


# --------------------------------------------------------------------------- normalisation
class ImageNormalizer(nn.Module):
    """Per-band noise scaling and asinh stretch, fitted at inform time.

    ``snr = x / scale`` (pixels in units of each band's noise) and
    ``stretched = asinh(snr / softening) / range``. Buffers are saved in the state dict.
    """

    def __init__(self, n_bands: int, softening: float = 1.0, stretch_range: float = 3.0):
        super().__init__()
        self.register_buffer("scale", torch.ones(n_bands))
        self.softening = float(softening)
        self.stretch_range = float(stretch_range)

    def set_scale(self, scale: Sequence[float]) -> None:
        """Set the per-band noise scales (flux units per pixel)."""
        s = torch.as_tensor(scale, dtype=torch.float32)
        if s.shape != self.scale.shape or not torch.all(s > 0):
            raise ValueError(f"need {self.scale.numel()} positive scales, got {list(s)}")
        self.scale.copy_(s)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        snr = x / self.scale.view(1, -1, 1, 1)
        return torch.asinh(snr / self.softening) / self.stretch_range, snr


# --------------------------------------------------------------------------- backbones
class _ResNetFPN(nn.Module):
    def __init__(self, depth: int, n_bands: int, fpn_channels: int, stem: str):
        super().__init__()
        from torchvision.models import resnet18, resnet34, resnet50
        from torchvision.models._utils import IntermediateLayerGetter

        net = {18: resnet18, 34: resnet34, 50: resnet50}[depth](weights=None,
                                                                norm_layer=group_norm)
        net.conv1 = nn.Conv2d(n_bands, 64, kernel_size=7, stride=2, padding=3, bias=False)
        if stem == "fine":
            net.maxpool = nn.Identity()
        self.body = IntermediateLayerGetter(
            net, return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"})
        widths = [64, 128, 256, 512] if depth < 50 else [256, 512, 1024, 2048]
        self.fpn = FeaturePyramidNetwork(widths, fpn_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = fpn_channels
        self.stride = 2 if stem == "fine" else 4

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.fpn(self.body(x))


class _SwinFPN(nn.Module):
    def __init__(self, n_bands: int, fpn_channels: int):
        super().__init__()
        from torchvision.models import swin_t

        net = swin_t(weights=None)
        embed = net.features[0][0]
        net.features[0][0] = nn.Conv2d(n_bands, embed.out_channels,
                                       kernel_size=embed.kernel_size, stride=embed.stride)
        self.features = net.features
        self.taps = {1: "0", 3: "1", 5: "2", 7: "3"}
        self.norms = nn.ModuleDict({name: nn.LayerNorm(c) for name, c in
                                    zip(self.taps.values(), (96, 192, 384, 768), strict=True)})
        self.fpn = FeaturePyramidNetwork([96, 192, 384, 768], fpn_channels,
                                         extra_blocks=LastLevelMaxPool())
        self.out_channels = fpn_channels
        self.stride = 4

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        feats: OrderedDict[str, Tensor] = OrderedDict()
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.taps:
                name = self.taps[i]
                feats[name] = self.norms[name](x).permute(0, 3, 1, 2).contiguous()
        return self.fpn(feats)


def build_backbone(arch: dict[str, Any], n_bands: int) -> nn.Module:
    """The backbone + FPN of an architecture, for ``n_bands`` input channels."""
    name = arch["backbone"]
    if name.startswith("resnet"):
        depth = int(name.removeprefix("resnet").split("_")[0])
        return _ResNetFPN(depth, n_bands, arch["fpn_channels"], arch["stem"])
    if name == "swin_t_fpn":
        return _SwinFPN(n_bands, arch["fpn_channels"])
    raise ValueError(f"unknown backbone {name!r}")


# --------------------------------------------------------------------------- redshift head
class RedshiftHead(nn.Module):
    """K-component Gaussian mixture in z from box features and in-box pixels.

    Parameters
    ----------
    box_dim
        Size of the box-head representation.
    n_bands
        Input channels.
    pool
        Side of the RoI grid on which the input pixels are pooled.
    hidden
        Width of the hidden layers.
    n_components
        K, the number of Gaussians.
    zmax
        Means are constrained to ``0 <= mu <= zmax`` (parametrised in ln(1+z)).
    """

    def __init__(self, box_dim: int, n_bands: int, pool: int, hidden: int, n_components: int,
                 zmax: float):
        super().__init__()
        self.pool = pool
        self.n_components = n_components
        self.log_zmax = math.log1p(zmax)
        self.box_proj = nn.Sequential(nn.Linear(box_dim, hidden), nn.ReLU(inplace=True))
        self.pixels = nn.Sequential(
            nn.Conv2d(n_bands, 64, 3, padding=1), group_norm(64), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), group_norm(64), nn.ReLU(inplace=True),
            nn.Flatten(), nn.Linear(64 * ((pool + 1) // 2) ** 2, hidden // 2),
            nn.ReLU(inplace=True),
        )
        self.photometry = nn.Sequential(
            nn.Linear(2 * n_bands + 2, hidden // 2), nn.ReLU(inplace=True),
            nn.Linear(hidden // 2, hidden // 2), nn.ReLU(inplace=True),
        )
        self.trunk = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
        )
        self.out = nn.Linear(hidden, 3 * n_components)
        # width recalibration fitted on the validation split after training (1 = none)
        self.register_buffer("width_scale", torch.ones(()))

    def init_means(self, z_quantiles: Sequence[float]) -> None:
        """Start the component means at the given redshifts (e.g. training quantiles)."""
        y = torch.log1p(torch.as_tensor(z_quantiles, dtype=torch.float32)) / self.log_zmax
        y = y.clamp(1e-3, 1 - 1e-3)
        with torch.no_grad():
            k = self.n_components
            self.out.bias[k:2 * k] = torch.log(y / (1 - y))
            self.out.weight[k:2 * k].mul_(0.1)

    def pooled_inputs(self, stretched: Tensor, snr: Tensor, boxes: list[Tensor]
                      ) -> tuple[Tensor, Tensor]:
        """RoI-pool the stretched pixels and build the photometric vector of each box."""
        p = self.pool
        pix = roi_align(stretched, boxes, output_size=p, spatial_scale=1.0, sampling_ratio=2,
                        aligned=True)
        lin = roi_align(snr, boxes, output_size=p, spatial_scale=1.0, sampling_ratio=2,
                        aligned=True)
        b = torch.cat(boxes) if boxes else stretched.new_zeros((0, 4))
        w = (b[:, 2] - b[:, 0]).clamp(min=1.0)
        h = (b[:, 3] - b[:, 1]).clamp(min=1.0)
        area = (w * h)[:, None]
        box_sn = lin.mean(dim=(2, 3)) * area / area.sqrt()
        c0, c1 = p // 2 - p // 4, p // 2 + (p + 3) // 4
        core_area = area * ((c1 - c0) / p) ** 2
        core_sn = lin[:, :, c0:c1, c0:c1].mean(dim=(2, 3)) * core_area / core_area.sqrt()
        phot = torch.cat([torch.asinh(box_sn / 2.0), torch.asinh(core_sn / 2.0),
                          torch.log(w)[:, None], torch.log(h)[:, None]], dim=1)
        return pix, phot

    def forward(self, box_features: Tensor, pix: Tensor, phot: Tensor
                ) -> tuple[Tensor, Tensor, Tensor]:
        """Mixture (log-weights, means, standard deviations), each (N, K), in z."""
        h = torch.cat([self.box_proj(box_features),
                       self.pixels(pix), self.photometry(phot)], dim=1)
        raw = self.out(self.trunk(h))
        k = self.n_components
        log_w = F.log_softmax(raw[:, :k], dim=1)
        mu_y = torch.sigmoid(raw[:, k:2 * k]) * self.log_zmax
        mu = torch.expm1(mu_y)
        sigma = (1.0 + mu) * (F.softplus(raw[:, 2 * k:]) + 2.0e-3) * self.width_scale
        return log_w, mu, sigma


def mixture_nll(log_w: Tensor, mu: Tensor, sigma: Tensor, z: Tensor) -> Tensor:
    """Negative log-likelihood of z under each row's Gaussian mixture."""
    logp = (-0.5 * ((z[:, None] - mu) / sigma) ** 2 - torch.log(sigma)
            - 0.5 * math.log(2 * math.pi))
    return -torch.logsumexp(log_w + logp, dim=1)


class RedshiftRoIHeads(RoIHeads):
    """torchvision ``RoIHeads`` (box + mask) plus a mixture-density redshift branch."""

    def __init__(self, *args: Any, redshift_head: RedshiftHead, redshift_weight: float = 1.0,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.redshift_head = redshift_head
        self.redshift_weight = float(redshift_weight)

    def _box_features(self, features: dict[str, Tensor], boxes: list[Tensor],
                      image_shapes: list[tuple[int, int]]) -> Tensor:
        return self.box_head(self.box_roi_pool(features, boxes, image_shapes))

    def redshift_for_boxes(self, features, stretched, snr, boxes, image_shapes,
                           box_features: Tensor | None = None):
        """Mixture parameters for given boxes (one tensor of boxes per image)."""
        if box_features is None:
            box_features = self._box_features(features, boxes, image_shapes)
        pix, phot = self.redshift_head.pooled_inputs(stretched, snr, boxes)
        return self.redshift_head(box_features, pix, phot)

    def forward(self, features, proposals, image_shapes, targets=None, stretched=None,
                snr=None):
        """Training: losses (classifier, box, mask, redshift). Inference: detections with
        ``z_log_weights``, ``z_means``, ``z_stds`` next to boxes, scores, labels, masks."""
        if self.training:
            proposals, matched_idxs, labels, regression_targets = \
                self.select_training_samples(proposals, targets)
        box_features = self._box_features(features, proposals, image_shapes)
        class_logits, box_regression = self.box_predictor(box_features)
        if self.training:
            loss_cls, loss_box = fastrcnn_loss(class_logits, box_regression, labels,
                                               regression_targets)
            pos = [torch.where(lab > 0)[0] for lab in labels]
            pos_boxes = [p[i] for p, i in zip(proposals, pos, strict=True)]
            pos_matched = [m[i] for m, i in zip(matched_idxs, pos, strict=True)]
            # masks on positive proposals
            mask_logits = self.mask_predictor(self.mask_head(
                self.mask_roi_pool(features, pos_boxes, image_shapes)))
            loss_mask = maskrcnn_loss(mask_logits, pos_boxes, [t["masks"] for t in targets],
                                      [t["labels"] for t in targets], pos_matched)
            # redshift on positive proposals whose object has a known redshift
            offsets = torch.cumsum(torch.tensor([0] + [len(lab) for lab in labels[:-1]]), 0)
            flat_pos = torch.cat([i + o for i, o in zip(pos, offsets, strict=True)])
            z_true = torch.cat([t["redshifts"][m] for t, m in
                                zip(targets, pos_matched, strict=True)])
            log_w, mu, sigma = self.redshift_for_boxes(
                features, stretched, snr, pos_boxes, image_shapes,
                box_features=box_features[flat_pos])
            known = torch.isfinite(z_true)
            if known.any():
                loss_z = mixture_nll(log_w[known], mu[known], sigma[known],
                                     z_true[known]).mean()
            else:
                loss_z = box_features.sum() * 0.0
            return [], {"loss_classifier": loss_cls, "loss_box_reg": loss_box,
                        "loss_mask": loss_mask, "loss_redshift": self.redshift_weight * loss_z}

        boxes, scores, labels = self.postprocess_detections(class_logits, box_regression,
                                                            proposals, image_shapes)
        return self.describe_boxes(features, stretched, snr, boxes, image_shapes,
                                   scores=scores), {}

    def describe_boxes(self, features, stretched, snr, boxes, image_shapes, scores=None):
        """Scores (if not given: the foreground probability), masks and z mixtures of boxes."""
        box_features = self._box_features(features, boxes, image_shapes)
        if scores is None:
            logits, _ = self.box_predictor(box_features)
            probs = F.softmax(logits, -1)[:, 1]
            scores = list(probs.split([len(b) for b in boxes]))
        log_w, mu, sigma = self.redshift_for_boxes(features, stretched, snr, boxes,
                                                   image_shapes, box_features=box_features)
        labels = [torch.ones(len(b), dtype=torch.int64, device=b.device) for b in boxes]
        mask_logits = self.mask_predictor(self.mask_head(
            self.mask_roi_pool(features, boxes, image_shapes)))
        masks = maskrcnn_inference(mask_logits, labels)
        sizes = [len(b) for b in boxes]
        out = []
        for i, (lw, m, s) in enumerate(zip(log_w.split(sizes), mu.split(sizes),
                                           sigma.split(sizes), strict=True)):
            out.append({"boxes": boxes[i], "scores": scores[i], "labels": labels[i],
                        "masks": masks[i], "z_log_weights": lw, "z_means": m, "z_stds": s})
        return out


# --------------------------------------------------------------------------- the network
class DeepDiscNet(nn.Module):
    """Backbone + FPN, RPN and redshift RoI heads on raw multi-band scenes.

    ``forward(images, targets)`` takes a float tensor (B, C, H, W) of calibrated pixels
    (any flux unit: the normaliser holds the scales). In training mode it returns the loss
    dict; in eval mode a list of detections per image. :meth:`forced` describes given boxes.
    """

    def __init__(self, arch: dict[str, Any], n_bands: int, redshift_weight: float = 1.0):
        super().__init__()
        self.arch = arch
        self.n_bands = n_bands
        self.normalizer = ImageNormalizer(n_bands)
        self.backbone = build_backbone(arch, n_bands)
        ch = self.backbone.out_channels
        anchors = AnchorGenerator(tuple(tuple(s) for s in arch["anchor_sizes"]),
                                  (tuple(arch["aspect_ratios"]),) * len(arch["anchor_sizes"]))
        self.rpn = RegionProposalNetwork(
            anchors, RPNHead(ch, anchors.num_anchors_per_location()[0]),
            fg_iou_thresh=0.7, bg_iou_thresh=0.3,
            batch_size_per_image=arch["rpn_batch_size_per_image"], positive_fraction=0.5,
            pre_nms_top_n={"training": arch["rpn_pre_nms_top_n_train"],
                           "testing": arch["rpn_pre_nms_top_n_test"]},
            post_nms_top_n={"training": arch["rpn_post_nms_top_n_train"],
                            "testing": arch["rpn_post_nms_top_n_test"]},
            nms_thresh=0.7,
        )
        levels = ["0", "1", "2", "3"]
        scale = int(arch["roi_canonical_scale"])
        ratio = int(arch.get("roi_sampling_ratio", 2))
        box_pool = MultiScaleRoIAlign(levels, 7, ratio, canonical_scale=scale,
                                      canonical_level=4)
        mask_pool = MultiScaleRoIAlign(levels, 14, ratio, canonical_scale=scale,
                                       canonical_level=4)
        dim = arch["box_head_dim"]
        mask_ch = list(arch["mask_head_channels"])
        self.roi_heads = RedshiftRoIHeads(
            box_pool, TwoMLPHead(ch * 7 * 7, dim), FastRCNNPredictor(dim, 2),
            0.5, 0.5, arch["box_batch_size_per_image"], 0.25, None,
            arch["box_score_thresh"], arch["box_nms_thresh"], arch["box_detections_per_img"],
            mask_roi_pool=mask_pool,
            mask_head=MaskRCNNHeads(ch, mask_ch, 1, norm_layer=group_norm),
            mask_predictor=MaskRCNNPredictor(mask_ch[-1], mask_ch[-1], 2),
            redshift_head=RedshiftHead(dim, n_bands, arch["photometry_pool"],
                                       arch["redshift_hidden"], arch["num_components"],
                                       arch["zmax"]),
            redshift_weight=redshift_weight,
        )
        if arch.get("z_init"):
            self.roi_heads.redshift_head.init_means(arch["z_init"])

    def _prepare(self, images: Tensor):
        if images.ndim != 4 or images.shape[1] != self.n_bands:
            raise ValueError(f"expected images of shape (B, {self.n_bands}, H, W), "
                             f"got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        stretched, snr = self.normalizer(images)
        ph, pw = (-h) % 32, (-w) % 32
        padded = F.pad(stretched, (0, pw, 0, ph)) if ph or pw else stretched
        sizes = [(int(h), int(w))] * images.shape[0]
        features = self.backbone(padded)
        return ImageList(padded, sizes), features, stretched, snr

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None):
        image_list, features, stretched, snr = self._prepare(images)
        if self.training and targets is None:
            raise ValueError("targets are needed in training mode")
        proposals, rpn_losses = self.rpn(image_list, features, targets)
        dets, roi_losses = self.roi_heads(features, proposals, image_list.image_sizes,
                                          targets, stretched=stretched, snr=snr)
        if self.training:
            return {**rpn_losses, **roi_losses}
        return dets

    @torch.no_grad()
    def photometric_features(self, images: Tensor, boxes: list[Tensor]) -> Tensor:
        """The photometric vector the redshift head sees for each box (N, 2C + 2): asinh S/N
        of the box and of its core per band, log width, log height. No network pass."""
        stretched, snr = self.normalizer(images)
        return self.roi_heads.redshift_head.pooled_inputs(stretched, snr, boxes)[1]

    @torch.no_grad()
    def forced(self, images: Tensor, boxes: list[Tensor]) -> list[dict[str, Tensor]]:
        """Scores, masks and redshift mixtures for given boxes (x0, y0, x1, y1 per image)."""
        image_list, features, stretched, snr = self._prepare(images)
        return self.roi_heads.describe_boxes(features, stretched, snr, boxes,
                                             image_list.image_sizes)


# --------------------------------------------------------------------------- save / load
def model_state(model: DeepDiscNet, meta: dict[str, Any],
                extras: dict[str, Any] | None = None) -> dict[str, Any]:
    """The object saved in a model file: tensors, numbers and a JSON string, nothing else.

    ``extras`` holds further tensor dicts, e.g. ``feature_density`` (the training set's
    feature density for out-of-distribution flags).
    """
    full = {**meta, "architecture": model.arch, "n_bands": model.n_bands,
            "redshift_weight": model.roi_heads.redshift_weight}
    return {"format": MODEL_FORMAT, "version": MODEL_VERSION,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "meta": json.dumps(full, sort_keys=True), **(extras or {})}


def save_model(path: str | os.PathLike, model: DeepDiscNet, meta: dict[str, Any],
               extras: dict[str, Any] | None = None) -> str:
    """Write a model file atomically (``torch.save`` of :func:`model_state`)."""
    from rail.deepdisc.store.atomic import atomic_output

    with atomic_output(path, "model") as tmp:
        torch.save(model_state(model, meta, extras), tmp)
    return os.fspath(path)


def read_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """Load a model file with ``weights_only=True`` and check its format."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:
        raise ValueError(f"{path} is not a readable pz-rail-deepdisc model file: {err}") from err
    return check_model_state(obj, str(path))


def check_model_state(obj: Any, source: str = "model") -> dict[str, Any]:
    """Validate a loaded model object; return it."""
    if not isinstance(obj, dict) or obj.get("format") != MODEL_FORMAT:
        raise ValueError(f"{source} is not a pz-rail-deepdisc model (format {MODEL_FORMAT})")
    if obj.get("version") != MODEL_VERSION:
        raise ValueError(f"{source}: model version {obj.get('version')} is not supported")
    return obj


def model_meta(obj: dict[str, Any]) -> dict[str, Any]:
    """The metadata dict of a loaded model object."""
    return json.loads(obj["meta"])


#: buffers that older model files may lack (their defaults apply)
_OPTIONAL_BUFFERS = {"roi_heads.redshift_head.width_scale"}


def build_from_state(obj: dict[str, Any], device: str | torch.device = "cpu") -> DeepDiscNet:
    """Rebuild the network from a loaded model object and load its weights."""
    meta = model_meta(obj)
    arch = dict(meta["architecture"])
    arch["z_init"] = None  # the weights carry the trained means
    net = DeepDiscNet(arch, int(meta["n_bands"]), float(meta.get("redshift_weight", 1.0)))
    missing, unexpected = net.load_state_dict(obj["state_dict"], strict=False)
    # models saved before width calibration existed have no width_scale (= 1)
    missing = set(missing) - _OPTIONAL_BUFFERS
    if missing or unexpected:
        raise ValueError(f"model weights do not fit the architecture: missing {sorted(missing)}, "
                         f"unexpected {sorted(unexpected)}")
    net.arch = meta["architecture"]
    return net.to(device)
