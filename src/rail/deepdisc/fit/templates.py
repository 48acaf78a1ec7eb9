"""Rest-frame SED template sets for the template fitters (BPZ, EAZY).

Built-in sets, all from files that installed packages ship (nothing is downloaded):

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
``oracle``
    The simulator's own library (:func:`rail.deepdisc.sim.sed.cosmos_library`): COSMOS
    templates times its Calzetti E(B-V) grid. Every simulated galaxy *is* one of these, so a
    fit with them is an oracle that tests filters, units and redshift grids.

Each template carries a BPZ broad type (0 early, 1 spiral, 2 irregular/starburst) so BPZ's
three-type HDFN prior can be used; sets are sorted by type as BPZ requires.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rail.deepdisc.errors import InputError, OptionError

#: names of the built-in template sets
BUILTIN_SETS = ("cww", "cosmos", "oracle")
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

    def write_sed_files(self, directory: str | os.PathLike) -> list[str]:
        """Write ``<name>.sed`` two-column files (Angstrom, f_lambda) into ``directory``.

        Returns the file names (relative to ``directory``) in set order.
        """
        from rail.deepdisc.store.atomic import atomic_output

        names = []
        for t in self.templates:
            fname = f"{t.name}.sed"
            with atomic_output(os.path.join(os.fspath(directory), fname), "template") as tmp:
                np.savetxt(tmp, np.column_stack([t.wave, t.flux]), fmt="%.7e",
                           header=f"{t.name}: {t.source}")
            names.append(fname)
        return names


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


def read_sed(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a two-column ASCII SED (Angstrom, f_lambda), sorted, de-duplicated, lambda > 0.

    Raises
    ------
    ValueError
        Naming the file, if it cannot be read or holds no usable SED.
    """
    from rail.deepdisc.sim.sed import read_sed_file

    wave, flux = read_sed_file(path)
    keep = wave > 0  # BPZ's files start at 0 A, which breaks IGM models
    return wave[keep], flux[keep]


def _rail_sed(name: str) -> str:
    from rail.deepdisc.sim.sed import rail_sed_dir

    return os.path.join(rail_sed_dir(), name)


def _read_list(list_file: str) -> list[str]:
    with open(list_file, encoding="ascii") as fin:
        return [ln.split()[0] for ln in fin if ln.strip() and not ln.lstrip().startswith("#")]


def cww_templates(red_limit: float = CWW_RED_LIMIT) -> TemplateSet:
    """BPZ's CWW+SB4 set (pz-rail-base ``CWWSB4.list``), extended redward to ``red_limit``."""
    out = []
    for fname in _read_list(_rail_sed("CWWSB4.list")):
        stem = fname.removesuffix(".sed")
        path = _rail_sed(fname)
        wave, flux = read_sed(path)
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


def _cosmos_type(template: str) -> int:
    if template.startswith(("Ell", "S0")):
        return EARLY
    if template.startswith("SB"):
        return STARBURST
    return SPIRAL


def cosmos_templates() -> TemplateSet:
    """The 31 COSMOS templates shipped with pz-rail-base (no extra dust)."""
    out = []
    for fname in _read_list(_rail_sed("COSMOS_seds.list")):
        stem = fname.removesuffix(".sed")
        path = _rail_sed(fname)
        wave, flux = read_sed(path)
        out.append(SEDTemplate(safe_name(stem), wave, flux, _cosmos_type(stem), path))
    out.sort(key=lambda t: t.broad_type)
    return TemplateSet("cosmos", tuple(out), notes="COSMOS 31 (Polletta+07, BC03; Ilbert+09)")


def oracle_templates(ebv_grid: Sequence[float] | None = None,
                     entries: Sequence[int] | None = None) -> TemplateSet:
    """The simulator's own SED library (COSMOS x Calzetti E(B-V)): an oracle set.

    Entries are zero below 912 A, as in the simulator; IGM attenuation is left to the fitter.

    Parameters
    ----------
    ebv_grid
        The library's E(B-V) grid (default: the simulator's).
    entries
        Only these library entries (the ``sed_index`` column of simulated catalogs), e.g. to
        fit a few objects quickly; default all.
    """
    from rail.deepdisc.sim.sed import DEFAULT_EBV_GRID, cosmos_library

    lib = cosmos_library(tuple(DEFAULT_EBV_GRID if ebv_grid is None else ebv_grid))
    keep = range(len(lib)) if entries is None else sorted({int(i) for i in entries})
    bad = [i for i in keep if not 0 <= i < len(lib)]
    if bad:
        raise OptionError(f"oracle entries {bad} are outside the library (0..{len(lib) - 1})")
    out = [SEDTemplate(safe_name(str(lib.names[i])), lib.wave, lib.flux[i],
                       _cosmos_type(str(lib.template[i])),
                       f"rail.deepdisc.sim.sed.cosmos_library entry {i} ({lib.names[i]})")
           for i in keep]
    out.sort(key=lambda t: t.broad_type)  # stable: library order within a type
    return TemplateSet("oracle", tuple(out),
                       notes="the simulator's library: COSMOS templates x Calzetti E(B-V) grid")


def builtin_templates(name: str) -> TemplateSet:
    """A built-in set by name (``cww``, ``cosmos``, ``oracle``).

    Raises
    ------
    OptionError
        For an unknown name, listing the known ones.
    """
    makers = {"cww": cww_templates, "cosmos": cosmos_templates, "oracle": oracle_templates}
    if name not in makers:
        raise OptionError(f"unknown template set {name!r}; built-in sets are {list(BUILTIN_SETS)}")
    return makers[name]()
