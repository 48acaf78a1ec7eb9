"""Training DeepDISC on a scene store: data, augmentation, normalisation, the loop.

Everything is reproducible from the seed: the train/validation split, the shuffling and the
augmentation of every epoch are drawn from generators seeded by ``(seed, epoch, batch)``,
and the validation pass does not touch the training random stream. A checkpoint is written
after every epoch (model, optimiser, schedule, random state, history); a run started again
with the same ``checkpoint_dir`` and configuration resumes from it and ends with the same
weights as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from rail.deepdisc.evaluate.density import FeatureDensity
from rail.deepdisc.net.network import (
    DeepDiscNet,
    architecture,
    build_from_state,
    model_meta,
)
from rail.deepdisc.store.provenance import package_versions
from rail.deepdisc.store.scenes import SceneStore, SceneStoreError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class TrainConfig:
    """Options of a training run (the DeepDiscInformer's config).

    The defaults are the schedule for the CPU preset on a few hundred 128x128 scenes.
    """

    backbone: str = "resnet50_fpn"
    num_components: int = 5
    epochs: int = 20
    batch_size: int = 4
    learning_rate: float = 1.0e-3
    weight_decay: float = 1.0e-4
    warmup_steps: int = 100
    freeze_backbone_epochs: int = 0
    val_fraction: float = 0.1
    augment: bool = True
    band_dropout: float = 0.0
    redshift_weight: float = 1.0
    grad_clip: float = 10.0
    calibrate: bool = True
    device: str = "auto"
    num_threads: int = 0
    seed: int = 0
    arch_overrides: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ValueError naming the first bad option."""
        positive = {"num_components": self.num_components, "epochs": self.epochs,
                    "batch_size": self.batch_size, "learning_rate": self.learning_rate}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.weight_decay < 0 or self.freeze_backbone_epochs < 0 or self.warmup_steps < 0:
            raise ValueError("weight_decay, freeze_backbone_epochs and warmup_steps must be >= 0")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0 <= self.band_dropout < 1:
            raise ValueError(f"band_dropout must be in [0, 1), got {self.band_dropout}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {self.num_threads}")
        architecture(self.backbone, num_components=self.num_components,
                     **self.arch_overrides)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an unavailable device is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA device")
    if name == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was asked for but is not available")
    return torch.device(name)


def set_threads(num_threads: int) -> int:
    """Use ``num_threads`` CPU threads (0: all cores this process may use)."""
    if num_threads <= 0:
        try:
            num_threads = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover
            num_threads = os.cpu_count() or 1
    torch.set_num_threads(num_threads)
    return num_threads


# --------------------------------------------------------------------------- data
def scene_targets(objects: dict[str, np.ndarray], segmap: np.ndarray | None,
                  height: int, width: int) -> dict[str, np.ndarray]:
    """Training targets of one scene: boxes, instance masks, redshifts.

    Masks are the object's pixels in the segmentation map (its box when there is none).
    """
    n = len(objects["object_id"])
    boxes = np.stack([objects["bbox_x0"], objects["bbox_y0"], objects["bbox_x1"],
                      objects["bbox_y1"]], axis=1).astype(np.float32) if n else \
        np.zeros((0, 4), np.float32)
    if segmap is not None and n:
        masks = (segmap[None, :, :] == objects["object_id"][:, None, None]).astype(np.uint8)
    else:
        masks = np.zeros((n, height, width), np.uint8)
        for i, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
            masks[i, y0:y1, x0:x1] = 1
    z = np.asarray(objects["redshift"], np.float32) if n else np.zeros(0, np.float32)
    return {"boxes": boxes, "masks": masks, "redshifts": z}


def augment_scene(image: np.ndarray, target: dict[str, np.ndarray], rng: np.random.Generator,
                  band_dropout: float = 0.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Random flips, 90-degree rotations (square scenes) and band dropout."""
    _, h, w = image.shape
    boxes, masks = target["boxes"].copy(), target["masks"]
    if h == w and rng.random() < 0.5:  # transpose: with the flips, all 8 rotations/mirrors
        image = image.transpose(0, 2, 1)
        masks = masks.transpose(0, 2, 1)
        boxes = boxes[:, [1, 0, 3, 2]]
    if rng.random() < 0.5:
        image, masks = image[:, :, ::-1], masks[:, :, ::-1]
        boxes[:, [0, 2]] = image.shape[2] - boxes[:, [2, 0]]
    if rng.random() < 0.5:
        image, masks = image[:, ::-1, :], masks[:, ::-1, :]
        boxes[:, [1, 3]] = image.shape[1] - boxes[:, [3, 1]]
    image = np.ascontiguousarray(image)
    if band_dropout > 0 and rng.random() < band_dropout:
        image = image.copy()
        image[rng.integers(image.shape[0])] = 0.0
    return image, {**target, "boxes": boxes, "masks": np.ascontiguousarray(masks)}


class SceneTrainingData:
    """Scenes of a store with their training targets, read scene by scene (bounded memory).

    Parameters
    ----------
    path
        Scene store.
    scenes
        Indices of the scenes to use.
    """

    def __init__(self, path: str | os.PathLike, scenes: Sequence[int]):
        self.path = os.fspath(path)
        self.scenes = np.asarray(scenes, dtype=np.int64)
        self._store: SceneStore | None = None

    def __len__(self) -> int:
        return self.scenes.size

    @property
    def store(self) -> SceneStore:
        if self._store is None:
            self._store = SceneStore(self.path)
        return self._store

    def load(self, i: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Image (C, H, W) and targets of the i-th scene of this set."""
        k = int(self.scenes[i])
        chunk = self.store.read_chunk(k, k + 1)
        seg = chunk.segmap[0] if chunk.segmap is not None else None
        h, w = chunk.images.shape[-2:]
        return chunk.images[0], scene_targets(chunk.scene_objects(0), seg, h, w)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def to_torch(batch: list[tuple[np.ndarray, dict[str, np.ndarray]]], device: torch.device
             ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Stack images and convert targets to the tensors torchvision expects."""
    images = torch.from_numpy(np.stack([b[0] for b in batch])).to(device)
    targets = [{
        "boxes": torch.from_numpy(t["boxes"]).to(device),
        "labels": torch.ones(len(t["boxes"]), dtype=torch.int64, device=device),
        "masks": torch.from_numpy(t["masks"]).to(device),
        "redshifts": torch.from_numpy(t["redshifts"]).to(device),
    } for _, t in batch]
    return images, targets


# --------------------------------------------------------------------------- normalisation
def noise_scales(store: SceneStore, scenes: Sequence[int], max_scenes: int = 200) -> np.ndarray:
    """Robust per-band noise (flux units per pixel) of the given scenes.

    From the inverse variance where the store has it (median of 1/sqrt(ivar) over pixels
    with data), else from the median absolute deviation of the empty-sky pixels.
    """
    scenes = np.asarray(scenes)[:max_scenes]
    per_scene = []
    for k in scenes:
        chunk = store.read_chunk(int(k), int(k) + 1)
        img = chunk.images[0]
        if chunk.ivar is not None:
            iv = chunk.ivar[0].reshape(img.shape[0], -1)
            vals = [np.median(1.0 / np.sqrt(v[v > 0])) if np.any(v > 0) else np.nan
                    for v in iv]
        else:
            sky = chunk.segmap[0] == 0 if chunk.segmap is not None else \
                np.ones(img.shape[1:], bool)
            vals = [1.4826 * np.median(np.abs(b[sky] - np.median(b[sky]))) for b in img]
        per_scene.append(vals)
    scale = np.nanmedian(np.array(per_scene, dtype=float), axis=0)
    if not np.all(np.isfinite(scale) & (scale > 0)):
        raise SceneStoreError(f"{store.path}: cannot estimate the noise of every band "
                              f"(got {scale.tolist()})")
    return scale


# --------------------------------------------------------------------------- training loop
def _split(n_scenes: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng([seed, 7]).permutation(n_scenes)
    n_val = round(val_fraction * n_scenes)
    if val_fraction > 0 and n_scenes >= 2:
        n_val = max(n_val, 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _config_hash(config: TrainConfig, store_path: str) -> str:
    payload = json.dumps({"config": asdict(config), "store": os.path.abspath(store_path),
                          "size": os.path.getsize(store_path)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def _mean_losses(sums: dict[str, float], n: int) -> dict[str, float]:
    return {k: v / max(n, 1) for k, v in sums.items()}


def _summarise(loss: dict[str, torch.Tensor]) -> dict[str, float]:
    det = sum(float(v.detach()) for k, v in loss.items() if k != "loss_redshift")
    z = float(loss["loss_redshift"].detach())
    return {"total": det + z, "detection": det, "redshift": z}


@dataclass
class TrainResult:
    """The trained network, the metadata and extra tensors to store with it."""

    model: DeepDiscNet
    meta: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)


def train(store_path: str | os.PathLike, config: TrainConfig,
          init_model: dict[str, Any] | None = None,
          checkpoint_dir: str | os.PathLike | None = None,
          progress: bool = True) -> TrainResult:
    """Train DeepDISC on a scene store.

    Parameters
    ----------
    store_path
        Training scenes (objects without a redshift only train detection and masks).
    config
        Options; see :class:`TrainConfig`.
    init_model
        A loaded model object to start from (pre-training / fine-tuning); its bands must
        be the store's, and its architecture and normalisation are kept.
    checkpoint_dir
        Where the per-epoch checkpoint is kept; an existing checkpoint of the same run is
        resumed.
    progress
        Show tqdm progress bars.
    """
    from tqdm.auto import tqdm

    config.validate()
    store_path = os.fspath(store_path)
    device = resolve_device(config.device)
    threads = set_threads(config.num_threads)
    with SceneStore(store_path) as store:
        bands = list(store.bands)
        n_scenes = store.n_scenes
        objects = store.objects(["scene", "redshift"])
        train_idx, val_idx = _split(n_scenes, config.val_fraction, config.seed)
        if train_idx.size == 0:
            raise ValueError(f"{store_path}: no scenes left for training")
        z_train = objects["redshift"][np.isin(objects["scene"], train_idx)]
        z_known = z_train[np.isfinite(z_train)]
        if z_known.size == 0:
            raise ValueError(f"{store_path}: no training object has a known redshift")
        if init_model is None:
            scales = noise_scales(store, train_idx)
    torch.manual_seed(config.seed)
    if init_model is not None:
        meta0 = model_meta(init_model)
        if list(meta0["bands"]) != bands:
            raise ValueError(f"the initial model was trained on bands {meta0['bands']} but "
                             f"{store_path} has bands {bands}")
        model = build_from_state(init_model)
        model.roi_heads.redshift_weight = config.redshift_weight
        scales = model.normalizer.scale.numpy().astype(float)
        arch = model.arch
    else:
        k = config.num_components
        z_init = np.quantile(z_known, (np.arange(k) + 0.5) / k).tolist()
        arch = architecture(config.backbone, num_components=k, z_init=z_init,
                            zmax=float(max(15.0, 1.2 * z_known.max())),
                            **config.arch_overrides)
        model = DeepDiscNet(arch, len(bands), config.redshift_weight)
        model.normalizer.set_scale(scales)
    model.to(device)

    data = SceneTrainingData(store_path, train_idx)
    val = SceneTrainingData(store_path, val_idx)
    steps_per_epoch = math.ceil(len(data) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: _lr_factor(s, total_steps, config.warmup_steps))
    history: list[dict[str, Any]] = []
    start_epoch = 0
    ckpt = None
    run_id = _config_hash(config, store_path)
    if checkpoint_dir is not None:
        ckpt = os.path.join(os.fspath(checkpoint_dir), "last.pt")
        os.makedirs(os.fspath(checkpoint_dir), exist_ok=True)
        if os.path.exists(ckpt):
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            if state.get("run_id") == run_id:
                model.load_state_dict(state["model"])
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                torch.set_rng_state(state["torch_rng"])
                history = json.loads(state["history"])
                start_epoch = int(state["epoch"])
                log.info("resuming from %s after epoch %d", ckpt, start_epoch)
            else:
                log.warning("ignoring checkpoint %s of another run", ckpt)

    log.info("training %s on %d scenes (%d for validation), %d objects with redshift, "
             "%d epochs, device %s, %d threads", arch["backbone"], len(data), len(val),
             z_known.size, config.epochs, device, threads)
    t_start = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        frozen = epoch < config.freeze_backbone_epochs
        for p in model.backbone.parameters():
            p.requires_grad_(not frozen)
        model.train()
        order = np.random.default_rng([config.seed, 1, epoch]).permutation(len(data))
        sums: dict[str, float] = {}
        t_epoch = time.perf_counter()
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}",
                   unit="batch", disable=not progress, leave=False)
        for step in bar:
            idx = order[step * config.batch_size:(step + 1) * config.batch_size]
            batch = []
            for j, i in enumerate(idx):
                image, target = data.load(int(i))
                if config.augment:
                    rng = np.random.default_rng([config.seed, 2, epoch, step, j])
                    image, target = augment_scene(image, target, rng, config.band_dropout)
                batch.append((image, target))
            images, targets = to_torch(batch, device)
            loss = model(images, targets)
            total = sum(loss.values())
            opt.zero_grad(set_to_none=True)
            total.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            sched.step()
            for key, value in _summarise(loss).items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix(loss=f"{float(total.detach()):.3f}")
        train_loss = _mean_losses(sums, steps_per_epoch)
        val_loss = _validate(model, val, config, device, epoch)
        history.append({"epoch": epoch + 1, "train": train_loss, "val": val_loss,
                        "seconds": time.perf_counter() - t_epoch,
                        "lr": float(sched.get_last_lr()[0])})
        log.info("epoch %d/%d: train %s | val %s | %.0f s", epoch + 1, config.epochs,
                 _fmt(train_loss), _fmt(val_loss), history[-1]["seconds"])
        if ckpt is not None:
            _save_checkpoint(ckpt, model, opt, sched, epoch + 1, history, run_id)
    density = training_density(model, data, config.batch_size, device)
    data.close()
    calibration = None
    if config.calibrate and len(val):
        calibration = calibrate_widths(model, val, config.batch_size, device)
        log.info("PDF widths x %.3f (validation NLL %.3f -> %.3f on %d objects)",
                 calibration["width_scale"], calibration["nll_before"],
                 calibration["nll_after"], calibration["n_objects"])
    val.close()
    elapsed = time.perf_counter() - t_start
    meta = {
        "bands": bands,
        "normalization": {"kind": "asinh", "scale": [float(s) for s in scales],
                          "softening": model.normalizer.softening,
                          "stretch_range": model.normalizer.stretch_range},
        "z_range": [0.0, float(arch["zmax"])],
        "calibration": calibration,
        "training": {
            "store": os.path.abspath(store_path),
            "n_train_scenes": len(train_idx), "n_val_scenes": len(val_idx),
            "n_train_redshifts": int(z_known.size),
            "config": asdict(config), "history": history,
            "seconds": elapsed, "device": str(device), "threads": threads,
            "initial_model": None if init_model is None else model_meta(init_model).get(
                "training", {}).get("store"),
        },
        "versions": package_versions(),
    }
    meta["feature_density"] = {"k": density.k, "quantile": density.quantile,
                               "n_bank": int(density.bank.shape[0]),
                               "columns": list(density.columns or ())}
    model.eval()
    return TrainResult(model=model.cpu(), meta=meta,
                       extras={"feature_density": density.to_state()})


@torch.no_grad()
def training_density(model: DeepDiscNet, data: SceneTrainingData, batch_size: int,
                     device: torch.device) -> FeatureDensity:
    """Feature density of the training objects with a redshift (for out-of-distribution
    flags); the features come from the pixels in the catalog boxes, no network pass."""
    feats = []
    for start in range(0, len(data), batch_size):
        batch = [data.load(i) for i in range(start, min(start + batch_size, len(data)))]
        images = torch.from_numpy(np.stack([b[0] for b in batch])).to(device)
        boxes = [torch.from_numpy(t["boxes"]).to(device) for _, t in batch]
        known = np.concatenate([np.isfinite(t["redshifts"]) for _, t in batch])
        f = model.photometric_features(images, boxes).cpu().numpy()
        feats.append(f[known])
    n = model.n_bands  # core S/N columns of the (box S/N, core S/N, size) vector
    return FeatureDensity.fit(np.concatenate(feats), columns=tuple(range(n, 2 * n)))


def _fmt(losses: dict[str, float] | None) -> str:
    if not losses:
        return "-"
    return " ".join(f"{k} {v:.3f}" for k, v in losses.items())


@torch.no_grad()
def _validate(model: DeepDiscNet, val: SceneTrainingData, config: TrainConfig,
              device: torch.device, epoch: int) -> dict[str, float] | None:
    """Mean losses on the validation scenes, without disturbing the training RNG."""
    if len(val) == 0:
        return None
    rng_state = torch.get_rng_state()
    torch.manual_seed(config.seed + 10_000 + epoch)
    model.train()
    sums: dict[str, float] = {}
    n = 0
    for start in range(0, len(val), config.batch_size):
        batch = [val.load(i) for i in range(start, min(start + config.batch_size, len(val)))]
        images, targets = to_torch(batch, device)
        for key, value in _summarise(model(images, targets)).items():
            sums[key] = sums.get(key, 0.0) + value
        n += 1
    torch.set_rng_state(rng_state)
    return _mean_losses(sums, n)


@torch.no_grad()
def calibrate_widths(model: DeepDiscNet, val: SceneTrainingData, batch_size: int,
                     device: torch.device) -> dict[str, float]:
    """Fit one factor for every mixture width on the validation objects (NLL-optimal).

    The network's mixtures for the validation objects (their catalog boxes) are computed
    once; the factor ``s`` scaling all standard deviations is the one minimising the mean
    negative log-likelihood of the true redshifts, and is stored in the redshift head.
    """
    from scipy.optimize import minimize_scalar

    from rail.deepdisc.net.network import mixture_nll

    model.eval()
    head = model.roi_heads.redshift_head
    head.width_scale.fill_(1.0)
    parts = []
    for start in range(0, len(val), batch_size):
        batch = [val.load(i) for i in range(start, min(start + batch_size, len(val)))]
        images = torch.from_numpy(np.stack([b[0] for b in batch])).to(device)
        boxes = [torch.from_numpy(t["boxes"]).to(device) for _, t in batch]
        z = torch.from_numpy(np.concatenate([t["redshifts"] for _, t in batch]))
        outs = model.forced(images, boxes)
        lw = torch.cat([o["z_log_weights"] for o in outs]).cpu()
        mu = torch.cat([o["z_means"] for o in outs]).cpu()
        sd = torch.cat([o["z_stds"] for o in outs]).cpu()
        known = torch.isfinite(z)
        parts.append((lw[known], mu[known], sd[known], z[known]))
    lw, mu, sd, z = (torch.cat([p[i] for p in parts]) for i in range(4))
    if z.numel() < 20:
        return {"width_scale": 1.0, "n_objects": int(z.numel()), "nll_before": float("nan"),
                "nll_after": float("nan")}

    def nll(log_s: float) -> float:
        return float(mixture_nll(lw, mu, sd * float(np.exp(log_s)), z).mean())

    res = minimize_scalar(nll, bounds=(np.log(0.3), np.log(3.0)), method="bounded")
    scale = float(np.exp(res.x))
    head.width_scale.fill_(scale)
    return {"width_scale": scale, "n_objects": int(z.numel()), "nll_before": nll(0.0),
            "nll_after": float(res.fun)}


def _save_checkpoint(path: str, model, opt, sched, epoch: int, history, run_id: str) -> None:
    from rail.deepdisc.store.atomic import atomic_output

    state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state(),
             "epoch": epoch, "history": json.dumps(history), "run_id": run_id}
    with atomic_output(path, "checkpoint") as tmp:
        torch.save(state, tmp)
