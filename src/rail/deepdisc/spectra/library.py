"""Rest-frame SED libraries (:class:`SEDLibrary`): the one type of the simulator's SEDs and
of the template fitters' template sets, and how libraries are built from tabulated templates.

A library is a table of rest-frame f_lambda entries on one wavelength grid, each with its
BPZ broad type (early, spiral, starburst; early entries are the simulator's quiescent
population), its provenance and, for the simulator, its dust, place on the star-forming
sequence and emission lines. Two kinds are built here from tabulated templates:

:func:`dust_library`
    What the simulator draws from: templates times a Calzetti et al. (2000) E(B-V) grid
    (:mod:`rail.deepdisc.spectra.dust`) on the common log-wavelength grid
    (:func:`log_wave_grid`), zero below the Lyman limit. Each (template, E(B-V)) pair is one
    entry; a galaxy's continuum is one entry, so a template fitter given the library
    (:func:`rail.deepdisc.spectra.template_sets.oracle_templates`) is an exact "oracle"
    for galaxies without emission lines.
:func:`template_library`
    A template set for the fitters (BPZ, EAZY): one entry per template, as tabulated. Its
    grid is the union of the templates' own wavelengths and each entry keeps its own
    sampling (:meth:`SEDLibrary.entry_sed`), so a fit with the set is a fit with the
    files (resampled onto a uniform grid, the emission lines of CWW's SB2 and SB3 change
    their band fluxes by up to 1% at d ln(lambda) = 1e-3, and a grid of 1e-4 makes EAZY's
    template integrals ~25 times slower).

The libraries read from files (pz-rail-base's CWW+SB4 and COSMOS sets, a user's template
list) are :mod:`rail.deepdisc.spectra.templates`; the ``sps`` library (stellar population
synthesis with nebular emission) is :mod:`rail.deepdisc.spectra.sps`; a library is chosen by
``sed_library`` name with :func:`rail.deepdisc.spectra.named_libraries.get_library`.
Template continua get nebular emission lines per galaxy (:mod:`rail.deepdisc.spectra.nebular`);
templates that already show lines (the Kinney starbursts of CWW+SB) get none added. Synthetic
photometry of the entries is :class:`rail.deepdisc.spectra.photometer.Photometer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from rail.deepdisc.errors import InputError
from rail.deepdisc.spectra.dust import calzetti_transmission

if TYPE_CHECKING:
    from rail.deepdisc.spectra.nebular import Lines

#: a tabulated template: (name, rest wavelength in Angstrom, f_lambda)
Tabulated = tuple[str, np.ndarray, np.ndarray]

#: BPZ broad types: early (E/S0: the quiescent population), spiral, irregular/starburst
EARLY, SPIRAL, STARBURST = 0, 1, 2

#: speed of light in Angstrom / s (astro-sedpy's value)
LIGHTSPEED_AA = 2.998e18

#: rest-frame wavelength ranges (Angstrom) used to normalise luminosities
UV_WINDOW = (1450.0, 1550.0)
OPTICAL_WINDOW = (5400.0, 5600.0)

#: star-forming COSMOS templates, oldest/reddest to youngest/bluest
SF_TEMPLATE_SEQUENCE = (
    "Sa_A_0", "Sa_A_1", "Sb_A_0", "Sb_A_1", "Sc_A_0", "Sc_A_1", "Sc_A_2", "Sd_A_0",
    "Sd_A_1", "Sd_A_2", "Sdm_A_0", "SB0_A_0", "SB1_A_0", "SB2_A_0", "SB3_A_0", "SB4_A_0",
    "SB5_A_0", "SB6_A_0", "SB7_A_0", "SB8_A_0", "SB9_A_0", "SB10_A_0", "SB11_A_0",
)

#: default E(B-V) grid applied to the star-forming templates
DEFAULT_EBV_GRID = (0.0, 0.1, 0.2, 0.3, 0.4)

#: templates of a user's list redder than this rest M_1500 - M_5500 (AB) are quiescent
#: (COSMOS: S0 5.1, ellipticals 6.8-9.1; the reddest spiral, Sa, 4.7)
QUIESCENT_COLOUR = 5.0


def default_broad_type(quiescent: np.ndarray, sf_position: np.ndarray | None) -> np.ndarray:
    """BPZ broad types of entries that name none: early for quiescent ones, else starburst
    for the younger half of the star-forming sequence (``sf_position >= 0.5``) and spiral
    for the rest (or where the position is unknown, NaN)."""
    young = np.zeros(len(quiescent), bool) if sf_position is None else \
        np.asarray(sf_position, float) >= 0.5
    return np.where(np.asarray(quiescent, bool), EARLY, np.where(young, STARBURST, SPIRAL))


@dataclass
class SEDLibrary:
    """Rest-frame SED library: f_lambda entries on one wavelength grid.

    Attributes
    ----------
    names
        One name per entry (dust libraries: ``<template>_ebv<E(B-V)>``).
    template
        Base template name per entry.
    ebv
        Calzetti E(B-V) per entry.
    quiescent
        True for entries of the quiescent population (broad type early).
    wave
        Rest-frame wavelength grid in Angstrom, increasing: uniform in ln(lambda) for the
        libraries the simulator draws from (:func:`log_wave_grid`); for a template set
        (:func:`template_library`) the union of its templates' own wavelengths.
    flux
        f_lambda per entry, shape (n_entries, n_wave), arbitrary units, zero outside the
        entry's tabulated range. Dust libraries are zero below the Lyman limit (no escaping
        ionising photons); template sets keep their files' values. Continuum only:
        emission lines are added per galaxy (:mod:`rail.deepdisc.spectra.nebular`) or held
        in ``lines``.
    name
        What the library is (``cosmos``, ``cww``, ``sps``, ``oracle`` or a template-list
        path).
    sf_position
        Place of each star-forming entry's template on the sequence from old/red (0) to
        young/blue (1); NaN for quiescent entries.
    has_lines
        True for entries whose template already shows nebular lines (none are added).
    lines
        Each entry's own emission lines (``sps`` libraries), else None.
    params
        Physical parameters per entry (``sps``: age, tau, metallicity, Av, logU, ssfr).
    broad_type
        BPZ broad type per entry (:data:`EARLY`, :data:`SPIRAL`, :data:`STARBURST`); left
        None, early for quiescent entries, then spiral on the older half of the star-forming
        sequence (``sf_position`` < 0.5, or unknown) and starburst on the younger half.
    sources
        Where each entry came from (file, changes made), for provenance; left None,
        ``<library name>: <entry name>``.
    tabulated
        Shape (n_entries, n_wave), True at the wavelengths at which each entry was
        tabulated (template sets: its file's own sampling); None: the whole grid.
    notes
        What the library is, in a sentence (reports, BPZ's files).
    """

    names: np.ndarray
    template: np.ndarray
    ebv: np.ndarray
    quiescent: np.ndarray
    wave: np.ndarray
    flux: np.ndarray
    name: str = "cosmos"
    sf_position: np.ndarray | None = None
    has_lines: np.ndarray | None = None
    lines: Lines | None = None
    params: dict[str, np.ndarray] = field(default_factory=dict)
    broad_type: np.ndarray | None = None  # always set after __post_init__
    sources: np.ndarray | None = None  # always set after __post_init__
    tabulated: np.ndarray | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if self.broad_type is None:
            self.broad_type = default_broad_type(self.quiescent, self.sf_position)
        self.broad_type = np.asarray(self.broad_type, dtype=np.int64)
        if not np.array_equal(self.broad_type == EARLY, np.asarray(self.quiescent, bool)):
            raise ValueError(f"SED library {self.name}: quiescent entries must be exactly "
                             "those of broad type early")
        if self.sources is None:
            self.sources = np.array([f"{self.name}: {n}" for n in self.names])

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dlnwave(self) -> float:
        """Step of the log-wavelength grid.

        Raises
        ------
        InputError
            If the grid is not uniform in ln(lambda) (a template set's own wavelengths).
        """
        step = np.diff(np.log(self.wave))
        if not np.allclose(step, step[0], rtol=1e-6, atol=0.0):
            raise InputError(f"SED library {self.name} is not on a grid uniform in "
                             "ln(wavelength)")
        return float(step[0])

    def entry_sed(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Entry ``i`` at the wavelengths at which it was tabulated: (Angstrom, f_lambda)."""
        if self.tabulated is None:
            return self.wave, self.flux[i]
        keep = self.tabulated[i]
        return self.wave[keep], self.flux[i, keep]

    def take(self, rows: Sequence[int] | np.ndarray) -> SEDLibrary:
        """The library of entries ``rows``, in that order."""
        rows = np.asarray(rows, dtype=np.int64)

        def pick(values):
            return None if values is None else values[rows]

        return replace(self, names=self.names[rows], template=self.template[rows],
                       ebv=self.ebv[rows], quiescent=self.quiescent[rows],
                       flux=self.flux[rows], sf_position=pick(self.sf_position),
                       has_lines=pick(self.has_lines), lines=pick(self.lines),
                       params={k: v[rows] for k, v in self.params.items()},
                       broad_type=self.broad_type[rows], sources=self.sources[rows],
                       tabulated=pick(self.tabulated))

    def by_broad_type(self) -> SEDLibrary:
        """The library sorted by broad type (stable: library order within a type), as BPZ
        wants its templates; the library itself when it is sorted already."""
        if np.all(np.diff(self.broad_type) >= 0):
            return self
        return self.take(np.argsort(self.broad_type, kind="stable"))

    def nt_array(self) -> list[int]:
        """Number of entries of each broad type present, in order (BPZ's ``nt_array``).

        Raises
        ------
        InputError
            If the entries are not sorted by broad type (see :meth:`by_broad_type`).
        """
        types = [int(t) for t in self.broad_type]
        if types != sorted(types):
            raise InputError(f"template set {self.name} is not sorted by broad type")
        return [types.count(k) for k in sorted(set(types))]

    def luminosity_nu(self, window: tuple[float, float]) -> np.ndarray:
        """Mean L_nu (template units x Angstrom^2 / c) of each entry in a rest window."""
        sel = (self.wave >= window[0]) & (self.wave <= window[1])
        fnu = self.flux[:, sel] * self.wave[sel] ** 2 / LIGHTSPEED_AA
        return fnu.mean(axis=1)

    @cached_property
    def uv_optical_colour(self) -> np.ndarray:
        """Rest-frame M_1500 - M_5500 (AB) of each entry: negative is blue."""
        return 2.5 * np.log10(self.luminosity_nu(OPTICAL_WINDOW)
                              / self.luminosity_nu(UV_WINDOW))

    @cached_property
    def line_continuum(self) -> np.ndarray:
        """Continuum f_lambda of each entry at the nebular lines, shape (n_entries, n_lines).

        The mean within +-0.5% of each line's wavelength (about +-25 A at H-beta), so narrow
        absorption features of the template do not set a line's equivalent width.
        """
        from rail.deepdisc.spectra.nebular import LINE_WAVE

        lnw = np.log(self.wave)
        lo = np.searchsorted(lnw, np.log(LINE_WAVE) - 0.005)
        hi = np.searchsorted(lnw, np.log(LINE_WAVE) + 0.005)
        cum = np.concatenate([np.zeros((len(self), 1)), np.cumsum(self.flux, axis=1)], axis=1)
        return (cum[:, hi] - cum[:, lo]) / np.maximum(hi - lo, 1)


def log_wave_grid(wmin: float = 300.0, wmax: float = 200000.0, dlnw: float = 1.0e-3
                  ) -> np.ndarray:
    """The libraries' rest-frame wavelength grid (Angstrom), uniform in ln(lambda)."""
    n = int(np.ceil(np.log(wmax / wmin) / dlnw)) + 1
    return wmin * np.exp(np.arange(n) * dlnw)


def shows_lines(wave: np.ndarray, flux: np.ndarray) -> bool:
    """Whether a template already has nebular emission lines ([OII], [OIII] or H-alpha).

    A line is there if the peak within +-30 A exceeds the median within +-100 A by 30%.
    """
    for lam in (3728.5, 5008.2, 6564.6):
        near = (wave > lam - 100.0) & (wave < lam + 100.0)
        peak = near & (np.abs(wave - lam) < 30.0)
        if peak.sum() and np.median(flux[near]) > 0 and \
                flux[peak].max() > 1.3 * np.median(flux[near]):
            return True
    return False


def dust_library(name: str, templates: Sequence[Tabulated], broad_type: Sequence[int],
                 sf_position: Sequence[float], ebv_grid: tuple[float, ...]) -> SEDLibrary:
    """The simulator's library of templates x E(B-V) grid on :func:`log_wave_grid`.

    Early-type (quiescent) templates get no extra dust; the others get every E(B-V) of
    ``ebv_grid``.
    """
    wave = log_wave_grid()
    cols: dict[str, list] = {k: [] for k in ("names", "template", "ebv", "broad_type",
                                             "flux", "sf_position", "has_lines")}
    for (base, w, f), btype, pos in zip(templates, broad_type, sf_position, strict=True):
        rest = np.interp(wave, w, f, left=0.0, right=0.0)
        rest[wave < 912.0] = 0.0
        lines = shows_lines(w, f)
        for ebv in (0.0,) if btype == EARLY else ebv_grid:
            for key, value in (("names", f"{base}_ebv{ebv:.2f}"), ("template", base),
                               ("ebv", ebv), ("broad_type", btype), ("sf_position", pos),
                               ("has_lines", lines),
                               ("flux", rest * calzetti_transmission(wave, ebv))):
                cols[key].append(value)
    arrays = {k: np.array(v) for k, v in cols.items()}
    return SEDLibrary(wave=wave, name=name, quiescent=arrays["broad_type"] == EARLY, **arrays)


def colour_library(name: str, templates: list[Tabulated],
                   broad_type: Sequence[int] | None = None,
                   ebv_grid: tuple[float, ...] = DEFAULT_EBV_GRID) -> SEDLibrary:
    """:func:`dust_library` of templates whose star-forming sequence is ordered by rest
    UV - optical colour.

    Without ``broad_type``, templates redder than rest (M_1500 - M_5500) =
    :data:`QUIESCENT_COLOUR` are early (quiescent), the redder half of the others spirals
    and the bluer half starbursts.

    Raises
    ------
    InputError
        Naming templates without flux at rest 1500 A or 5500 A, or a list without a
        star-forming template.
    """
    wave = log_wave_grid()
    flux = np.array([np.interp(wave, w, f, left=0.0, right=0.0) for _, w, f in templates])
    names = np.array([t[0] for t in templates])
    probe = SEDLibrary(names, names, np.zeros(len(templates)), np.zeros(len(templates), bool),
                       wave, flux)
    with np.errstate(divide="ignore", invalid="ignore"):
        colour = probe.uv_optical_colour
    if not np.all(np.isfinite(colour)):
        bad = [t[0] for t, c in zip(templates, colour, strict=True) if not np.isfinite(c)]
        raise InputError(f"templates {bad} of {name} have no flux at rest 1500 A or 5500 A")
    early = colour > QUIESCENT_COLOUR if broad_type is None else \
        np.asarray(broad_type) == EARLY
    sf = [i for i, q in enumerate(early) if not q]
    if not sf:
        raise InputError(f"{name} has no star-forming template (all redder than rest "
                         f"M_1500 - M_5500 = {QUIESCENT_COLOUR} mag)")
    rank = {i: r for r, i in enumerate(sorted(sf, key=lambda i: -colour[i]))}
    pos = np.array([rank[i] / max(len(sf) - 1, 1) if i in rank else np.nan
                    for i in range(len(templates))])
    if broad_type is None:
        broad_type = default_broad_type(early, pos)
    return dust_library(name, templates, broad_type, pos, ebv_grid)


def template_library(name: str, templates: Sequence[Tabulated], broad_type: Sequence[int],
                     sources: Sequence[str], notes: str = "") -> SEDLibrary:
    """A template set for the fitters: one entry per template (no dust), as tabulated.

    The grid is the union of the templates' wavelengths; each entry is its table linearly
    interpolated there (the same piecewise-linear spectrum) and zero outside its range, and
    ``tabulated`` marks its own wavelengths, so :meth:`SEDLibrary.entry_sed` gives back the
    table itself.
    """
    wave = np.unique(np.concatenate([np.asarray(w, float) for _, w, _ in templates]))
    flux = np.array([np.interp(wave, w, f, left=0.0, right=0.0) for _, w, f in templates])
    names = np.array([t[0] for t in templates])
    btype = np.asarray(broad_type, dtype=np.int64)
    return SEDLibrary(
        names=names, template=names, ebv=np.zeros(len(names)), quiescent=btype == EARLY,
        wave=wave, flux=flux, name=name, sf_position=np.full(len(names), np.nan),
        has_lines=np.array([shows_lines(w, f) for _, w, f in templates]), broad_type=btype,
        sources=np.array(list(sources)), notes=notes,
        tabulated=np.array([np.isin(wave, w) for _, w, _ in templates]))
