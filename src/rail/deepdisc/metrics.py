"""Point-estimate photo-z metrics, defined once for tests, benchmarks and reports.

With Delta = (z_phot - z_true) / (1 + z_true) (DESIGN.md):

* ``sigma_iqr`` = IQR(Delta) / 1.349
* ``bias`` = median(Delta)
* ``outlier_rate`` = fraction with |Delta| > 0.15
* ``sigma_mad`` = 1.4826 median(|Delta - median(Delta)|) (sigma_NMAD)
* ``outlier_rate_rail`` = fraction with |Delta| > max(0.06, 3 sigma_IQR), RAIL's
  ``PointOutlierRate`` definition, reported beside the fixed cut.
"""

from __future__ import annotations

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
    dz = (z_phot[ok] - z_true[ok]) / (1.0 + z_true[ok])
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
