"""Out-of-distribution scores: k-nearest-neighbour density of the training set's features.

The features are a choice of ``columns`` of the photometric vector the redshift head sees for
a box (asinh S/N of the whole box and of its core in every band, and the box size); training
uses the core S/N in every band, i.e. a colour–magnitude space, as the paper's catalog does
(in the 2C + 2 dimensions of the whole vector the training set is so sparse that almost
nothing looks atypical). Standardised features of the labelled training objects are kept
with the model; an
object's score is its mean distance to its k nearest training objects over the 99th
percentile of that distance among the training objects themselves (leave-one-out), so a
score above 1 means "less typical than 99% of the training set".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from rail.deepdisc.errors import InputError


@dataclass
class FeatureDensity:
    """A k-NN density model of training features (saved with the model as tensors)."""

    bank: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    threshold: float
    k: int = 10
    quantile: float = 0.99
    columns: tuple[int, ...] | None = None

    @classmethod
    def fit(cls, features: np.ndarray, k: int = 10, quantile: float = 0.99,
            max_bank: int = 20000, seed: int = 0,
            columns: tuple[int, ...] | None = None) -> FeatureDensity:
        """Fit on training features (n, d), using ``columns`` of them (None: all); at most
        ``max_bank`` rows are kept."""
        columns = None if columns is None else tuple(int(c) for c in columns)
        x = _select(np.asarray(features, np.float64), columns)
        x = x[np.all(np.isfinite(x), axis=1)]
        if x.shape[0] <= k + 1:
            raise InputError(f"need more than {k + 1} training objects for the density, "
                             f"got {x.shape[0]}")
        if x.shape[0] > max_bank:
            x = x[np.random.default_rng(seed).choice(x.shape[0], max_bank, replace=False)]
        mean, std = x.mean(axis=0), x.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        z = (x - mean) / std
        dist, _ = cKDTree(z).query(z, k=k + 1)
        loo = dist[:, 1:].mean(axis=1)  # the nearest is the object itself
        return cls(bank=z.astype(np.float32), mean=mean, std=std,
                   threshold=float(np.quantile(loo, quantile)), k=k, quantile=quantile,
                   columns=columns)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Mean k-NN distance over the training threshold (>1: atypical); NaN rows -> inf."""
        x = _select(np.asarray(features, np.float64), self.columns)
        out = np.full(x.shape[0], np.inf)
        ok = np.all(np.isfinite(x), axis=1)
        if ok.any():
            z = (x[ok] - self.mean) / self.std
            dist, _ = cKDTree(self.bank).query(z, k=self.k)
            out[ok] = dist.reshape(z.shape[0], -1).mean(axis=1) / self.threshold
        return out

    def to_state(self) -> dict[str, Any]:
        """Tensors and numbers only (loadable with ``torch.load(weights_only=True)``)."""
        import torch

        return {"bank": torch.from_numpy(self.bank), "mean": torch.from_numpy(self.mean),
                "std": torch.from_numpy(self.std), "threshold": float(self.threshold),
                "k": int(self.k), "quantile": float(self.quantile),
                **({} if self.columns is None else
                   {"columns": torch.tensor(self.columns, dtype=torch.int64)})}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FeatureDensity:
        return cls(bank=state["bank"].numpy(), mean=state["mean"].numpy().astype(np.float64),
                   std=state["std"].numpy().astype(np.float64),
                   threshold=float(state["threshold"]), k=int(state["k"]),
                   quantile=float(state["quantile"]),
                   columns=tuple(int(c) for c in state["columns"].tolist())
                   if "columns" in state else None)


def _select(x: np.ndarray, columns: tuple[int, ...] | None) -> np.ndarray:
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (objects, features), got shape {x.shape}")
    return x if columns is None else x[:, list(columns)]
