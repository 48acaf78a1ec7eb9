"""Cross-validation folds of labelled objects, decided by each object's id.

Every method validated out of fold (the network, the template fitters, the hybrid that
combines them) must hold out the same objects together, although each sees the labelled
objects in another order (the training tiles, the field's tiles, a catalog). So the fold
of an object depends on its id and the seed only: a 64-bit mix (splitmix64) of the id and
the seed, modulo the number of folds. Folds are balanced to within the binomial scatter
(about ±sqrt(n/k) objects).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rail.deepdisc.errors import InputError
from rail.deepdisc.options import Options, option

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def fold_of_ids(ids: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold (0 .. k-1) of each object id, for ``k``-fold cross-validation with ``seed``.

    Raises
    ------
    InputError
        If ``k < 2`` or some fold would receive no object (too few ids).
    """
    ids = np.asarray(ids).astype(np.int64)
    if k < 2 or ids.size < k:
        raise InputError(f"{k}-fold cross-validation needs at least {max(k, 2)} labelled "
                         f"objects (there are {ids.size})")
    key = _splitmix64(np.uint64(seed) * np.uint64(0x2545F4914F6CDD1D) + np.uint64(41))
    fold = (_splitmix64(ids.view(np.uint64) ^ key) % np.uint64(k)).astype(np.int64)
    empty = np.setdiff1d(np.arange(k), fold)
    if empty.size:
        raise InputError(f"{k}-fold cross-validation of {ids.size} labelled objects leaves "
                         f"fold(s) {empty.tolist()} empty: use fewer folds")
    return fold


@dataclass(frozen=True)
class FoldOptions(Options):
    """Out-of-fold validation: how many folds, and their seed (folds by object id)."""

    folds: int = option(3, "folds of the cross-validation", ge=2, le=50)
    seed: int = option(0, "seed of the folds", ge=0)
