"""After training: the PDF width calibration and the training set's feature density.

:func:`calibrate_widths` fits one factor on every mixture width so that the validation
objects' PIT is calibrated (maximum likelihood); :func:`training_density` keeps the
photometric features of the labelled training objects for the out-of-distribution flag.
"""

from __future__ import annotations

import numpy as np
import torch

from rail.deepdisc.evaluate.density import FeatureDensity
from rail.deepdisc.net import features
from rail.deepdisc.net.data import SceneTrainingData
from rail.deepdisc.net.heads import mixture_nll
from rail.deepdisc.net.network import DeepDiscNet

#: fewest validation objects with a redshift for a width calibration
MIN_CALIBRATION_OBJECTS = 20


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
def calibrate_widths(model: DeepDiscNet, val: SceneTrainingData, batch_size: int,
                     device: torch.device) -> dict[str, float]:
    """Fit one factor for every mixture width on the validation objects (NLL-optimal).

    The network's mixtures for the validation objects (their catalog boxes) are computed
    once; the factor ``s`` scaling all standard deviations is the one minimising the mean
    negative log-likelihood of the true redshifts, and is stored in the redshift head. With
    fewer than :data:`MIN_CALIBRATION_OBJECTS` such objects the factor stays 1 and the
    likelihoods are None.
    """
    from scipy.optimize import minimize_scalar

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
    if z.numel() < MIN_CALIBRATION_OBJECTS:
        return {"width_scale": 1.0, "n_objects": int(z.numel()), "nll_before": None,
                "nll_after": None}

    def nll(log_s: float) -> float:
        return float(mixture_nll(lw, mu, sd * float(np.exp(log_s)), z).mean())

    res = minimize_scalar(nll, bounds=(np.log(0.3), np.log(3.0)), method="bounded")
    scale = float(np.exp(res.x))
    head.width_scale.fill_(scale)
    return {"width_scale": scale, "n_objects": int(z.numel()), "nll_before": nll(0.0),
            "nll_after": float(res.fun)}
