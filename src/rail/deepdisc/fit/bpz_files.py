"""BPZ's input files: a template set as ``<name>.sed`` files, filter curves as ``.res``."""

from __future__ import annotations

import os

import numpy as np

from rail.deepdisc.errors import InputError
from rail.deepdisc.spectra.filters import FilterCurve
from rail.deepdisc.spectra.library import SEDLibrary
from rail.deepdisc.spectra.templates import safe_name
from rail.deepdisc.store.atomic import atomic_output


def sed_names(templates: SEDLibrary) -> list[str]:
    """BPZ's name of each entry (its file stem): the entry's name made file-safe.

    Raises
    ------
    InputError
        If two entries get the same name.
    """
    names = [safe_name(str(n)) for n in templates.names]
    if len(set(names)) < len(names):
        raise InputError(f"template set {templates.name} has entries whose file names clash")
    return names


def write_sed_files(templates: SEDLibrary, directory: str | os.PathLike) -> list[str]:
    """Write ``<name>.sed`` two-column files (Angstrom, f_lambda) into ``directory``, each
    entry at the wavelengths it was tabulated at (:meth:`SEDLibrary.entry_sed`).

    Returns the file names (relative to ``directory``) in library order.
    """
    files = []
    for i, name in enumerate(sed_names(templates)):
        fname = f"{name}.sed"
        wave, flux = templates.entry_sed(i)
        with atomic_output(os.path.join(os.fspath(directory), fname), "template") as tmp:
            np.savetxt(tmp, np.column_stack([wave, flux]), fmt="%.7e",
                       header=f"{name}: {templates.sources[i]}")
        files.append(fname)
    return files


def write_res(curve: FilterCurve, path: str | os.PathLike) -> str:
    """Write a BPZ ``.res`` file (two columns: Angstrom, throughput), atomically."""
    with atomic_output(path, "filter file") as tmp:
        np.savetxt(tmp, np.column_stack([curve.wave, curve.throughput]), fmt="%.6e",
                   header=f"{curve.name} from {curve.source}")
    return os.fspath(path)
