"""PDF fusion: the image network's p(z) and template fitting's, multiplied with fitted
exponents.

For each object,

    log q(z) = alpha log p_img(z) + beta log p_tpl(z) - gamma log pi(z) + const,

where ``p_img`` is the network's PDF, ``p_tpl`` the template fitter's posterior and ``pi``
the prior the template fitter used (its p(z | m)), all on one grid
(:mod:`rail.deepdisc.hybrid.grid`). With ``alpha = beta = gamma = 1`` this is Bayes' rule
for two independent measurements that share the prior; fitted exponents below 1 temper a
method that is over-confident (the network trained on another simulator, templates that do
not match the galaxies), above 1 sharpen an under-confident one, and ``gamma`` says how much
of the prior both already carry. Two designs:

``product``
    One ``alpha``, ``beta``, ``gamma`` for all objects.
``gated``
    Each exponent a function of the object: ``softplus(theta . x)`` with ``x`` = (1, the
    standardised log S/N, the blend fraction, the out-of-distribution score, the template
    fit's log chi-square per band), so the image's weight can grow for faint or blended
    objects and shrink for objects unlike the training set, and the templates' shrink where
    no template fits.

Exponents are fitted by maximum likelihood of the known redshifts (the mean log q at the
true z, a proper score), with a small ridge on the gate coefficients, by L-BFGS-B. With the
template input switched off (:func:`image_only`) the fusion returns the image PDFs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.hybrid.options import DESIGNS

log = logging.getLogger(__name__)

#: per-object covariates of the gated design: name -> (ensemble, ancil column)
GATE_FEATURES = {"log_snr": ("image", "snr"), "blend": ("image", "blend"),
                 "ood_score": ("image", "ood_score"), "log_chi2": ("templates", "chi2")}
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
        (3, 1 + F) coefficients of alpha, beta, gamma on (1, covariates).
    features
        The covariate names (:data:`GATE_FEATURES`; empty for ``product``).
    center, scale
        Standardisation of the covariates (fitted on the training rows).
    use_prior
        Whether the template prior enters (gamma); False when none was given.
    n_fit, mean_log_likelihood
        Objects the fit used and its mean log q at their redshifts.
    """

    design: str
    theta: np.ndarray
    features: list[str] = field(default_factory=list)
    center: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0))
    use_prior: bool = True
    n_fit: int = 0
    mean_log_likelihood: float = float("nan")

    def exponents(self, covariates: np.ndarray | None, n: int) -> np.ndarray:
        """(3, N) alpha, beta, gamma of ``n`` objects."""
        x = np.ones((n, 1))
        if self.features:
            z = (np.asarray(covariates, float) - self.center) / self.scale
            x = np.concatenate([x, np.nan_to_num(z)], axis=1)
        e = softplus(x @ self.theta.T).T
        if not self.use_prior:
            e[2] = 0.0
        return e

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (model files, provenance)."""
        return {"design": self.design, "theta": self.theta.tolist(),
                "features": list(self.features), "center": self.center.tolist(),
                "scale": self.scale.tolist(), "use_prior": self.use_prior,
                "n_fit": int(self.n_fit), "mean_log_likelihood": self.mean_log_likelihood}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusionWeights:
        return cls(design=str(d["design"]), theta=np.asarray(d["theta"], float),
                   features=list(d.get("features", [])),
                   center=np.asarray(d.get("center", []), float),
                   scale=np.asarray(d.get("scale", []), float),
                   use_prior=bool(d.get("use_prior", True)), n_fit=int(d.get("n_fit", 0)),
                   mean_log_likelihood=float(d.get("mean_log_likelihood", np.nan)))


def image_only() -> FusionWeights:
    """The fusion with the template input switched off: q = p_img."""
    theta = np.full((3, 1), -np.inf)
    theta[0, 0] = _UNIT
    return FusionWeights(design="product", theta=theta, use_prior=False)


def fuse(log_img: np.ndarray, log_tpl: np.ndarray, log_prior: np.ndarray | None,
         exponents: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(N, NZ) normalised log q on the grid whose trapezoid weights are ``weights``."""
    a, b, g = (e[:, None] for e in exponents)
    out = a * log_img
    if np.any(b > 0):
        out = out + b * log_tpl
    if log_prior is not None and np.any(g > 0):
        out = out - g * log_prior
    out -= out.max(axis=1, keepdims=True)
    return out - np.log(np.exp(out) @ weights)[:, None]


def _at_truth(log_q: np.ndarray, grid: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log q interpolated linearly at each object's true redshift."""
    i = np.clip(np.searchsorted(grid, z), 1, grid.size - 1)
    t = np.clip((z - grid[i - 1]) / (grid[i] - grid[i - 1]), 0.0, 1.0)
    rows = np.arange(z.size)
    return (1 - t) * log_q[rows, i - 1] + t * log_q[rows, i]


def covariate_matrix(image: Any, templates: Any, features: list[str]) -> np.ndarray:
    """(N, F) covariates of the gated design from the two ensembles' ancillary columns.

    Raises
    ------
    InputError
        Naming a column an ensemble lacks.
    """
    ens = {"image": image, "templates": templates}
    cols = []
    for name in features:
        which, column = GATE_FEATURES[name]
        ancil = ens[which].ancil or {}
        if column not in ancil:
            raise InputError(f"the gated fusion needs the {which} ensemble's ancillary "
                             f"column {column!r} (for {name})")
        v = np.asarray(ancil[column], float).reshape(-1)
        if name == "log_snr":
            v = np.log10(np.clip(v, 1.0, 1e4))
        elif name == "log_chi2":
            nf = np.asarray(ancil.get("n_filters", np.ones_like(v)), float).reshape(-1)
            v = np.log10(1.0 + np.clip(v, 0.0, None) / np.maximum(nf, 1.0))
        cols.append(v)
    return np.stack(cols, axis=1) if cols else np.zeros((image.npdf, 0))


def fit_weights(log_img: np.ndarray, log_tpl: np.ndarray, log_prior: np.ndarray | None,
                z: np.ndarray, grid: np.ndarray, *, design: str = "product",
                covariates: np.ndarray | None = None, features: list[str] | None = None
                ) -> FusionWeights:
    """Fit the exponents on labelled objects by maximum likelihood of their redshifts.

    Parameters
    ----------
    log_img, log_tpl, log_prior
        (N, NZ) log PDFs on ``grid`` (``log_prior`` None: no prior term).
    z
        (N,) true redshifts; rows with NaN, or outside the grid, are left out.
    design
        ``product`` or ``gated`` (then ``covariates`` (N, F) and their ``features`` names).

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
    li, lt, z = log_img[use], log_tpl[use], z[use]
    lp = log_prior[use] if log_prior is not None else None
    feats = list(features or []) if design == "gated" else []
    x = np.ones((z.size, 1))
    center, scale = np.zeros(0), np.zeros(0)
    if feats:
        cov = np.asarray(covariates, float)[use]
        center = np.nanmedian(cov, axis=0)
        scale = np.nanstd(cov, axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        x = np.concatenate([x, np.nan_to_num((cov - center) / scale)], axis=1)
    w = trapz_weights(grid)
    n_terms = 3 if lp is not None else 2
    n_x = x.shape[1]

    def unpack(p: np.ndarray) -> np.ndarray:
        theta = np.full((3, n_x), -np.inf)
        theta[:n_terms] = p.reshape(n_terms, n_x)
        return theta

    def loss(p: np.ndarray) -> float:
        theta = unpack(p)
        e = softplus(x @ theta.T).T
        log_q = fuse(li, lt, lp, e, w)
        ridge = RIDGE * float(np.sum(p.reshape(n_terms, n_x)[:, 1:] ** 2))
        return -float(np.mean(_at_truth(log_q, grid, z))) + ridge

    start = np.zeros((n_terms, n_x))
    start[:, 0] = _UNIT
    res = minimize(loss, start.ravel(), method="L-BFGS-B",
                   bounds=[(-8.0, 8.0)] * start.size)
    theta = unpack(res.x)
    fitted = FusionWeights(design=design, theta=theta, features=feats, center=center,
                           scale=scale, use_prior=lp is not None, n_fit=int(z.size),
                           mean_log_likelihood=-float(res.fun))
    log.info("fusion (%s) on %d objects: mean log-likelihood %.3f, exponents at the centre "
             "alpha %.2f beta %.2f gamma %.2f", design, z.size, -res.fun,
             *softplus(theta[:, 0]) * np.array([1, 1, float(lp is not None)]))
    return fitted


def apply_weights(fusion: FusionWeights, log_img: np.ndarray, log_tpl: np.ndarray,
                  log_prior: np.ndarray | None, grid: np.ndarray,
                  covariates: np.ndarray | None = None) -> np.ndarray:
    """(N, NZ) fused p(z) on the grid (normalised)."""
    from rail.deepdisc.hybrid.grid import trapz_weights

    e = fusion.exponents(covariates, log_img.shape[0])
    return np.exp(fuse(log_img, log_tpl, log_prior if fusion.use_prior else None, e,
                       trapz_weights(grid)))


def cross_fit(log_img: np.ndarray, log_tpl: np.ndarray, log_prior: np.ndarray | None,
              z: np.ndarray, fold: np.ndarray, grid: np.ndarray, *, design: str = "product",
              covariates: np.ndarray | None = None, features: list[str] | None = None
              ) -> tuple[np.ndarray, list[FusionWeights]]:
    """Out-of-fold fusion: fold f's PDFs with exponents fitted on the other folds' labels.

    Returns the (N, NZ) fused PDFs of every row (rows with fold < 0 get the fit on all
    labelled rows) and the fit of each fold.
    """
    fold = np.asarray(fold, np.int64)
    out = np.empty_like(log_img)
    fits = []
    for f in np.unique(fold[fold >= 0]):
        train = fold != f
        zf = np.where(train, z, np.nan)  # fold f's labels are never seen
        weights = fit_weights(log_img, log_tpl, log_prior, zf, grid, design=design,
                              covariates=covariates, features=features)
        rows = fold == f
        out[rows] = apply_weights(weights, log_img[rows], log_tpl[rows],
                                  None if log_prior is None else log_prior[rows], grid,
                                  None if covariates is None else covariates[rows])
        fits.append(weights)
    rest = fold < 0
    if rest.any():
        weights = fit_weights(log_img, log_tpl, log_prior, z, grid, design=design,
                              covariates=covariates, features=features)
        out[rest] = apply_weights(weights, log_img[rest], log_tpl[rest],
                                  None if log_prior is None else log_prior[rest], grid,
                                  None if covariates is None else covariates[rest])
    return out, fits
