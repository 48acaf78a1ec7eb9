"""Named network architectures: complete, JSON-able descriptions (no torch needed).

An architecture fixes the backbone, the widths of the FPN and heads, the anchors and RoI
levels (sized for sources of a few to ~100 pixels), the RPN and RoI sampling, and the
redshift head (``num_components`` Gaussians, ``photometry_pool``, ``zmax``, ``z_init``). It is
stored in every model file, so a model rebuilds exactly; :func:`architecture` gives one by
name, with overrides.
"""

from __future__ import annotations

import copy
from typing import Any

from rail.deepdisc.errors import OptionError

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
    OptionError
        For an unknown backbone or an unknown override key.
    """
    if backbone not in ARCHITECTURES:
        raise OptionError(f"unknown backbone {backbone!r}; choose one of {list(BACKBONES)}")
    arch = copy.deepcopy(ARCHITECTURES[backbone])
    unknown = set(overrides) - set(arch)
    if unknown:
        raise OptionError(f"unknown architecture options {sorted(unknown)}; "
                         f"known: {sorted(arch)}")
    arch.update(copy.deepcopy(overrides))
    if arch["stem"] not in ("standard", "fine"):
        raise OptionError("stem must be 'standard' (stride 4) or 'fine' (stride 2, no max-pool)")
    return arch
