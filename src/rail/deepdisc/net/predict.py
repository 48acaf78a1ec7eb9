"""Batched inference: forced photo-zs for catalog boxes, detection, mixtures to qp.

Both modes work on a :class:`~rail.deepdisc.store.scenes.SceneChunk` (whole scenes) and batch
scenes on the device. ``forced`` gives one row per object of the chunk, in its order;
``detect`` one row per detection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

from rail.deepdisc.net import features
from rail.deepdisc.net.network import DeepDiscNet
from rail.deepdisc.store.scenes import SceneChunk

#: side (pixels) of the box given to objects whose catalog box is missing or empty
FALLBACK_BOX = 5.0


@dataclass
class Mixtures:
    """Gaussian mixtures in z, one row per object: weights, means, stds (n, K)."""

    weights: np.ndarray
    means: np.ndarray
    stds: np.ndarray

    def __len__(self) -> int:
        return self.weights.shape[0]

    @classmethod
    def concatenate(cls, parts: list[Mixtures], n_components: int) -> Mixtures:
        if not parts:
            empty = np.zeros((0, n_components))
            return cls(empty, empty.copy(), empty.copy())
        return cls(*(np.concatenate([getattr(p, a) for p in parts])
                     for a in ("weights", "means", "stds")))

    def take(self, index: np.ndarray) -> Mixtures:
        """The mixtures of the given rows."""
        return Mixtures(self.weights[index], self.means[index], self.stds[index])

    def ensemble(self):
        """A ``qp.mixmod`` ensemble."""
        import qp

        return qp.Ensemble(qp.mixmod, data={"weights": self.weights, "means": self.means,
                                            "stds": self.stds})

    def mean(self) -> np.ndarray:
        """Mixture means, sum_k w_k mu_k (qp's mixmod.mean() fails on numpy 2)."""
        return np.sum(self.weights * self.means, axis=1)

    def pdf(self, zgrid: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """p(z) on a grid, shape (n, len(zgrid))."""
        out = np.empty((len(self), zgrid.size))
        for s in range(0, len(self), chunk):
            w, m, sd = (a[s:s + chunk, :, None] for a in (self.weights, self.means, self.stds))
            g = np.exp(-0.5 * ((zgrid[None, None, :] - m) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
            out[s:s + chunk] = np.sum(w * g, axis=1)
        return out

    def mode(self, zgrid: np.ndarray) -> np.ndarray:
        """Location of the highest p(z) on a grid."""
        return zgrid[np.argmax(self.pdf(zgrid), axis=1)] if len(self) else np.zeros(0)

    def median(self, zgrid: np.ndarray) -> np.ndarray:
        """Median from the gridded CDF."""
        if not len(self):
            return np.zeros(0)
        cdf = np.cumsum(self.pdf(zgrid), axis=1)
        cdf /= np.maximum(cdf[:, -1:], 1e-300)
        return zgrid[np.argmax(cdf >= 0.5, axis=1)]


def _mixtures(out: dict[str, torch.Tensor]) -> Mixtures:
    return Mixtures(out["z_log_weights"].exp().cpu().numpy().astype(np.float64),
                    out["z_means"].cpu().numpy().astype(np.float64),
                    out["z_stds"].cpu().numpy().astype(np.float64))


def object_boxes(objects: dict[str, np.ndarray]) -> np.ndarray:
    """Boxes (n, 4) of catalog objects; a small box at (x, y) where the box is empty."""
    boxes = np.stack([objects["bbox_x0"], objects["bbox_y0"], objects["bbox_x1"],
                      objects["bbox_y1"]], axis=1).astype(np.float32)
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if np.any(empty):
        half = FALLBACK_BOX / 2.0
        x, y = objects["x"][empty] + 0.5, objects["y"][empty] + 0.5
        boxes[empty] = np.stack([x - half, y - half, x + half, y + half], axis=1)
    return boxes


#: most boxes described in one network pass, and masks pasted at full size at once: bounds
#: the memory of dense scenes (hundreds of objects per tile) whatever the batch size
MAX_BOXES = 256
PASTE_BOXES = 64


def scene_batches(boxes_per_scene: np.ndarray, batch_size: int,
                  max_boxes: int = MAX_BOXES) -> list[range]:
    """Consecutive scenes in groups of at most ``batch_size`` scenes and ``max_boxes`` boxes
    (a scene with more boxes than that is a group of its own)."""
    groups: list[range] = []
    start, boxes = 0, 0
    for i, n in enumerate(np.asarray(boxes_per_scene, int)):
        if i > start and (i - start >= batch_size or boxes + n > max_boxes):
            groups.append(range(start, i))
            start, boxes = i, 0
        boxes += n
    if len(boxes_per_scene):
        groups.append(range(start, len(boxes_per_scene)))
    return groups


def _mask_stats(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area (pixels with p > 0.5) and probability-weighted centroid of each mask (pasted at
    full size :data:`PASTE_BOXES` at a time)."""
    area, cx, cy = [np.zeros(0)], [np.zeros(0)], [np.zeros(0)]
    ys = torch.arange(height, dtype=torch.float32, device=boxes.device)
    xs = torch.arange(width, dtype=torch.float32, device=boxes.device)
    for s in range(0, len(boxes), PASTE_BOXES):
        full = paste_masks_in_image(masks[s:s + PASTE_BOXES], boxes[s:s + PASTE_BOXES],
                                    (height, width), padding=1)[:, 0]
        area.append((full > 0.5).sum(dim=(1, 2)).cpu().numpy())
        weight = full.clamp(min=0).float()
        norm = weight.sum(dim=(1, 2)).clamp(min=1e-6)
        cx.append(((weight.sum(dim=1) * xs).sum(dim=1) / norm).cpu().numpy())
        cy.append(((weight.sum(dim=2) * ys).sum(dim=1) / norm).cpu().numpy())
    return np.concatenate(area), np.concatenate(cx), np.concatenate(cy)


@torch.no_grad()
def predict_forced(model: DeepDiscNet, chunk: SceneChunk, batch_size: int,
                   device: torch.device) -> dict[str, np.ndarray | Mixtures]:
    """Redshift mixtures, scores and mask areas for every object of a chunk, in order."""
    model.eval()
    k = model.arch["num_components"]
    h, w = chunk.images.shape[-2:]
    parts, scores, areas, feats = [], [], [], []
    for idx in scene_batches(np.diff(np.searchsorted(chunk.objects["scene"], np.arange(
            chunk.scene_start, chunk.scene_end + 1))), batch_size):
        images = torch.from_numpy(chunk.images[idx.start:idx.stop]).to(device)
        boxes = [torch.from_numpy(object_boxes(chunk.scene_objects(i))).to(device) for i in idx]
        outs = model.forced(images, boxes)
        feats.append(model.photometric_features(images, boxes).cpu().numpy())
        for out, b in zip(outs, boxes, strict=True):
            parts.append(_mixtures(out))
            scores.append(out["scores"].cpu().numpy())
            areas.append(_mask_stats(out["masks"], b, h, w)[0])
    mix = Mixtures.concatenate(parts, k)
    if len(mix) != chunk.n_objects:  # pragma: no cover - guards the row contract
        raise RuntimeError(f"forced mode produced {len(mix)} rows for {chunk.n_objects} objects")
    return {"mixtures": mix, "score": np.concatenate(scores) if scores else np.zeros(0),
            "mask_area": np.concatenate(areas) if areas else np.zeros(0),
            "features": np.concatenate(feats) if feats else features.empty(model.n_bands)}


@torch.no_grad()
def predict_detect(model: DeepDiscNet, chunk: SceneChunk, batch_size: int,
                   device: torch.device, score_threshold: float = 0.05,
                   nms_threshold: float = 0.5) -> dict[str, np.ndarray | Mixtures]:
    """Detections of every scene of a chunk, with their redshift mixtures.

    Returns columns ``scene``, ``bbox_x0`` ... ``bbox_y1``, ``score``, ``mask_area``, ``x``,
    ``y`` (mask centroid, scene pixels) and ``mixtures``.
    """
    model.eval()
    heads = model.roi_heads
    saved = heads.score_thresh, heads.nms_thresh
    heads.score_thresh, heads.nms_thresh = float(score_threshold), float(nms_threshold)
    k = model.arch["num_components"]
    h, w = chunk.images.shape[-2:]
    cols: dict[str, list[np.ndarray]] = {c: [] for c in ("scene", "box", "score", "mask_area",
                                                         "x", "y", "features")}
    parts = []
    try:
        for s in range(0, len(chunk), batch_size):
            images = torch.from_numpy(chunk.images[s:s + batch_size]).to(device)
            outs = model(images)
            feats = model.photometric_features(images, [o["boxes"] for o in outs]).cpu().numpy()
            cols["features"].append(feats)
            for j, out in enumerate(outs):
                boxes = out["boxes"]
                area, cx, cy = _mask_stats(out["masks"], boxes, h, w)
                n = len(boxes)
                cols["scene"].append(np.full(n, chunk.scene_start + s + j, dtype=np.int64))
                cols["box"].append(boxes.cpu().numpy().reshape(-1, 4))
                cols["score"].append(out["scores"].cpu().numpy())
                cols["mask_area"].append(area)
                cols["x"].append(cx - 0.5)  # pixel centres on integers
                cols["y"].append(cy - 0.5)
                parts.append(_mixtures(out))
    finally:
        heads.score_thresh, heads.nms_thresh = saved
    box = np.concatenate(cols["box"]) if cols["box"] else np.zeros((0, 4))
    return {
        "scene": np.concatenate(cols["scene"]) if cols["scene"] else np.zeros(0, np.int64),
        "bbox_x0": box[:, 0], "bbox_y0": box[:, 1], "bbox_x1": box[:, 2], "bbox_y1": box[:, 3],
        "score": np.concatenate(cols["score"]) if cols["score"] else np.zeros(0),
        "mask_area": np.concatenate(cols["mask_area"]) if cols["mask_area"] else np.zeros(0),
        "x": np.concatenate(cols["x"]) if cols["x"] else np.zeros(0),
        "y": np.concatenate(cols["y"]) if cols["y"] else np.zeros(0),
        "mixtures": Mixtures.concatenate(parts, k),
        "features": np.concatenate(cols["features"]) if cols["features"] else
        features.empty(model.n_bands),
    }
