"""The SED libraries read from files: pz-rail-base's template sets (nothing is downloaded)
and a user's template list, as template sets for the fitters and as the simulator's
libraries (each an :class:`rail.deepdisc.spectra.library.SEDLibrary`).

``cww``
    BPZ's default ``CWWSB4.list`` shipped with pz-rail-base: the Coleman, Wu & Weedman (1980)
    El, Sbc, Scd, Im templates and the Kinney et al. (1996) SB3, SB2 starbursts as revised by
    Benitez et al. (2004), plus two BC03 simple stellar populations (5 and 25 Myr). The
    empirical templates stop at 2.56 um, too short for NIRCam at low redshift (F444W reaches
    5 um). They are **extended** redward of their last tabulated point with a Rayleigh-Jeans
    stellar tail, f_lambda ~ lambda^-4, whose amplitude is the median of f_lambda lambda^4 over
    the last 10% of the tabulated range (:func:`extend_red`). No dust emission or PAH features
    are added, so at z < 1 the NIRCam long-wavelength bands see a smooth, possibly too faint,
    continuum. GalSim's ``CWW_*_ext(_more).sed`` files do not help: they are truncated at
    2.2 um (see their headers). The SSP templates already reach 160 um.
``cosmos``
    The 31 COSMOS templates (Polletta et al. 2007 + BC03; Ilbert et al. 2009) shipped with
    pz-rail-base, 0.01-20 um, without extra dust. These are the base of the simulator's SEDs.
a template list (``sed_library`` = a path)
    One two-column SED file (Angstrom, f_lambda) per line, paths relative to the list's
    folder, or an EAZY ``.param`` file (:func:`rail.deepdisc.spectra.sed_files.read_templates`,
    the one reader of all of them).

:func:`cww_templates` and :func:`cosmos_templates` are the fitters' template sets
(:func:`rail.deepdisc.spectra.library.template_library`: one entry per template, each at its
file's own wavelengths, sorted by BPZ broad type — 0 early, 1 spiral, 2 irregular/starburst —
for BPZ's three-type HDFN prior); the fitters choose a set by name with
:func:`rail.deepdisc.spectra.template_sets.builtin_templates`, which adds the ``oracle`` set.
:func:`cosmos_library`, :func:`cww_library` and :func:`user_library` are the simulator's
libraries (``sed_library`` = ``cosmos``, the default, ``cww`` or a path): the same templates
times a Calzetti E(B-V) grid (:func:`rail.deepdisc.spectra.library.dust_library`).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

import numpy as np

from rail.deepdisc.errors import InputError
from rail.deepdisc.spectra.library import (
    DEFAULT_EBV_GRID,
    EARLY,
    SF_TEMPLATE_SEQUENCE,
    SPIRAL,
    STARBURST,
    SEDLibrary,
    Tabulated,
    colour_library,
    dust_library,
    template_library,
)
from rail.deepdisc.spectra.sed_files import rail_sed_dir, read_templates

#: rest-frame wavelength (Angstrom) the ``cww`` templates are extended to
CWW_RED_LIMIT = 1.0e5

_CWW_TYPES = {"El_B2004a": EARLY, "Sbc_B2004a": SPIRAL, "Scd_B2004a": SPIRAL}


def safe_name(name: str) -> str:
    """A file-safe template name (dots become ``p``, other odd characters ``_``)."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", name.replace(".", "p"))


def extend_red(wave: np.ndarray, flux: np.ndarray, red_limit: float,
               anchor_fraction: float = 0.1, step: float = 0.005
               ) -> tuple[np.ndarray, np.ndarray]:
    """Extend a template beyond its last point with a Rayleigh-Jeans tail (f_lambda ~ lambda^-4).

    The amplitude is the median of ``f_lambda * lambda**4`` over the last ``anchor_fraction``
    of the tabulated wavelength range (robust to a noisy last point); new points are spaced
    by ``step`` in ln(lambda) up to ``red_limit``. Templates that already reach
    ``red_limit`` are returned unchanged.
    """
    wave = np.asarray(wave, float)
    flux = np.asarray(flux, float)
    if wave[-1] >= red_limit:
        return wave, flux
    lo = wave[-1] - anchor_fraction * (wave[-1] - wave[0])
    sel = (wave >= lo) & (flux > 0)
    if not np.any(sel):
        raise InputError("cannot extend a template whose red end has no positive flux")
    amp = float(np.median(flux[sel] * wave[sel] ** 4))
    n = int(np.ceil(np.log(red_limit / wave[-1]) / step))
    new_wave = wave[-1] * np.exp(step * np.arange(1, n + 1))
    return np.concatenate([wave, new_wave]), np.concatenate([flux, amp * new_wave**-4])


def _stem(path: str) -> str:
    return os.path.basename(path).removesuffix(".sed")


@lru_cache(maxsize=2)
def cww_templates(red_limit: float = CWW_RED_LIMIT) -> SEDLibrary:
    """BPZ's CWW+SB4 set (pz-rail-base ``CWWSB4.list``), extended redward to ``red_limit``."""
    tables: list[Tabulated] = []
    types, sources = [], []
    for path, wave, flux in read_templates(os.path.join(rail_sed_dir(), "CWWSB4.list")):
        source = path
        if wave[-1] < red_limit:
            source = (f"{path}, extended from {wave[-1]:.0f} to {red_limit:.0f} A with "
                      "f_lambda ~ lambda^-4")
            wave, flux = extend_red(wave, flux, red_limit)
        tables.append((safe_name(_stem(path)), wave, flux))
        types.append(_CWW_TYPES.get(_stem(path), STARBURST))
        sources.append(source)
    return template_library("cww", tables, types, sources, notes=(
        f"CWW+SB4 (pz-rail-base CWWSB4.list); templates shorter than {red_limit:.0f} A are "
        "extended with a Rayleigh-Jeans tail f_lambda ~ lambda^-4")).by_broad_type()


def cosmos_broad_type(template: str) -> int:
    """BPZ broad type of a COSMOS template by name: ellipticals and S0 are early (the
    simulator's quiescent population), ``SB*`` starbursts, the rest spirals."""
    if template.startswith(("Ell", "S0")):
        return EARLY
    if template.startswith("SB"):
        return STARBURST
    return SPIRAL


def _cosmos_tables() -> tuple[list[Tabulated], list[str]]:
    """The COSMOS templates in list order, and their files."""
    read = read_templates(os.path.join(rail_sed_dir(), "COSMOS_seds.list"))
    return [(_stem(path), wave, flux) for path, wave, flux in read], [r[0] for r in read]


@lru_cache(maxsize=1)
def cosmos_templates() -> SEDLibrary:
    """The 31 COSMOS templates shipped with pz-rail-base (no extra dust)."""
    tables, paths = _cosmos_tables()
    return template_library(
        "cosmos", [(safe_name(n), w, f) for n, w, f in tables],
        [cosmos_broad_type(t[0]) for t in tables], paths,
        notes="COSMOS 31 (Polletta+07, BC03; Ilbert+09)").by_broad_type()


@lru_cache(maxsize=4)
def cosmos_library(ebv_grid: tuple[float, ...] = DEFAULT_EBV_GRID) -> SEDLibrary:
    """The simulator's default SED library: COSMOS templates x Calzetti E(B-V) grid.

    Quiescent templates (ellipticals, S0: broad type early, :func:`cosmos_broad_type`) get
    no extra dust; star-forming ones get every E(B-V) of ``ebv_grid``.
    """
    tables, _ = _cosmos_tables()
    seq = {t: i / (len(SF_TEMPLATE_SEQUENCE) - 1) for i, t in enumerate(SF_TEMPLATE_SEQUENCE)}
    return dust_library("cosmos", tables, [cosmos_broad_type(t[0]) for t in tables],
                        [seq.get(t[0], np.nan) for t in tables], ebv_grid)


@lru_cache(maxsize=2)
def cww_library() -> SEDLibrary:
    """BPZ's CWW+SB4 templates (extended redward) x the Calzetti E(B-V) grid."""
    tset = cww_templates()
    tables = [(str(name), *tset.entry_sed(i)) for i, name in enumerate(tset.names)]
    return colour_library("cww", tables, tset.broad_type)


@lru_cache(maxsize=8)
def user_library(list_file: str) -> SEDLibrary:
    """A user's template list x E(B-V) grid.

    The list names one two-column ASCII SED file per line (relative to the list), or is
    an EAZY templates ``.param`` file (``N path [wavelength scale ...]`` per line, e.g.
    EAZY's ``fsps_full/tweak_fsps_QSF_12_v3.param``; paths as EAZY resolves them). Broad
    types (and so the quiescent population) follow the templates' rest UV - optical colours
    (:func:`rail.deepdisc.spectra.library.colour_library`).

    Raises
    ------
    InputError
        Naming the list or template file that cannot be read.
    """
    return colour_library(list_file, [(_stem(path), wave, flux)
                                      for path, wave, flux in read_templates(list_file)])
