"""Rest-frame SED templates (:class:`SEDTemplate`, :class:`TemplateSet`) and the sets read
from files that pz-rail-base ships (nothing is downloaded):

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

The template fitters (BPZ, EAZY) choose a set by name with
:func:`rail.deepdisc.spectra.template_sets.builtin_templates`, which adds the ``oracle`` set
(the simulator's own SED library).

Each template carries a BPZ broad type (0 early, 1 spiral, 2 irregular/starburst) so BPZ's
three-type HDFN prior can be used; sets are sorted by type as BPZ requires.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from rail.deepdisc.errors import InputError
from rail.deepdisc.spectra.sed_files import rail_sed_dir, read_template_list, read_template_sed

#: BPZ broad types
EARLY, SPIRAL, STARBURST = 0, 1, 2

#: rest-frame wavelength (Angstrom) the ``cww`` templates are extended to
CWW_RED_LIMIT = 1.0e5

_CWW_TYPES = {"El_B2004a": EARLY, "Sbc_B2004a": SPIRAL, "Scd_B2004a": SPIRAL}


@dataclass(frozen=True)
class SEDTemplate:
    """One rest-frame template.

    Attributes
    ----------
    name
        File-safe name (letters, digits, ``_``, ``-``).
    wave
        Rest-frame wavelength in Angstrom, strictly increasing.
    flux
        f_lambda, arbitrary units, non-negative.
    broad_type
        BPZ broad type: 0 early (E/S0), 1 spiral, 2 irregular/starburst.
    source
        Where it came from (file, and any change made), for provenance.
    """

    name: str
    wave: np.ndarray
    flux: np.ndarray
    broad_type: int
    source: str


@dataclass(frozen=True)
class TemplateSet:
    """An ordered set of templates (sorted by broad type)."""

    name: str
    templates: tuple[SEDTemplate, ...]
    notes: str = ""

    def __len__(self) -> int:
        return len(self.templates)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.templates]

    def nt_array(self) -> list[int]:
        """Number of templates of each broad type present, in order (BPZ's ``nt_array``)."""
        types = [t.broad_type for t in self.templates]
        if types != sorted(types):
            raise InputError(f"template set {self.name} is not sorted by broad type")
        return [types.count(k) for k in sorted(set(types))]


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


def cww_templates(red_limit: float = CWW_RED_LIMIT) -> TemplateSet:
    """BPZ's CWW+SB4 set (pz-rail-base ``CWWSB4.list``), extended redward to ``red_limit``."""
    out = []
    for fname in read_template_list(os.path.join(rail_sed_dir(), "CWWSB4.list")):
        stem = fname.removesuffix(".sed")
        path = os.path.join(rail_sed_dir(), fname)
        wave, flux = read_template_sed(path)
        source = path
        if wave[-1] < red_limit:
            source = (f"{path}, extended from {wave[-1]:.0f} to {red_limit:.0f} A with "
                      "f_lambda ~ lambda^-4")
            wave, flux = extend_red(wave, flux, red_limit)
        out.append(SEDTemplate(safe_name(stem), wave, flux, _CWW_TYPES.get(stem, STARBURST),
                               source))
    return TemplateSet("cww", tuple(out), notes=(
        f"CWW+SB4 (pz-rail-base CWWSB4.list); templates shorter than {red_limit:.0f} A are "
        "extended with a Rayleigh-Jeans tail f_lambda ~ lambda^-4"))


def cosmos_broad_type(template: str) -> int:
    """BPZ broad type of a COSMOS template by name: ellipticals and S0 are early (the
    simulator's quiescent population), ``SB*`` starbursts, the rest spirals."""
    if template.startswith(("Ell", "S0")):
        return EARLY
    if template.startswith("SB"):
        return STARBURST
    return SPIRAL


def cosmos_templates() -> TemplateSet:
    """The 31 COSMOS templates shipped with pz-rail-base (no extra dust)."""
    out = []
    for fname in read_template_list(os.path.join(rail_sed_dir(), "COSMOS_seds.list")):
        stem = fname.removesuffix(".sed")
        path = os.path.join(rail_sed_dir(), fname)
        wave, flux = read_template_sed(path)
        out.append(SEDTemplate(safe_name(stem), wave, flux, cosmos_broad_type(stem), path))
    out.sort(key=lambda t: t.broad_type)
    return TemplateSet("cosmos", tuple(out), notes="COSMOS 31 (Polletta+07, BC03; Ilbert+09)")
