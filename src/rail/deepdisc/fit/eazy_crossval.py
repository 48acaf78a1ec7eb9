"""k-fold cross-validation of EAZY informed on labelled objects: every labelled object gets
a posterior from a model whose prior and zero points never saw its redshift.

The template grid does not depend on labels and is built once; for fold f the prior
p(z | m) and the zero points are learned (:func:`rail.deepdisc.fit.eazy_training.
train_on_labels`) from the labelled objects of the other folds, and fold f's objects are
fitted with that model. Folds come from the objects' ids
(:func:`rail.deepdisc.folds.fold_of_ids`), so they are the network's folds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from rail.deepdisc.fit.eazy_model import EazyModel
from rail.deepdisc.fit.eazy_training import LabelTraining, train_on_labels
from rail.deepdisc.fit.eazyfit import FitResult, fit

log = logging.getLogger(__name__)


@dataclass
class EazyCrossValidation:
    """Out-of-fold fits of the labelled rows (in input order) and each fold's model facts.

    Attributes
    ----------
    rows
        Input rows of the labelled objects.
    result
        Their fits (:class:`rail.deepdisc.fit.eazyfit.FitResult`), row for row.
    fold
        Their folds.
    folds
        Per fold: its index, labels used and zero points (JSON-able).
    """

    rows: np.ndarray
    result: FitResult
    fold: np.ndarray
    folds: list[dict[str, Any]]


def cross_validate(model: EazyModel, fnu: np.ndarray, efnu: np.ndarray, z: np.ndarray,
                   prior_mag: np.ndarray | None, fold: np.ndarray, settings: LabelTraining, *,
                   sys_err: float = 0.01, n_workers: int = 1) -> EazyCrossValidation:
    """Fit each fold's labelled objects with a model trained on the other folds' labels.

    Parameters
    ----------
    model
        The EAZY model (its grid is used; its prior and zero points are re-learned per
        fold as ``settings`` says).
    fnu, efnu
        (N, NFILT) photometry.
    z
        (N,) redshifts (NaN: unlabelled).
    prior_mag
        (N,) prior-band magnitudes (for the prior and the fit's prior term).
    fold
        (N,) fold of each labelled row (ignored where ``z`` is NaN).
    """
    z = np.asarray(z, float)
    fold = np.asarray(fold, np.int64)
    labelled = np.flatnonzero(np.isfinite(z))
    parts: list[tuple[np.ndarray, FitResult]] = []
    folds = []
    for f in np.unique(fold[labelled]):
        zf = np.where(fold == f, np.nan, z)  # fold f's labels are never seen
        fold_model = train_on_labels(model, fnu, efnu, zf, prior_mag, settings)
        rows = labelled[fold[labelled] == f]
        res = fit(fold_model, fnu[rows], efnu[rows], sys_err=sys_err,
                  prior_mag=None if prior_mag is None else prior_mag[rows], n_workers=n_workers)
        parts.append((rows, res))
        folds.append({"fold": int(f), "n_labels": int(np.isfinite(zf).sum()),
                      "n_estimated": int(rows.size),
                      "zeropoints": np.asarray(fold_model.zeropoints).round(6).tolist()})
        log.info("EAZY fold %d: trained on %d labels, fitted %d objects", f,
                 int(np.isfinite(zf).sum()), rows.size)
    rows = np.concatenate([r for r, _ in parts])
    order = np.argsort(rows)
    result = FitResult(
        zgrid=model.zgrid,
        lnp=np.concatenate([p.lnp for _, p in parts])[order],
        chi2=np.concatenate([p.chi2 for _, p in parts])[order],
        n_filters=np.concatenate([p.n_filters for _, p in parts])[order],
        fitted=np.concatenate([p.fitted for _, p in parts])[order])
    rows = rows[order]
    return EazyCrossValidation(rows=rows, result=result, fold=fold[rows], folds=folds)
