"""The options of DeepDISC training and estimation, defined once.

:class:`TrainConfig` is the ``DeepDiscInformer``'s configuration and the flags of
``rail-deepdisc train``; :class:`EstimateConfig` the ``DeepDiscEstimator``'s and the flags of
``rail-deepdisc estimate``. Both hold :class:`ComputeOptions` (device, threads). Importing
this module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rail.deepdisc.errors import OptionError
from rail.deepdisc.net.architectures import BACKBONES, architecture
from rail.deepdisc.options import Options, option

DEVICES = ("auto", "cpu", "cuda", "mps")
MODES = ("forced", "detect")


@dataclass(frozen=True)
class ComputeOptions(Options):
    """Where the network runs."""

    device: str = option("auto", "device: auto (CUDA, then MPS, then CPU), cpu, cuda or mps",
                         choices=DEVICES)
    num_threads: int = option(0, "CPU threads for torch (0: OMP_NUM_THREADS if set, else "
                              "the usable cores divided by the job's processes on this node)",
                              ge=0)


@dataclass(frozen=True)
class TrainConfig(Options):
    """Options of a training run. The defaults suit a few hundred 128x128 scenes."""

    backbone: str = option("resnet50_fpn", "network backbone (resnet18_fpn is the CPU "
                           "preset)", choices=BACKBONES)
    num_components: int = option(5, "Gaussians in each redshift mixture", ge=1, le=64)
    epochs: int = option(20, "training epochs", ge=1)
    batch_size: int = option(4, "scenes per training batch", ge=1)
    learning_rate: float = option(1.0e-3, "AdamW peak learning rate", gt=0)
    weight_decay: float = option(1.0e-4, "AdamW weight decay", ge=0)
    warmup_steps: int = option(100, "steps of linear learning-rate warm-up", ge=0)
    freeze_backbone_epochs: int = option(0, "first epochs with the backbone frozen "
                                         "(fine-tuning)", ge=0)
    val_fraction: float = option(0.1, "fraction of the scenes held out for validation and "
                                 "the width calibration", ge=0, lt=1)
    labelled_scenes_only: bool = option(
        False, "train and validate only on the scenes with at least one known redshift "
        "(fine-tuning on a small spectroscopic sample: every step then shows labels)")
    augment: bool = option(True, "random flips and 90-degree rotations")
    band_dropout: float = option(0.0, "probability of zeroing one random band of a scene",
                                 ge=0, lt=1)
    redshift_weight: float = option(1.0, "weight of the redshift NLL in the total loss", ge=0)
    grad_clip: float = option(10.0, "largest gradient norm (0: no clipping)", ge=0)
    calibrate: bool = option(True, "after training, fit one factor on all mixture widths on "
                             "the validation scenes")
    calibration_store: str = option("", "scene store whose labelled objects calibrate the "
                                    "PDFs after training instead (widths and a mean shift in "
                                    "ln(1+z)), e.g. an unrandomised simulation of the survey "
                                    "after a randomised pretraining", path=True)
    seed: int = option(0, "random seed (split, initialisation, shuffling, augmentation)")
    init_model: str = option("", "model file to start from (pre-training, then fine-tuning; "
                             "same bands)", path=True)
    checkpoint_dir: str = option("", "directory of per-epoch checkpoints, from which an "
                                 "interrupted run resumes ('' for none)")
    arch_overrides: dict[str, Any] = option({}, "architecture entries to change, e.g. "
                                            "stem=fine photometry_pool=12", flag="arch",
                                            metavar="KEY=VALUE")
    nproc: int = option(1, "training processes on this machine (distributed data parallel: "
                        "gloo on CPU, NCCL on CUDA; under torchrun, its processes)", ge=1)
    loader_workers: int = option(-1, "data-loading processes per training process (-1: 4 "
                                 "on a GPU, none on a CPU)", ge=-1)
    mixed_precision: bool = option(True, "bf16 autocast on CUDA")
    compute: ComputeOptions = field(default_factory=ComputeOptions)

    def _check(self) -> None:
        architecture(self.backbone, num_components=self.num_components, **self.arch_overrides)
        if self.freeze_backbone_epochs > self.epochs:
            raise OptionError(f"freeze_backbone_epochs ({self.freeze_backbone_epochs}) is more "
                              f"than epochs ({self.epochs})")


@dataclass(frozen=True)
class EstimateConfig(Options):
    """Options of an estimation run."""

    mode: str = option("forced", "forced: one row per object of the input, from its boxes; "
                       "detect: one row per detection", choices=MODES)
    score_threshold: float = option(0.05, "lowest detection score kept (detect mode)",
                                    ge=0, lt=1)
    nms_threshold: float = option(0.5, "IoU of non-maximum suppression (detect mode)",
                                  gt=0, le=1)
    batch_size: int = option(8, "scenes per inference batch", ge=1)
    chunk_size: int = option(2000, "objects read at a time (whole scenes)", ge=1)
    match_radius: float = option(0.1, "arcsec; matches detections to objects that have no "
                                 "box", ge=0)
    zmin: float = option(0.0, "lower end of the grid of zmode and zmedian", ge=0)
    zmax: float = option(15.0, "upper end of the grid of zmode and zmedian", gt=0)
    nzbins: int = option(1501, "points of the grid of zmode and zmedian", ge=2, le=1_000_000)
    deduplicate: bool = option(True, "detect mode on a tiled mosaic: one row per source "
                               "(drop the copies from overlapping tiles)")
    compute: ComputeOptions = field(default_factory=ComputeOptions)

    def _check(self) -> None:
        if not self.zmax > self.zmin:
            raise OptionError(f"zmax ({self.zmax}) must be larger than zmin ({self.zmin})")

    @property
    def zgrid(self) -> np.ndarray:
        """The grid on which ``zmode`` and ``zmedian`` are found."""
        return np.linspace(self.zmin, self.zmax, self.nzbins)
