"""Rest-frame SED libraries: template continua x dust on a common log-wavelength grid.

The simulator's SEDs are *library entries* (:class:`SEDLibrary`). Libraries built here:

:func:`cosmos_library` (``sed_library = "cosmos"``, the default)
    The 31 COSMOS templates (Polletta et al. 2007 + BC03 blue templates; Ilbert et al.
    2009) that pz-rail-base ships, reddened by Calzetti et al. (2000) dust
    (:mod:`rail.deepdisc.spectra.dust`) on a small grid of E(B-V).
:func:`cww_library` (``"cww"``)
    BPZ's CWW+SB4 set shipped with pz-rail-base
    (:func:`rail.deepdisc.spectra.templates.cww_templates`, extended redward), on the same
    dust grid.
:func:`user_library` (a path)
    A user's template list: one two-column SED file (Angstrom, f_lambda) per line, paths
    relative to the list's folder; templates redder than rest (M_1500 - M_5500) = 5 mag are
    the quiescent population.

The ``sps`` library (stellar population synthesis with nebular emission) is built by
:mod:`rail.deepdisc.spectra.sps`; a library is chosen by name with
:func:`rail.deepdisc.spectra.named_libraries.get_library`.

Each (template, E(B-V)) pair is one entry; a galaxy's continuum is one entry, so a template
fitter given the library (:func:`rail.deepdisc.spectra.template_sets.oracle_templates`) is an
exact "oracle" for galaxies without emission lines. Template continua get nebular emission
lines per galaxy (:mod:`rail.deepdisc.spectra.nebular`); templates that already show lines
(the Kinney starbursts of CWW+SB) get none added. Synthetic photometry of the entries is
:class:`rail.deepdisc.spectra.photometer.Photometer`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

import numpy as np

from rail.deepdisc.errors import InputError
from rail.deepdisc.spectra.dust import calzetti_transmission
from rail.deepdisc.spectra.sed_files import (
    parse_param_file,
    rail_sed_dir,
    read_sed_file,
    read_template_list,
    read_template_sed,
)
from rail.deepdisc.spectra.templates import EARLY, cosmos_broad_type, cww_templates

if TYPE_CHECKING:
    from rail.deepdisc.spectra.nebular import Lines

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



@dataclass
class SEDLibrary:
    """Rest-frame SED library on a common log-wavelength grid.

    Attributes
    ----------
    names
        One name per entry, ``<template>_ebv<E(B-V)>``.
    template
        Base template name per entry.
    ebv
        Calzetti E(B-V) per entry.
    quiescent
        True for entries of the quiescent population.
    wave
        Rest-frame wavelength grid in Angstrom, uniform in ln(lambda).
    flux
        f_lambda per entry, shape (n_entries, n_wave), arbitrary units, zero below the
        Lyman limit (no escaping ionising photons). Continuum only: emission lines are
        added per galaxy (:mod:`rail.deepdisc.spectra.nebular`) or held in ``lines``.
    name
        What the library is (``cosmos``, ``cww``, ``sps`` or a template-list path).
    sf_position
        Place of each star-forming entry's template on the sequence from old/red (0) to
        young/blue (1); NaN for quiescent entries.
    has_lines
        True for entries whose template already shows nebular lines (none are added).
    lines
        Each entry's own emission lines (``sps`` libraries), else None.
    params
        Physical parameters per entry (``sps``: age, tau, metallicity, Av, logU, ssfr).
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

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dlnwave(self) -> float:
        """Step of the log-wavelength grid."""
        return float(np.log(self.wave[1] / self.wave[0]))

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


def _entries(name: str, templates: Sequence[tuple[str, np.ndarray, np.ndarray]],
             quiescent: Sequence[bool], sf_position: Sequence[float],
             ebv_grid: tuple[float, ...]) -> SEDLibrary:
    """Library of templates x E(B-V) grid (quiescent templates get no extra dust)."""
    wave = log_wave_grid()
    cols: dict[str, list] = {k: [] for k in ("names", "template", "ebv", "quiescent",
                                             "flux", "sf_position", "has_lines")}
    for (base, w, f), is_q, pos in zip(templates, quiescent, sf_position, strict=True):
        rest = np.interp(wave, w, f, left=0.0, right=0.0)
        rest[wave < 912.0] = 0.0
        lines = shows_lines(w, f)
        for ebv in (0.0,) if is_q else ebv_grid:
            for key, value in (("names", f"{base}_ebv{ebv:.2f}"), ("template", base),
                               ("ebv", ebv), ("quiescent", is_q), ("sf_position", pos),
                               ("has_lines", lines),
                               ("flux", rest * calzetti_transmission(wave, ebv))):
                cols[key].append(value)
    arrays = {k: np.array(v) for k, v in cols.items()}
    return SEDLibrary(wave=wave, name=name, **arrays)


@lru_cache(maxsize=4)
def cosmos_library(ebv_grid: tuple[float, ...] = DEFAULT_EBV_GRID) -> SEDLibrary:
    """The simulator's default SED library: COSMOS templates x Calzetti E(B-V) grid.

    Quiescent templates (ellipticals, S0: broad type early,
    :func:`rail.deepdisc.spectra.templates.cosmos_broad_type`) get no extra dust;
    star-forming ones get every E(B-V) of ``ebv_grid``.
    """
    sed_dir = rail_sed_dir()
    files = read_template_list(os.path.join(sed_dir, "COSMOS_seds.list"))
    templates = [(f.removesuffix(".sed"), *read_sed_file(os.path.join(sed_dir, f)))
                 for f in files]
    seq = {t: i / (len(SF_TEMPLATE_SEQUENCE) - 1) for i, t in enumerate(SF_TEMPLATE_SEQUENCE)}
    return _entries("cosmos", templates,
                    [cosmos_broad_type(t[0]) == EARLY for t in templates],
                    [seq.get(t[0], np.nan) for t in templates], ebv_grid)


def _by_colour(name: str, templates: list[tuple[str, np.ndarray, np.ndarray]],
               quiescent: list[bool] | None = None) -> SEDLibrary:
    """Library whose star-forming templates are ordered by rest UV - optical colour."""
    wave = log_wave_grid()
    flux = np.array([np.interp(wave, w, f, left=0.0, right=0.0) for _, w, f in templates])
    probe = SEDLibrary(np.array([t[0] for t in templates]), np.array([t[0] for t in templates]),
                       np.zeros(len(templates)), np.zeros(len(templates), bool), wave, flux)
    with np.errstate(divide="ignore", invalid="ignore"):
        colour = probe.uv_optical_colour
    if not np.all(np.isfinite(colour)):
        bad = [t[0] for t, c in zip(templates, colour, strict=True) if not np.isfinite(c)]
        raise InputError(f"templates {bad} of {name} have no flux at rest 1500 A or 5500 A")
    if quiescent is None:
        quiescent = list(colour > QUIESCENT_COLOUR)
    sf = [i for i, q in enumerate(quiescent) if not q]
    if not sf:
        raise InputError(f"{name} has no star-forming template (all redder than rest "
                         f"M_1500 - M_5500 = {QUIESCENT_COLOUR} mag)")
    rank = {i: r for r, i in enumerate(sorted(sf, key=lambda i: -colour[i]))}
    pos = [rank[i] / max(len(sf) - 1, 1) if i in rank else np.nan
           for i in range(len(templates))]
    return _entries(name, templates, quiescent, pos, DEFAULT_EBV_GRID)


@lru_cache(maxsize=2)
def cww_library() -> SEDLibrary:
    """BPZ's CWW+SB4 templates (extended redward) x the Calzetti E(B-V) grid."""
    tset = cww_templates()
    return _by_colour("cww", [(t.name, t.wave, t.flux) for t in tset.templates],
                      [t.broad_type == EARLY for t in tset.templates])


@lru_cache(maxsize=8)
def user_library(list_file: str) -> SEDLibrary:
    """A user's template list x E(B-V) grid.

    The list names one two-column ASCII SED file per line (relative to the list), or is
    an EAZY templates ``.param`` file (``N path [wavelength scale ...]`` per line, e.g.
    EAZY's ``fsps_full/tweak_fsps_QSF_12_v3.param``; paths as EAZY resolves them).

    Raises
    ------
    InputError
        Naming the list or template file that cannot be read.
    """
    if list_file.endswith(".param"):
        entries = parse_param_file(list_file)
    else:
        entries = [(os.path.join(os.path.dirname(os.path.abspath(list_file)), name), 1.0)
                   for name in read_template_list(list_file)]
    templates = []
    for path, wave_scale in entries:
        wave, flux = read_template_sed(path)
        templates.append((os.path.basename(path).removesuffix(".sed"), wave * wave_scale,
                          flux))
    return _by_colour(list_file, templates)
