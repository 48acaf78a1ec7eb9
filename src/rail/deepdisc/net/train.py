"""Training DeepDISC on a scene store: the loop, its schedule and its checkpoints.

Everything is reproducible from the seed: the train/validation split, the shuffling and the
augmentation of every epoch are drawn from generators seeded by ``(seed, epoch, batch)``,
and the validation pass does not touch the training random stream. With a
``checkpoint_dir`` a checkpoint is written after every epoch (model, optimiser, schedule,
random state, history); a run started again with the same configuration resumes from it and
ends with the same weights as an uninterrupted run. A loss that becomes non-finite stops the
run with a :class:`~rail.deepdisc.errors.TrainingError`; nothing is written.

Scenes are loaded (and augmented) by a ``DataLoader``, in worker processes of one thread
each where that helps (``loader_workers``; on a GPU by default). With ``nproc`` > 1, or
under ``torchrun``, training is distributed data parallel (:mod:`rail.deepdisc.net.
distributed`): each process takes its share of every epoch's scenes (torch's
``DistributedSampler``), gradients are averaged, rank 0 writes the checkpoints and returns
the model. On CUDA the forward pass runs in bf16 autocast (``mixed_precision``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rail.deepdisc.errors import InputError, ModelFileError, TrainingError
from rail.deepdisc.net import distributed
from rail.deepdisc.net.architectures import architecture
from rail.deepdisc.net.calibrate import calibrate_widths, training_density
from rail.deepdisc.net.config import TrainConfig
from rail.deepdisc.net.data import (
    EpochSampler,
    SceneTrainingData,
    check_training_store,
    loader,
    noise_scales,
    split_scenes,
    to_torch,
)
from rail.deepdisc.net.device import resolve_device, set_threads
from rail.deepdisc.net.distributed import DistContext
from rail.deepdisc.net.model_file import build_from_state, model_meta, read_model_file
from rail.deepdisc.net.network import DeepDiscNet
from rail.deepdisc.net.recalibrate import calibrate_on_store, calibration_scenes
from rail.deepdisc.store.atomic import atomic_output
from rail.deepdisc.store.provenance import package_versions
from rail.deepdisc.store.scenes import SceneStore

log = logging.getLogger(__name__)

#: the file of a run's checkpoint in ``checkpoint_dir`` (replaced atomically each epoch)
CHECKPOINT_NAME = "last.pt"


def checkpoint_file(checkpoint_dir: str | os.PathLike) -> str:
    """The checkpoint a run with this ``checkpoint_dir`` writes (an output of the run: the
    write guard refuses it if it is an input, a directory or unwritable)."""
    return os.path.join(os.fspath(checkpoint_dir), CHECKPOINT_NAME)


@dataclass
class TrainResult:
    """The trained network, the metadata and extra tensors to store with it."""

    model: DeepDiscNet
    meta: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Setup:
    """What a run needs from its store and configuration."""

    bands: list[str]
    train_idx: np.ndarray
    val_idx: np.ndarray
    n_redshifts: int
    model: DeepDiscNet
    scales: np.ndarray


def _config_hash(config: TrainConfig, store_path: str) -> str:
    payload = json.dumps({"config": config.as_dict(), "store": os.path.abspath(store_path),
                          "size": os.path.getsize(store_path)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def _summarise(loss: dict[str, torch.Tensor]) -> dict[str, float]:
    det = sum(float(v.detach()) for k, v in loss.items() if k != "loss_redshift")
    z = float(loss["loss_redshift"].detach())
    return {"total": det + z, "detection": det, "redshift": z}


#: fewest training objects with a redshift: the feature density's k-NN (k = 10) needs 12
MIN_TRAINING_LABELS = 12


def _fmt(losses: dict[str, float] | None) -> str:
    return " ".join(f"{k} {v:.3f}" for k, v in losses.items()) if losses else "-"


def _prepare(store_path: str, config: TrainConfig) -> _Setup:
    """Check the store, split it and build (or load) the network."""
    with SceneStore(store_path) as store:
        check_training_store(store)
        bands = list(store.bands)
        objects = store.objects(["scene", "redshift"])
        train_idx, val_idx = split_scenes(store.n_scenes, config.val_fraction, config.seed)
        if config.labelled_scenes_only:
            labelled = np.unique(objects["scene"][np.isfinite(objects["redshift"])])
            train_idx = train_idx[np.isin(train_idx, labelled)]
            val_idx = val_idx[np.isin(val_idx, labelled)]
        if train_idx.size == 0:
            raise InputError(f"{store_path}: no scenes left for training")
        z_train = objects["redshift"][np.isin(objects["scene"], train_idx)]
        z_known = z_train[np.isfinite(z_train)]
        if z_known.size < MIN_TRAINING_LABELS:
            raise InputError(f"{store_path}: {z_known.size} objects of the training scenes "
                             f"have a known redshift; at least {MIN_TRAINING_LABELS} are "
                             "needed")
        scales = None if config.init_model else noise_scales(store, train_idx)
    if config.calibrate and config.calibration_store:  # checked before any training
        calibration_scenes(config.calibration_store, bands, None)
    torch.manual_seed(config.seed)
    if config.init_model:
        init = read_model_file(config.init_model)
        if list(model_meta(init)["bands"]) != bands:
            raise ModelFileError(f"the initial model {config.init_model} was trained on bands "
                                 f"{model_meta(init)['bands']} but {store_path} has bands "
                                 f"{bands}")
        model = build_from_state(init)
        model.roi_heads.redshift_weight = config.redshift_weight
        _reset_calibration(model, config.init_model)
        scales = model.normalizer.scale.numpy().astype(float)
    else:
        k = config.num_components
        z_init = np.quantile(z_known, (np.arange(k) + 0.5) / k).tolist()
        arch = architecture(config.backbone, num_components=k, z_init=z_init,
                            zmax=float(max(15.0, 1.2 * z_known.max())),
                            **config.arch_overrides)
        model = DeepDiscNet(arch, len(bands), config.redshift_weight)
        model.normalizer.set_scale(scales)
    return _Setup(bands, train_idx, val_idx, int(z_known.size), model, scales)


class _Loop:
    """Optimiser, schedule, data, checkpoints and epochs of one run (one process of it)."""

    def __init__(self, model: DeepDiscNet, data: SceneTrainingData, val: SceneTrainingData,
                 config: TrainConfig, device: torch.device, run_id: str, progress: bool,
                 ctx: DistContext):
        self.model, self.data, self.val, self.ctx = model, data, val, ctx
        self.config, self.device, self.run_id = config, device, run_id
        self.progress = progress and ctx.is_main
        self.net = model
        if ctx.active:
            self.net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=config.freeze_backbone_epochs > 0)
        self.sampler = EpochSampler(data, num_replicas=ctx.world, rank=ctx.rank, shuffle=True,
                                    seed=config.seed)
        workers = config.loader_workers if config.loader_workers >= 0 else \
            (4 if device.type == "cuda" else 0)
        self.batches = loader(data, config.batch_size, self.sampler, workers)
        self.steps_per_epoch = len(self.batches)
        total = self.steps_per_epoch * config.epochs
        params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=config.learning_rate,
                                     weight_decay=config.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: _lr_factor(s, total, config.warmup_steps))
        self.autocast = device.type == "cuda" and config.mixed_precision
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.ckpt = checkpoint_file(config.checkpoint_dir) if config.checkpoint_dir else None

    def resume(self) -> None:
        """Continue from this run's checkpoint, if there is one."""
        if self.ckpt is None:
            return
        if self.ctx.is_main:
            os.makedirs(self.config.checkpoint_dir, exist_ok=True)
        self.ctx.barrier()
        if not os.path.exists(self.ckpt):
            return
        state = torch.load(self.ckpt, map_location="cpu", weights_only=True)
        if state.get("run_id") != self.run_id:
            log.warning("ignoring checkpoint %s of another run", self.ckpt)
            return
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"][self.ctx.rank])
        self.history = json.loads(state["history"])
        self.start_epoch = int(state["epoch"])
        log.info("resuming from %s after epoch %d", self.ckpt, self.start_epoch)

    def _losses(self, batch: list) -> dict[str, torch.Tensor]:
        images, targets = to_torch(batch, self.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.net(images, targets)
        return {k: v.float() for k, v in loss.items()}

    def epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training scenes; returns the mean losses."""
        from tqdm.auto import tqdm

        c = self.config
        for p in self.model.backbone.parameters():
            p.requires_grad_(epoch >= c.freeze_backbone_epochs)
        self.net.train()
        self.sampler.set_epoch(epoch)
        sums: dict[str, float] = {}
        bar = tqdm(self.batches, desc=f"epoch {epoch + 1}/{c.epochs}", unit="batch",
                   disable=not self.progress, leave=False)
        for step, batch in enumerate(bar):
            loss = self._losses(batch)
            total = sum(loss.values())
            if not torch.isfinite(total):
                raise TrainingError(
                    f"the training loss became {float(total.detach())} at epoch {epoch + 1}, "
                    f"batch {step + 1} ({_fmt(_summarise(loss))}); no model was written. "
                    "Check the input scenes, or lower learning_rate")
            self.opt.zero_grad(set_to_none=True)
            total.backward()
            if c.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
            self.opt.step()
            self.sched.step()
            for key, value in _summarise(loss).items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix(loss=f"{float(total.detach()):.3f}")
        sums = self.ctx.sum({**sums, "_n": float(self.steps_per_epoch)})
        n = sums.pop("_n")
        return {k: v / max(n, 1) for k, v in sums.items()}

    @torch.no_grad()
    def validate(self, epoch: int) -> dict[str, float] | None:
        """Mean losses on the validation scenes (each process its share), without
        disturbing the training random stream."""
        if len(self.val) == 0:
            return None
        rng_state = torch.get_rng_state()
        torch.manual_seed(self.config.seed + 10_000 + epoch)
        self.model.train()
        sums: dict[str, float] = {}
        n = 0
        size = self.config.batch_size
        mine = range(self.ctx.rank * size, len(self.val), size * self.ctx.world)
        for start in mine:
            batch = [self.val.load(i) for i in range(start, min(start + size, len(self.val)))]
            for key, value in _summarise(self._losses_of(batch)).items():
                sums[key] = sums.get(key, 0.0) + value
            n += 1
        torch.set_rng_state(rng_state)
        sums = self.ctx.sum({**{k: sums.get(k, 0.0) for k in ("total", "detection",
                                                              "redshift")}, "_n": float(n)})
        n_all = sums.pop("_n")
        return {k: v / max(n_all, 1) for k, v in sums.items()}

    def _losses_of(self, batch: list) -> dict[str, torch.Tensor]:
        images, targets = to_torch(batch, self.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
            return {k: v.float() for k, v in self.model(images, targets).items()}

    def save_checkpoint(self, epoch: int) -> None:
        """Write this run's checkpoint after ``epoch`` epochs (rank 0, atomically)."""
        if self.ckpt is None:
            return
        rng = self.ctx.gather(torch.get_rng_state())
        if self.ctx.is_main:
            state = {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                     "scheduler": self.sched.state_dict(), "torch_rng": rng,
                     "epoch": epoch, "history": json.dumps(self.history),
                     "run_id": self.run_id}
            with atomic_output(self.ckpt, "checkpoint") as tmp:
                torch.save(state, tmp)
        self.ctx.barrier()

    def run(self) -> None:
        """All remaining epochs, logging the losses."""
        for epoch in range(self.start_epoch, self.config.epochs):
            t0 = time.perf_counter()
            train_loss = self.epoch(epoch)
            val_loss = self.validate(epoch)
            self.history.append({"epoch": epoch + 1, "train": train_loss, "val": val_loss,
                                 "seconds": time.perf_counter() - t0,
                                 "lr": float(self.sched.get_last_lr()[0])})
            if self.ctx.is_main:
                log.info("epoch %d/%d: train %s | val %s | %.0f s", epoch + 1,
                         self.config.epochs, _fmt(train_loss), _fmt(val_loss),
                         self.history[-1]["seconds"])
            self.save_checkpoint(epoch + 1)


def train(store_path: str | os.PathLike, config: TrainConfig,
          progress: bool = True) -> TrainResult:
    """Train DeepDISC on a scene store.

    Parameters
    ----------
    store_path
        Training scenes (objects without a redshift only train detection and masks).
    config
        Options (:class:`~rail.deepdisc.net.config.TrainConfig`), including the model to
        start from (``init_model``), the checkpoint directory and the number of processes.
    progress
        Show tqdm progress bars.

    Returns
    -------
    TrainResult
        The trained network (on the CPU), its metadata and extra tensors; in a distributed
        run, rank 0's (the other ranks return None).

    Raises
    ------
    InputError
        For a store with nothing to train on or impossible redshifts.
    TrainingError
        If the loss becomes non-finite.
    """
    config.validate()
    store_path = os.fspath(store_path)
    if config.nproc > 1 and distributed.environment_world() == 1:
        return distributed.launch(_train_process, config.nproc, store_path, config, progress)
    return _train_process(store_path, config, progress)


def _train_process(store_path: str, config: TrainConfig, progress: bool
                   ) -> TrainResult | None:
    """One process of a (possibly distributed) training run."""
    device = resolve_device(config.compute.device)
    ctx = distributed.setup(device.type)
    try:
        if device.type == "cuda" and ctx.active:
            device = torch.device("cuda", ctx.local_rank)
            torch.cuda.set_device(device)
        threads = set_threads(config.compute.num_threads)
        setup = _prepare(store_path, config)
        model = setup.model.to(device)
        data = SceneTrainingData(store_path, setup.train_idx, augment=config.augment,
                                 band_dropout=config.band_dropout, seed=config.seed)
        val = SceneTrainingData(store_path, setup.val_idx)
        loop = _Loop(model, data, val, config, device, _config_hash(config, store_path),
                     progress, ctx)
        loop.resume()
        if ctx.is_main:
            log.info("training %s on %d scenes (%d for validation), %d objects with redshift, "
                     "%d epochs, %d process(es), device %s, %d threads each",
                     model.arch["backbone"], len(data), len(val), setup.n_redshifts,
                     config.epochs, ctx.world, device, threads)
        t_start = time.perf_counter()
        loop.run()
        if not ctx.is_main:
            return None
        try:
            density = training_density(model, data, config.batch_size, device)
            calibration = _calibrate(model, val, config, device, setup.bands)
        finally:
            data.close()
            val.close()
        meta = _metadata(setup, config, store_path, loop.history, calibration, density,
                         time.perf_counter() - t_start, device, threads, ctx.world)
        model.eval()
        return TrainResult(model=model.cpu(), meta=meta,
                           extras={"feature_density": density.to_state()})
    finally:
        distributed.teardown(ctx)


def _reset_calibration(model: DeepDiscNet, source: str) -> None:
    """Train from an initial model's uncalibrated outputs (width factor 1, no mean shift), as
    its own training did: its calibration was fitted to its weights on other data, and is
    refitted after this training (``calibrate``)."""
    head = model.roi_heads.redshift_head
    scale, shift = float(head.width_scale), float(head.z_shift)
    if scale != 1.0 or shift != 0.0:
        log.info("the PDF calibration of %s (widths x %.3f, means shifted by %+.4f) is not "
                 "carried into training", source, scale, shift)
    head.width_scale.fill_(1.0)
    head.z_shift.fill_(0.0)


def _calibrate(model: DeepDiscNet, val: SceneTrainingData, config: TrainConfig,
               device: torch.device, bands: list[str]) -> dict[str, Any] | None:
    if config.calibrate and config.calibration_store:
        return calibrate_on_store(model, config.calibration_store, bands,
                                  batch_size=config.batch_size, device=device)
    if not (config.calibrate and len(val)):
        return None
    calibration = calibrate_widths(model, val, config.batch_size, device)
    if calibration["nll_before"] is None:
        log.info("PDF widths not calibrated: only %d validation objects have a redshift",
                 calibration["n_objects"])
    else:
        log.info("PDF widths x %.3f (validation NLL %.3f -> %.3f on %d objects)",
                 calibration["width_scale"], calibration["nll_before"],
                 calibration["nll_after"], calibration["n_objects"])
    return calibration


def _metadata(setup: _Setup, config: TrainConfig, store_path: str, history: list,
              calibration: dict[str, Any] | None, density, seconds: float,
              device: torch.device, threads: int, processes: int) -> dict[str, Any]:
    model = setup.model
    return {
        "bands": setup.bands,
        "normalization": {"kind": "asinh", "scale": [float(s) for s in setup.scales],
                          "softening": model.normalizer.softening,
                          "stretch_range": model.normalizer.stretch_range},
        "z_range": [0.0, float(model.arch["zmax"])],
        "calibration": calibration,
        "training": {
            "store": os.path.abspath(store_path),
            "n_train_scenes": len(setup.train_idx), "n_val_scenes": len(setup.val_idx),
            "n_train_redshifts": setup.n_redshifts, "config": config.as_dict(),
            "history": history, "seconds": seconds, "device": str(device),
            "threads": threads, "processes": processes,
            "initial_model": os.path.abspath(config.init_model) if config.init_model else None,
        },
        "versions": package_versions(),
        "feature_density": {"k": density.k, "quantile": density.quantile,
                            "n_bank": int(density.bank.shape[0]),
                            "columns": list(density.columns or ())},
    }
