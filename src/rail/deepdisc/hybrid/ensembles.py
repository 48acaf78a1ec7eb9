"""The hybrid on qp ensembles: the two inputs checked and put on one grid, the fused PDFs
made into an ensemble.

The image ensemble (DeepDISC's) and the template ensemble (EAZY's or BPZ's) must describe
the same objects: the template ensemble's rows are matched to the image ensemble's by id
where both carry ids (``object_id`` or RAIL's ``id``), else taken in the same order. The
fused ensemble is a ``qp.interp`` on the fusion grid
with the image ensemble's ancillary columns (ids, positions, quality flags, known
redshifts) and its own ``zmode``, ``zmean`` and ``zmedian``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError
from rail.deepdisc.hybrid.grid import log_pdfs, redshift_grid, trapz_weights

#: ancillary columns of the image ensemble that the fused one recomputes
_RECOMPUTED = ("zmode", "zmean", "zmedian", "zbest", "chi2", "n_filters")
#: id columns, in order of preference
_ID_COLUMNS = ("object_id", "id")


@dataclass
class FusionInputs:
    """The two ensembles on one grid.

    Attributes
    ----------
    grid
        Redshift grid (uniform in ln(1 + z)).
    log_img, log_tpl
        (N, NZ) log PDFs with their floors.
    image, templates
        The ensembles themselves (for covariates and ancillary columns).
    """

    grid: np.ndarray
    log_img: np.ndarray
    log_tpl: np.ndarray
    image: Any
    templates: Any

    @property
    def redshift(self) -> np.ndarray:
        """Known redshifts (NaN where unknown) of the image ensemble's rows."""
        for ens in (self.image, self.templates):
            ancil = ens.ancil or {}
            if "redshift" in ancil:
                return np.asarray(ancil["redshift"], float).reshape(-1)
        return np.full(self.image.npdf, np.nan)


def ids_of(ens: Any) -> np.ndarray | None:
    """The ensemble's object ids, if it carries them."""
    ancil = ens.ancil or {}
    for name in _ID_COLUMNS:
        if name in ancil:
            return np.asarray(ancil[name]).reshape(-1).astype(np.int64)
    return None


def align(image: Any, templates: Any, what: str = "") -> Any:
    """The template ensemble's rows in the image ensemble's order.

    Rows are matched by id where both ensembles carry ids (every image id must be among
    the template ensemble's); otherwise both must have the same length (same order).

    Raises
    ------
    InputError
        Naming an image object the template ensemble lacks, or the two lengths.
    """
    where = f" ({what})" if what else ""
    a, b = ids_of(image), ids_of(templates)
    if a is not None and b is not None:
        if np.array_equal(a, b):
            return templates
        order = np.argsort(b, kind="stable")
        pos = np.clip(np.searchsorted(b[order], a), 0, max(b.size - 1, 0))
        found = (b.size > 0) & (b[order][pos] == a)
        if not found.all():
            bad = int(np.flatnonzero(~found)[0])
            raise InputError(f"the template ensemble has no object {a[bad]} (row {bad} of the "
                             f"image ensemble){where}: the hybrid needs both methods' PDFs "
                             "of the same objects")
        return templates[order[pos]]
    if image.npdf != templates.npdf:
        raise InputError(f"the image ensemble has {image.npdf} rows and the template "
                         f"ensemble {templates.npdf}{where}: the hybrid needs both of the "
                         "same objects, in the same order (or ids in both to match them)")
    return templates


def fusion_grid(templates: Any, zmax: float = 0.0, step: float = 0.01) -> np.ndarray:
    """The fusion grid: the template ensemble's own grid where it has one (EAZY's is
    uniform in ln(1 + z)), else uniform in ln(1 + z) up to ``zmax``."""
    meta = templates.metadata or {}
    if "xvals" in meta and not zmax:
        x = np.asarray(meta["xvals"], float).ravel()
        return redshift_grid(float(x.max()), step, max(float(x.min()), 0.0))
    if not zmax:
        raise InputError("the template ensemble has no grid of its own: give zmax")
    return redshift_grid(zmax, step)


def prepare(image: Any, templates: Any, *, floor: float, zmax: float = 0.0,
            what: str = "") -> FusionInputs:
    """Check the ensembles and evaluate both on the fusion grid."""
    templates = align(image, templates, what)
    grid = fusion_grid(templates, zmax)
    return FusionInputs(grid=grid, log_img=log_pdfs(image, grid, floor),
                        log_tpl=log_pdfs(templates, grid, floor), image=image,
                        templates=templates)


def fused_ensemble(pdf: np.ndarray, grid: np.ndarray, image: Any,
                   extra: dict[str, np.ndarray] | None = None) -> Any:
    """A ``qp.interp`` ensemble of fused PDFs with the image ensemble's ancillary columns
    and the fused point estimates."""
    import qp

    w = trapz_weights(grid)
    pdf = pdf / (pdf @ w)[:, None]
    cdf = np.concatenate([np.zeros((pdf.shape[0], 1)),
                          np.cumsum(0.5 * (pdf[:, 1:] + pdf[:, :-1]) * np.diff(grid), 1)], 1)
    median = np.array([np.interp(0.5 * c[-1], c, grid) for c in cdf])
    ens = qp.Ensemble(qp.interp, data={"xvals": grid, "yvals": pdf})
    ancil = {k: np.asarray(v).reshape(-1) for k, v in (image.ancil or {}).items()
             if k not in _RECOMPUTED and np.asarray(v).size == pdf.shape[0]}
    ancil.update(zmode=grid[np.argmax(pdf, axis=1)], zmean=(pdf * grid) @ w,
                 zmedian=median, **(extra or {}))
    ens.set_ancil(ancil)
    return ens
