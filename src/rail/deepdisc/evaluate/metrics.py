"""Photo-z and detection metrics, defined once for tests, benchmarks and reports.

With Delta = (z_phot - z_true) / (1 + z_true) and z_phot = zmode unless stated
(docs/architecture.md):

* ``sigma_iqr`` = IQR(Delta) / 1.349
* ``bias`` = median(Delta)
* ``outlier_rate`` = fraction with |Delta| > 0.15
* ``sigma_mad`` = 1.4826 median(|Delta - median(Delta)|) (sigma_NMAD)
* ``outlier_rate_rail`` = fraction with |Delta| > max(0.06, 3 sigma_IQR), RAIL's
  ``PointOutlierRate`` definition, reported beside the fixed cut.
* PIT KS / CvM / AD statistics from qp's PIT; the CDE loss from qp; the Brier score on bin
  probabilities (see :func:`brier_score`).

Detection: a detection matches an object at IoU >= 0.5, one to one, highest score first;
completeness and purity at score >= 0.5 (see :mod:`rail.deepdisc.evaluate.matching`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

OUTLIER_CUT = 0.15


def point_metrics(z_phot: np.ndarray, z_true: np.ndarray) -> dict[str, float]:
    """Point-estimate metrics over objects with finite photo-z and true redshift.

    Parameters
    ----------
    z_phot, z_true
        Photometric point estimates and true (or spectroscopic) redshifts.

    Returns
    -------
    dict
        ``n``, ``sigma_iqr``, ``bias``, ``outlier_rate``, ``sigma_mad``,
        ``outlier_rate_rail`` (NaN when no object is usable).
    """
    z_phot = np.asarray(z_phot, float).ravel()
    z_true = np.asarray(z_true, float).ravel()
    if z_phot.shape != z_true.shape:
        raise ValueError(f"z_phot has {z_phot.size} values but z_true {z_true.size}")
    ok = np.isfinite(z_phot) & np.isfinite(z_true)
    return delta_metrics((z_phot[ok] - z_true[ok]) / (1.0 + z_true[ok]))


def delta_metrics(dz: np.ndarray) -> dict[str, float]:
    """The point metrics of normalised errors Delta = (z_phot - z_true) / (1 + z_true)."""
    dz = np.asarray(dz, float).ravel()
    if dz.size == 0:
        return {"n": 0, "sigma_iqr": np.nan, "bias": np.nan, "outlier_rate": np.nan,
                "sigma_mad": np.nan, "outlier_rate_rail": np.nan}
    q25, med, q75 = np.percentile(dz, [25, 50, 75])
    sigma_iqr = (q75 - q25) / 1.349
    return {
        "n": int(dz.size),
        "sigma_iqr": float(sigma_iqr),
        "bias": float(med),
        "outlier_rate": float(np.mean(np.abs(dz) > OUTLIER_CUT)),
        "sigma_mad": float(1.4826 * np.median(np.abs(dz - med))),
        "outlier_rate_rail": float(np.mean(np.abs(dz) > max(0.06, 3.0 * sigma_iqr))),
    }


def pit_metrics(ensemble, z_true: np.ndarray, n_quant: int = 101) -> dict[str, float]:
    """PIT-based calibration metrics (KS, CvM, AD statistics) with qp."""
    from qp.metrics.pit import PIT

    z_true = np.asarray(z_true, float)
    pit = PIT(ensemble, z_true, np.linspace(0.0, 1.0, n_quant))
    out = {}
    for name, fn in (("pit_ks", pit.evaluate_PIT_KS), ("pit_cvm", pit.evaluate_PIT_CvM),
                     ("pit_ad", pit.evaluate_PIT_anderson_ksamp)):
        try:
            out[name] = float(fn().statistic)
        except Exception:
            out[name] = np.nan
    out["pit_outlier_rate"] = float(pit.evaluate_PIT_outlier_rate())
    return out


def default_zgrid(z_true: np.ndarray) -> np.ndarray:
    """The redshift grid of the PDF metrics when none is given: 0 to the larger of 6 and
    1.1 x the largest true redshift, 301 points."""
    return np.linspace(0.0, max(6.0, float(np.nanmax(z_true)) * 1.1), 301)


def cde_loss(ensemble, z_true: np.ndarray, zgrid: np.ndarray) -> float:
    """The conditional density estimation loss (Izbicki & Lee 2017) with qp."""
    from qp.metrics.concrete_metric_classes import CDELossMetric

    metric = CDELossMetric(eval_grid=np.asarray(zgrid, float))
    return float(metric.evaluate(ensemble, np.asarray(z_true, float)))


def cde_loss_terms(ensemble, z_true: np.ndarray, zgrid: np.ndarray) -> np.ndarray:
    """Each object's term of the CDE loss, ``int p(z)^2 dz - 2 p(z_true)``, evaluated as qp's
    ``CDELossMetric`` does (trapezoid rule on ``zgrid``, p at the grid point nearest
    z_true): their mean is :func:`cde_loss`, so they can be resampled (bootstrap)."""
    z_true = np.asarray(z_true, float)
    grid = np.asarray(zgrid, float)
    pdf = np.asarray(ensemble.pdf(grid), float).reshape(z_true.size, grid.size)
    right = np.clip(np.searchsorted(grid, z_true), 1, grid.size - 1)
    nearest = np.where(np.abs(grid[right - 1] - z_true) <= np.abs(grid[right] - z_true),
                       right - 1, right)
    return np.trapezoid(pdf ** 2, grid, axis=1) - 2.0 * pdf[np.arange(z_true.size), nearest]


def brier_score(ensemble, z_true: np.ndarray, zmax: float, dz: float = 0.01) -> float:
    """Brier score of the PDFs' bin probabilities on ``[0, zmax]`` in steps of ``dz``.

    ``mean_i sum_k (P_ik - 1[z_i in bin k])^2`` with ``P_ik`` the probability of bin k
    (CDF differences), a value in [0, 2]. (qp's ``calculate_brier`` compares PDF
    *densities* with the one-hot truth, which scales with the grid step.)
    """
    z_true = np.asarray(z_true, float)
    edges = np.arange(0.0, zmax + dz, dz)
    cdf = ensemble.cdf(edges)
    prob = np.diff(cdf, axis=1)
    truth = np.zeros_like(prob)
    k = np.clip(np.searchsorted(edges, z_true, side="right") - 1, 0, prob.shape[1] - 1)
    truth[np.arange(z_true.size), k] = 1.0
    return float(np.mean(np.sum((prob - truth) ** 2, axis=1)))


def photoz_metrics(ensemble, z_true: np.ndarray, z_phot: np.ndarray | None = None,
                   zgrid: np.ndarray | None = None) -> dict[str, Any]:
    """Point, PIT, CDE-loss and Brier metrics of an ensemble against true redshifts.

    Rows with a non-finite true redshift are left out.
    """
    z_true = np.asarray(z_true, float)
    if z_phot is None:
        z_phot = np.asarray(ensemble.ancil["zmode"]).ravel()
    known = np.flatnonzero(np.isfinite(z_true))
    out: dict[str, Any] = point_metrics(np.asarray(z_phot)[known], z_true[known])
    if out["n"] == 0:
        return out
    if known.size < z_true.size:
        ensemble, z_true = ensemble[known], z_true[known]
    out.update(pit_metrics(ensemble, z_true))
    grid = default_zgrid(z_true) if zgrid is None else zgrid
    out["cde_loss"] = cde_loss(ensemble, z_true, grid)
    out["brier"] = brier_score(ensemble, z_true, float(grid.max()))
    return out
