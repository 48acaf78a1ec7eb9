"""SED libraries by name: the ``sed_library`` option's values and the libraries they name.

``cosmos``, ``cww`` (:mod:`rail.deepdisc.spectra.templates`), ``sps``
(:mod:`rail.deepdisc.spectra.sps`, needs the optional bagpipes package), the path of a
template list, or template libraries joined by '+' (their entries mixed).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from rail.deepdisc.errors import OptionError
from rail.deepdisc.spectra.library import SEDLibrary
from rail.deepdisc.spectra.templates import cosmos_library, cww_library, user_library

#: built-in SED libraries (``sed_library`` also takes a template-list path)
BUILTIN_LIBRARIES = ("cosmos", "cww", "sps")


def library_parts(source: str) -> list[str]:
    """The libraries a ``sed_library`` value names: itself, or its '+'-joined parts (unless
    it is a file whose name holds a '+')."""
    if "+" in source and not os.path.isfile(source):
        return [part.strip() for part in source.split("+")]
    return [source]


def check_library_name(source: str) -> None:
    """Raise OptionError unless ``source`` names SED libraries :func:`get_library` reads."""
    parts = library_parts(source)
    for part in parts:
        if part == "sps":
            if len(parts) > 1:
                raise OptionError(f"sed_library {source!r}: 'sps' cannot be mixed with "
                                  "template libraries")
            from rail.deepdisc.spectra.sps import bagpipes_available

            if not bagpipes_available():
                raise OptionError("sed_library 'sps' needs the bagpipes package: "
                                  "pip install 'pz-rail-deepdisc[sps]'")
        elif part not in BUILTIN_LIBRARIES and not os.path.isfile(part):
            raise OptionError(f"sed_library must be one of {list(BUILTIN_LIBRARIES)}, a "
                              f"template list file or such names joined by '+'; {part!r} "
                              "is neither")


def get_library(source: str = "cosmos") -> SEDLibrary:
    """The SED library named by the ``sed_library`` option.

    Parameters
    ----------
    source
        ``cosmos``, ``cww``, ``sps`` (needs the ``sps`` extra: bagpipes), the path of a
        template list, or template libraries joined by '+' (:func:`merge_libraries`).

    Raises
    ------
    OptionError
        If ``source`` names neither a built-in library nor an existing file.
    """
    check_library_name(source)
    parts = library_parts(source)
    if len(parts) > 1:
        return merge_libraries(source, [_one_library(part) for part in parts])
    return _one_library(source)


def _one_library(source: str) -> SEDLibrary:
    """The library of one checked name (:func:`get_library`)."""
    if source == "cosmos":
        return cosmos_library()
    if source == "cww":
        return cww_library()
    if source == "sps":
        from rail.deepdisc.spectra.sps import sps_library

        return sps_library()
    return user_library(os.path.abspath(source))


def merge_libraries(name: str, libraries: Sequence[SEDLibrary]) -> SEDLibrary:
    """One library holding the entries of several template libraries (same wavelength
    grid, no own lines), so each galaxy draws its template from all of them: a domain
    randomisation of the SEDs. Each entry keeps its place on its own library's sequence
    from old/red to young/blue, so the redshift-dependent template prior mixes the sets in
    proportion to their numbers of entries. Names clashing between libraries get their
    library's name as a prefix.
    """
    for lib in libraries:
        if lib.lines is not None or lib.params or not np.array_equal(lib.wave,
                                                                     libraries[0].wave):
            raise OptionError(f"SED library {lib.name!r} cannot be mixed into {name!r} "
                              "(only template libraries can)")
    names = [str(n) for lib in libraries for n in lib.names]
    if len(set(names)) < len(names):
        names = [f"{os.path.basename(lib.name)}-{n}" for lib in libraries for n in lib.names]

    def joined(attr: str, fill: float | bool) -> np.ndarray:
        return np.concatenate([getattr(lib, attr) if getattr(lib, attr) is not None
                               else np.full(len(lib), fill) for lib in libraries])

    return SEDLibrary(
        names=np.array(names), template=joined("template", ""), ebv=joined("ebv", 0.0),
        quiescent=joined("quiescent", False), wave=libraries[0].wave,
        flux=np.concatenate([lib.flux for lib in libraries]), name=name,
        sf_position=joined("sf_position", np.nan), has_lines=joined("has_lines", False),
        broad_type=joined("broad_type", 0), sources=joined("sources", ""))
