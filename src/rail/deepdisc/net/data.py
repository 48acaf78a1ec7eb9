"""Training data: scenes of a store with their targets, augmentation, normalisation, checks.

Scenes are read one at a time (bounded memory). :func:`check_training_store` refuses, before
any training, a store whose redshifts are impossible (negative, infinite, beyond
:data:`rail.deepdisc.store.scenes.MAX_REDSHIFT`; the check every use of a store makes),
naming the object and scene; non-finite pixels are missing data (the store reader gives them
value 0 and inverse variance 0).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from rail.deepdisc.errors import SceneStoreError
from rail.deepdisc.store.scenes import SceneStore


def check_training_store(store: SceneStore) -> None:
    """Refuse a training store with impossible redshifts or nothing to train on (the checks
    every use of a store makes, :meth:`SceneStore.require`).

    Raises
    ------
    SceneStoreError
        Naming the store, and the first offending object (id and scene).
    """
    store.require("training")


def split_scenes(n_scenes: int, val_fraction: float, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation scene indices (sorted), drawn from the seed."""
    order = np.random.default_rng([seed, 7]).permutation(n_scenes)
    n_val = round(val_fraction * n_scenes)
    if val_fraction > 0 and n_scenes >= 2:
        n_val = max(n_val, 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


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


class SceneTrainingData(torch.utils.data.Dataset):
    """Scenes of a store with their training targets, read scene by scene (bounded memory).

    Items are ``(i, epoch)`` pairs (see :class:`EpochSampler`): with ``augment`` the i-th
    scene is flipped and rotated with a generator seeded by ``(seed, epoch, scene)``, so the
    augmentation of a scene does not depend on which process or batch loads it. The store is
    opened on first use, so every data-loading process opens its own.

    Parameters
    ----------
    path
        Scene store.
    scenes
        Indices of the scenes to use.
    augment
        Random flips and 90-degree rotations.
    band_dropout
        Probability of zeroing one random band of a scene.
    seed
        Seed of the augmentation.
    """

    def __init__(self, path: str | os.PathLike, scenes: Sequence[int], augment: bool = False,
                 band_dropout: float = 0.0, seed: int = 0):
        self.path = os.fspath(path)
        self.scenes = np.asarray(scenes, dtype=np.int64)
        self.augment, self.band_dropout, self.seed = augment, band_dropout, seed
        self._store: SceneStore | None = None

    def __len__(self) -> int:
        return self.scenes.size

    def __getitem__(self, item: tuple[int, int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        i, epoch = item
        image, target = self.load(i)
        if self.augment:
            rng = np.random.default_rng([self.seed, 2, epoch, int(self.scenes[i])])
            image, target = augment_scene(image, target, rng, self.band_dropout)
        return image, target

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_store": None}  # a loading process opens its own

    @property
    def store(self) -> SceneStore:
        if self._store is None:
            self._store = SceneStore(self.path)
        return self._store

    def load(self, i: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Image (C, H, W) and targets of the i-th scene of this set (no augmentation)."""
        k = int(self.scenes[i])
        chunk = self.store.read_chunk(k, k + 1)
        seg = chunk.segmap[0] if chunk.segmap is not None else None
        h, w = chunk.images.shape[-2:]
        return chunk.images[0], scene_targets(chunk.scene_objects(0), seg, h, w)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


class EpochSampler(torch.utils.data.DistributedSampler):
    """torch's ``DistributedSampler`` (a seeded shuffle, each process its share, padded to
    equal shares) yielding ``(index, epoch)`` pairs for :class:`SceneTrainingData`."""

    def __iter__(self):
        epoch = self.epoch
        return ((int(i), epoch) for i in super().__iter__())


def loader(data: SceneTrainingData, batch_size: int, sampler: EpochSampler, workers: int
           ) -> torch.utils.data.DataLoader:
    """Batches (lists of ``(image, target)``) of a sampler's scenes, loaded by ``workers``
    processes of one thread each (in this process for 0)."""
    return torch.utils.data.DataLoader(
        data, batch_size=batch_size, sampler=sampler, num_workers=workers,
        collate_fn=list, persistent_workers=workers > 0,
        worker_init_fn=_init_loader_worker if workers > 0 else None)


def _init_loader_worker(worker_id: int) -> None:
    from rail.deepdisc.workers import one_thread

    one_thread()


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
