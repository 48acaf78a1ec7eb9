"""What an EAZY model learns from objects with known redshifts: the apparent-magnitude
prior p(z | m) and the bands' zero-point offsets.

:func:`train_on_labels` is the one place that does it, for ``EazyInformer`` (all labelled
objects) and for the cross-validation (:mod:`rail.deepdisc.fit.eazy_crossval`: the
labelled objects outside the held-out fold). The template grid does not depend on labels
and is shared.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rail.deepdisc.fit.eazy_model import EazyModel, training_prior
from rail.deepdisc.fit.eazy_options import EazyInputOptions, EazyModelOptions
from rail.deepdisc.fit.eazy_zeropoints import fit_zeropoints
from rail.deepdisc.magnitudes import flux_to_mag


@dataclass(frozen=True)
class LabelTraining:
    """How a model learns from labels (recorded in the model's ``meta['label_training']``).

    Attributes
    ----------
    prior
        Build p(z | m) from the labelled objects.
    prior_floor
        Floor of the normalised prior.
    zeropoints
        Fit zero points on the labelled objects.
    snr_min, iterations
        Zero-point fit settings (:func:`rail.deepdisc.fit.eazy_zeropoints.fit_zeropoints`).
    sys_err
        Systematic error of the fits.
    reference
        Index of the band whose zero point stays 1 (None: geometric mean 1).
    """

    prior: bool = True
    prior_floor: float = 0.01
    zeropoints: bool = True
    snr_min: float = 3.0
    iterations: int = 3
    sys_err: float = 0.01
    reference: int | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def label_training(opts: EazyModelOptions, bands: list[str]) -> LabelTraining:
    """What ``EazyInformer`` learns from labels, from its options."""
    return LabelTraining(
        prior=not opts.prior_file and opts.training_prior, prior_floor=opts.prior_floor,
        zeropoints=opts.zeropoints, snr_min=opts.zeropoint_snr_min,
        iterations=opts.zeropoint_iterations, sys_err=opts.sys_err,
        reference=bands.index(opts.prior_band) if opts.prior_band in bands else None)


def prior_magnitudes(data: Mapping[str, Any], column: str, opts: EazyInputOptions
                     ) -> np.ndarray:
    """AB magnitudes of the prior band from a catalog column (fluxes converted with
    ``flux_zeropoint``; RAIL's 99 / -99 magnitude sentinels become NaN)."""
    values = np.asarray(data[column], float)
    if opts.input_type == "flux":
        return flux_to_mag(values, opts.flux_zeropoint)
    return np.where((values > 0) & (values < 50), values, np.nan)


def train_on_labels(model: EazyModel, fnu: np.ndarray, efnu: np.ndarray, z: np.ndarray,
                    prior_mag: np.ndarray | None, settings: LabelTraining) -> EazyModel:
    """A copy of ``model`` with the prior and zero points learned from the labelled rows.

    Parameters
    ----------
    fnu, efnu
        (N, NFILT) photometry (linear fluxes, the model's filters).
    z
        (N,) redshifts; NaN rows are not used.
    prior_mag
        (N,) magnitudes of the prior band (needed when ``settings.prior``).
    """
    out = copy.deepcopy(model)
    z = np.asarray(z, float)
    if settings.prior:
        out.prior_mags, out.prior_data = training_prior(
            z, np.asarray(prior_mag, float), out.zgrid, floor=settings.prior_floor)
    if settings.zeropoints:
        result = fit_zeropoints(out, fnu, efnu, z, sys_err=settings.sys_err,
                                snr_min=settings.snr_min, iterations=settings.iterations,
                                reference=settings.reference)
        out.zeropoints = result.zeropoints
        out.meta["zeropoints"] = {"factors": result.zeropoints.round(6).tolist(),
                                  "measurements": result.n_used.tolist(),
                                  "objects": result.n_objects}
    out.meta["label_training"] = {**settings.to_dict(),
                                  "n_labels": int(np.isfinite(z).sum())}
    return out
