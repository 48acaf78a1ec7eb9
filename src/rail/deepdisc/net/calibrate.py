"""After training: the PDF calibration and the training set's feature density.

:func:`calibrate_widths` fits one factor on every mixture width so that the validation
objects' PIT is calibrated (maximum likelihood; run at the end of every training);
:func:`calibrate_pdfs` fits that factor and one shift of every mixture mean in ln(1+z) on
the labelled objects of any scene store (``rail-deepdisc calibrate``: e.g. a randomised
pretraining recalibrated on an unrandomised simulation of the user's survey);
:func:`training_density` keeps the photometric features of the labelled training objects for
the out-of-distribution flag.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from rail.deepdisc.net import features
from rail.deepdisc.net.data import SceneTrainingData
from rail.deepdisc.net.density import FeatureDensity
from rail.deepdisc.net.heads import mixture_nll
from rail.deepdisc.net.network import DeepDiscNet

#: fewest validation objects with a redshift for a width calibration
MIN_CALIBRATION_OBJECTS = 20
#: bounds of the fitted width factor and of the mean shift in ln(1+z)
WIDTH_SCALE_BOUNDS = (0.3, 3.0)
Z_SHIFT_BOUND = 0.3


class Mixtures(NamedTuple):
    """Redshift mixtures of labelled objects and their true redshifts, each (N, K) or (N,)."""

    log_weights: Tensor
    means: Tensor
    stds: Tensor
    redshifts: Tensor


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
    return FeatureDensity.fit(np.concatenate(feats),
                              columns=features.core_snr_columns(model.n_bands))


@torch.no_grad()
def labelled_mixtures(model: DeepDiscNet, data: SceneTrainingData, batch_size: int,
                      device: torch.device, progress: bool = False) -> Mixtures:
    """The network's mixtures (forced on the catalog boxes) of the objects with a redshift."""
    from tqdm.auto import tqdm

    model.eval()
    parts = []
    for start in tqdm(range(0, len(data), batch_size), desc="calibration mixtures",
                      unit="batch", disable=not progress):
        batch = [data.load(i) for i in range(start, min(start + batch_size, len(data)))]
        images = torch.from_numpy(np.stack([b[0] for b in batch])).to(device)
        boxes = [torch.from_numpy(t["boxes"]).to(device) for _, t in batch]
        z = torch.from_numpy(np.concatenate([t["redshifts"] for _, t in batch]))
        outs = model.forced(images, boxes)
        known = torch.isfinite(z)
        parts.append(Mixtures(*(torch.cat([o[key] for o in outs]).cpu()[known] for key in
                                ("z_log_weights", "z_means", "z_stds")), z[known]))
    return Mixtures(*(torch.cat(column) for column in zip(*parts, strict=True)))


def recalibrated(mix: Mixtures, width_scale: float, z_shift: float, log_zmax: float
                 ) -> Mixtures:
    """The mixtures as the head gives them with ``width_scale`` and ``z_shift`` set (means
    shifted in ln(1+z) within [0, zmax], widths scaled and kept proportional to 1 + z)."""
    if z_shift == 0.0:
        return Mixtures(mix.log_weights, mix.means, mix.stds * width_scale, mix.redshifts)
    means = torch.expm1((torch.log1p(mix.means) + z_shift).clamp(0.0, log_zmax))
    stds = mix.stds * width_scale * (1.0 + means) / (1.0 + mix.means)
    return Mixtures(mix.log_weights, means, stds, mix.redshifts)


def fit_calibration(mix: Mixtures, log_zmax: float, fit_shift: bool = True
                    ) -> dict[str, float]:
    """The width factor (and the mean shift in ln(1+z)) minimising the mean negative
    log-likelihood of the true redshifts; with the likelihoods before and after. The fit
    runs in double precision (the optimiser's finite differences need it)."""
    from scipy.optimize import minimize, minimize_scalar

    mix = Mixtures(*(column.double() for column in mix))

    def nll(log_scale: float, shift: float = 0.0) -> float:
        m = recalibrated(mix, float(np.exp(log_scale)), shift, log_zmax)
        return float(mixture_nll(m.log_weights, m.means, m.stds, m.redshifts).mean())

    log_bounds = tuple(np.log(WIDTH_SCALE_BOUNDS))
    if fit_shift:
        res = minimize(lambda p: nll(p[0], p[1]), np.zeros(2), method="L-BFGS-B",
                       bounds=[log_bounds, (-Z_SHIFT_BOUND, Z_SHIFT_BOUND)])
        log_scale, shift = (float(v) for v in res.x)
    else:
        res = minimize_scalar(nll, bounds=log_bounds, method="bounded")
        log_scale, shift = float(res.x), 0.0
    return {"width_scale": float(np.exp(log_scale)), "z_shift": shift,
            "n_objects": int(mix.redshifts.numel()), "nll_before": nll(0.0),
            "nll_after": float(res.fun)}


def calibrate_widths(model: DeepDiscNet, val: SceneTrainingData, batch_size: int,
                     device: torch.device) -> dict[str, float | None]:
    """Fit one factor for every mixture width on the validation objects (NLL-optimal).

    The network's mixtures for the validation objects (their catalog boxes) are computed
    once; the factor ``s`` scaling all standard deviations is the one minimising the mean
    negative log-likelihood of the true redshifts, and is stored in the redshift head (a
    mean shift the model carries is kept). With fewer than :data:`MIN_CALIBRATION_OBJECTS`
    such objects the factor stays 1 and the likelihoods are None.
    """
    head = model.roi_heads.redshift_head
    head.width_scale.fill_(1.0)
    mix = labelled_mixtures(model, val, batch_size, device)
    if mix.redshifts.numel() < MIN_CALIBRATION_OBJECTS:
        return {"width_scale": 1.0, "n_objects": int(mix.redshifts.numel()),
                "nll_before": None, "nll_after": None}
    fit = fit_calibration(mix, head.log_zmax, fit_shift=False)
    head.width_scale.fill_(fit["width_scale"])
    return {k: fit[k] for k in ("width_scale", "n_objects", "nll_before", "nll_after")}


def calibrate_pdfs(model: DeepDiscNet, data: SceneTrainingData, batch_size: int,
                   device: torch.device, fit_shift: bool = True, progress: bool = False
                   ) -> dict[str, float]:
    """Refit the head's width factor and mean shift on the labelled objects of ``data``.

    Both are reset (1 and 0) before the network's mixtures are computed, so the fit replaces
    any earlier calibration; without ``fit_shift`` only the widths are fitted. The caller
    checks that there are at least :data:`MIN_CALIBRATION_OBJECTS` labelled objects.
    """
    head = model.roi_heads.redshift_head
    head.width_scale.fill_(1.0)
    head.z_shift.fill_(0.0)
    fit = fit_calibration(labelled_mixtures(model, data, batch_size, device, progress),
                          head.log_zmax, fit_shift)
    head.width_scale.fill_(fit["width_scale"])
    head.z_shift.fill_(fit["z_shift"])
    return fit
