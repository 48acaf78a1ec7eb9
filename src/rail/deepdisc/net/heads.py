"""The redshift head: a Gaussian mixture in z from box features and in-box pixels.

:class:`RedshiftRoIHeads` subclasses torchvision's ``RoIHeads`` (box + mask) and adds
:class:`RedshiftHead`, a K-component Gaussian mixture computed from the pooled box features
*and* from the input pixels pooled in the box (a photometric branch, so colours enter
directly; the vector's layout is :mod:`rail.deepdisc.net.features`). Its loss, the mean
negative log-likelihood of the true redshift over foreground proposals whose object has a
finite redshift, times a weight, is added to the detection and mask losses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import (
    RoIHeads,
    fastrcnn_loss,
    maskrcnn_inference,
    maskrcnn_loss,
)
from torchvision.ops import roi_align

from rail.deepdisc.net.backbones import group_norm
from rail.deepdisc.net.features import SOFTENING, feature_size


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
            nn.Linear(feature_size(n_bands), hidden // 2), nn.ReLU(inplace=True),
            nn.Linear(hidden // 2, hidden // 2), nn.ReLU(inplace=True),
        )
        self.trunk = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
        )
        self.out = nn.Linear(hidden, 3 * n_components)
        # PDF recalibration fitted after training: every width times width_scale (fitted
        # on the validation split; 1 = none) and every mean shifted by z_shift in ln(1+z)
        # (fitted by ``rail-deepdisc calibrate``; 0 = none)
        self.register_buffer("width_scale", torch.ones(()))
        self.register_buffer("z_shift", torch.zeros(()))

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
        phot = torch.cat([torch.asinh(box_sn / SOFTENING), torch.asinh(core_sn / SOFTENING),
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
        mu_y = (torch.sigmoid(raw[:, k:2 * k]) * self.log_zmax
                + self.z_shift).clamp(0.0, self.log_zmax)
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
