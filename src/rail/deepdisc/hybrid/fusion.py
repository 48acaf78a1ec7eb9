"""PDF fusion: several estimators' p(z) of the same objects multiplied with fitted exponents.

For each object,

    log q(z) = sum_k alpha_k log p_k(z) + const,

where the ``p_k`` are the methods' PDFs on one grid (:mod:`rail.deepdisc.hybrid.grid`): the
image network's, template fitting's, the photometry network's. With every ``alpha_k = 1``
this is Bayes' rule for independent measurements sharing a flat prior; fitted exponents
below 1 temper a method that is over-confident or shares information with another (all
read the same photons), above 1 sharpen an under-confident one, and an exponent near 0
switches off a method that does not help (e.g. a network trained on other galaxies than
the field's). Two designs:

``product``
    One exponent per method for all objects.
``gated``
    Each exponent a function of the object, ``softplus(theta_k . x)`` with ``x`` = (1, the
    standardised covariates: log S/N, blend fraction, out-of-distribution score, the
    template fit's log chi-square per band), so a method's weight can follow where it is
    reliable.

Exponents are fitted by maximum likelihood of the known redshifts (the mean log q at the
true z, a proper score), with a small ridge on the gate coefficients, by L-BFGS-B. The
method with exponent 1 and every other at 0 (:func:`image_only`) returns the first PDFs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.hybrid.options import DESIGNS

log = logging.getLogger(__name__)

#: per-object covariates of the gated design: name -> (input index, ancil column)
GATE_FEATURES = {"log_snr": (0, "snr"), "blend": (0, "blend"), "ood_score": (0, "ood_score"),
                 "log_chi2": (1, "chi2")}
#: softplus(_UNIT) = 1: the starting value of every exponent
_UNIT = float(np.log(np.e - 1.0))
#: ridge on the gate coefficients (not on the intercepts)
RIDGE = 1e-3
#: fewest labelled objects a fit needs
MIN_OBJECTS = 20


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x), computed without overflow."""
    return np.logaddexp(0.0, x)


@dataclass
class FusionWeights:
    """Fitted fusion: the design, the coefficients and how covariates are standardised.

    Attributes
    ----------
    design
        ``product`` or ``gated``.
    theta
        (K, 1 + F) coefficients of each method's exponent on (1, covariates).
    features
        The covariate names (:data:`GATE_FEATURES`; empty for ``product``).
    center, scale
        Standardisation of the covariates (fitted on the training rows).
    n_fit, mean_log_likelihood
        Objects the fit used and its mean log q at their redshifts.
    """

    design: str
    theta: np.ndarray
    features: list[str] = field(default_factory=list)
    center: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_fit: int = 0
    mean_log_likelihood: float = float("nan")

    def exponents(self, covariates: np.ndarray | None, n: int) -> np.ndarray:
        """(K, N) exponent of each method for ``n`` objects."""
        x = np.ones((n, 1))
        if self.features:
            z = (np.asarray(covariates, float) - self.center) / self.scale
            x = np.concatenate([x, np.nan_to_num(z)], axis=1)
        return softplus(x @ self.theta.T).T

    def central_exponents(self) -> list[float]:
        """Each method's exponent at the covariates' centre."""
        return softplus(self.theta[:, 0]).round(4).tolist()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (model files, provenance)."""
        return {"design": self.design, "theta": np.where(
            np.isfinite(self.theta), self.theta, -1e300).tolist(),
            "features": list(self.features), "center": self.center.tolist(),
            "scale": self.scale.tolist(), "n_fit": int(self.n_fit),
            "mean_log_likelihood": self.mean_log_likelihood,
            "exponents": self.central_exponents()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusionWeights:
        return cls(design=str(d["design"]), theta=np.asarray(d["theta"], float),
                   features=list(d.get("features", [])),
                   center=np.asarray(d.get("center", []), float),
                   scale=np.asarray(d.get("scale", []), float), n_fit=int(d.get("n_fit", 0)),
                   mean_log_likelihood=float(d.get("mean_log_likelihood", np.nan)))


def image_only(n_methods: int) -> FusionWeights:
    """The fusion that returns the first method's PDFs (the others' exponents 0)."""
    theta = np.full((n_methods, 1), -np.inf)
    theta[0, 0] = _UNIT
    return FusionWeights(design="product", theta=theta)


def fuse(logs: Sequence[np.ndarray], exponents: np.ndarray, weights: np.ndarray
         ) -> np.ndarray:
    """(N, NZ) normalised log q on the grid whose trapezoid weights are ``weights``."""
    out = np.zeros_like(logs[0])
    for log_p, e in zip(logs, exponents, strict=True):
        if np.any(e > 0):
            out = out + e[:, None] * log_p
    out -= out.max(axis=1, keepdims=True)
    return out - np.log(np.exp(out) @ weights)[:, None]


def _at_truth(log_q: np.ndarray, grid: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log q interpolated linearly at each object's true redshift."""
    i = np.clip(np.searchsorted(grid, z), 1, grid.size - 1)
    t = np.clip((z - grid[i - 1]) / (grid[i] - grid[i - 1]), 0.0, 1.0)
    rows = np.arange(z.size)
    return (1 - t) * log_q[rows, i - 1] + t * log_q[rows, i]


def covariate_matrix(ensembles: Sequence[Any], features: Sequence[str]) -> np.ndarray:
    """(N, F) covariates of the gated design from the ensembles' ancillary columns.

    Raises
    ------
    InputError
        Naming a column an ensemble lacks.
    """
    cols = []
    for name in features:
        which, column = GATE_FEATURES[name]
        ancil = ensembles[which].ancil or {}
        if column not in ancil:
            raise InputError(f"the gated fusion needs the ancillary column {column!r} of "
                             f"input {which} (for {name})")
        v = np.asarray(ancil[column], float).reshape(-1)
        if name == "log_snr":
            v = np.log10(np.clip(v, 1.0, 1e4))
        elif name == "log_chi2":
            nf = np.asarray(ancil.get("n_filters", np.ones_like(v)), float).reshape(-1)
            v = np.log10(1.0 + np.clip(v, 0.0, None) / np.maximum(nf, 1.0))
        cols.append(v)
    return np.stack(cols, axis=1) if cols else np.zeros((ensembles[0].npdf, 0))


def fit_weights(logs: Sequence[np.ndarray], z: np.ndarray, grid: np.ndarray, *,
                design: str = "product", covariates: np.ndarray | None = None,
                features: Sequence[str] = (), sample_weight: np.ndarray | None = None
                ) -> FusionWeights:
    """Fit the exponents on labelled objects by maximum likelihood of their redshifts.

    Parameters
    ----------
    logs
        One (N, NZ) log PDF array on ``grid`` per method.
    z
        (N,) true redshifts; rows with NaN, or outside the grid, are left out.
    design
        ``product`` or ``gated`` (then ``covariates`` (N, F) and their ``features`` names).
    sample_weight
        (N,) non-negative weight of each object in the mean log-likelihood (None: equal),
        e.g. to make the labelled objects stand for a catalog they were not drawn like.

    Raises
    ------
    OptionError, InputError
        For an unknown design, or fewer than :data:`MIN_OBJECTS` usable labels.
    """
    from scipy.optimize import minimize

    from rail.deepdisc.hybrid.grid import trapz_weights

    if design not in DESIGNS:
        raise OptionError(f"design must be one of {list(DESIGNS)}, got {design!r}")
    z = np.asarray(z, float)
    use = np.isfinite(z) & (z >= grid[0]) & (z <= grid[-1])
    if use.sum() < MIN_OBJECTS:
        raise InputError(f"the fusion needs at least {MIN_OBJECTS} objects with a known "
                         f"redshift on the grid; {int(use.sum())} have one")
    sub = [lp[use] for lp in logs]
    z = z[use]
    weight = np.ones(z.size) if sample_weight is None else \
        np.asarray(sample_weight, float)[use]
    if np.any(~np.isfinite(weight) | (weight < 0)) or weight.sum() <= 0:
        raise InputError("sample_weight must be finite, non-negative and not all 0")
    weight = weight / weight.mean()
    feats = list(features) if design == "gated" else []
    x = np.ones((z.size, 1))
    center, scale = np.zeros(0), np.zeros(0)
    if feats:
        cov = np.asarray(covariates, float)[use]
        center = np.nanmedian(cov, axis=0)
        scale = np.nanstd(cov, axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        x = np.concatenate([x, np.nan_to_num((cov - center) / scale)], axis=1)
    w = trapz_weights(grid)
    shape = (len(logs), x.shape[1])

    def loss(p: np.ndarray) -> float:
        theta = p.reshape(shape)
        log_q = fuse(sub, softplus(x @ theta.T).T, w)
        return -float(np.mean(weight * _at_truth(log_q, grid, z))) + \
            RIDGE * float(np.sum(theta[:, 1:] ** 2))

    start = np.zeros(shape)
    start[:, 0] = _UNIT
    res = minimize(loss, start.ravel(), method="L-BFGS-B", bounds=[(-8.0, 8.0)] * start.size)
    fitted = FusionWeights(design=design, theta=res.x.reshape(shape), features=feats,
                           center=center, scale=scale, n_fit=int(z.size),
                           mean_log_likelihood=-float(res.fun))
    log.info("fusion (%s) on %d objects: mean log-likelihood %.3f, exponents at the centre %s",
             design, z.size, -res.fun, fitted.central_exponents())
    return fitted


def apply_weights(fusion: FusionWeights, logs: Sequence[np.ndarray], grid: np.ndarray,
                  covariates: np.ndarray | None = None) -> np.ndarray:
    """(N, NZ) fused p(z) on the grid (normalised)."""
    from rail.deepdisc.hybrid.grid import trapz_weights

    if fusion.theta.shape[0] != len(logs):
        raise InputError(f"the fusion was fitted for {fusion.theta.shape[0]} methods, "
                         f"{len(logs)} are given")
    e = fusion.exponents(covariates, logs[0].shape[0])
    return np.exp(fuse(logs, e, trapz_weights(grid)))


def cross_fit(logs: Sequence[np.ndarray], z: np.ndarray, fold: np.ndarray, grid: np.ndarray,
              *, design: str = "product", covariates: np.ndarray | None = None,
              features: Sequence[str] = (), sample_weight: np.ndarray | None = None
              ) -> tuple[np.ndarray, list[FusionWeights]]:
    """Out-of-fold fusion: fold f's PDFs with exponents fitted on the other folds' labels
    (``sample_weight``: see :func:`fit_weights`).

    Returns the (N, NZ) fused PDFs of every row (rows with fold < 0 get the fit on all
    labelled rows) and the fit of each fold.
    """
    fold = np.asarray(fold, np.int64)
    out = np.empty_like(logs[0])
    fits = []

    def rows_of(mask: np.ndarray):
        return [lp[mask] for lp in logs], None if covariates is None else covariates[mask]

    for f in np.unique(fold[fold >= 0]):
        zf = np.where(fold != f, z, np.nan)  # fold f's labels are never seen
        weights = fit_weights(logs, zf, grid, design=design, covariates=covariates,
                              features=features, sample_weight=sample_weight)
        part, cov = rows_of(fold == f)
        out[fold == f] = apply_weights(weights, part, grid, cov)
        fits.append(weights)
    rest = fold < 0
    if rest.any():
        weights = fit_weights(logs, z, grid, design=design, covariates=covariates,
                              features=features, sample_weight=sample_weight)
        part, cov = rows_of(rest)
        out[rest] = apply_weights(weights, part, grid, cov)
    return out, fits
