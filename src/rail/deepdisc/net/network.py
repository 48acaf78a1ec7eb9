"""The DeepDISC network on torchvision: Mask R-CNN + FPN with a mixture-density redshift head.

* Backbones by name (:mod:`rail.deepdisc.net.architectures`, :mod:`~rail.deepdisc.net.
  backbones`): ``resnet50_fpn`` (the paper's best), ``resnet34_fpn``, ``resnet18_fpn`` (the
  CPU preset) and ``swin_t_fpn``; the first layer takes C bands, norms are trainable GroupNorm.
* Pixels are never resampled: scenes go in at their native size (padded with zeros to a
  multiple of 32); anchors and RoI levels are sized for sources of a few to ~100 pixels.
* :class:`ImageNormalizer` holds the per-band normalisation learned at inform time: pixels
  are divided by a robust per-band noise scale and stretched with ``asinh``, which is linear
  in the noise and logarithmic for bright pixels, so colours survive as differences.
* The RoI heads add a redshift mixture to boxes and masks (:mod:`rail.deepdisc.net.heads`).

Model files are written and read by :mod:`rail.deepdisc.net.model_file`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import MultiScaleRoIAlign

from rail.deepdisc.net.backbones import build_backbone, group_norm
from rail.deepdisc.net.heads import RedshiftHead, RedshiftRoIHeads


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
