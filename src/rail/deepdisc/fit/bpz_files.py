"""BPZ's input files: a template set as ``<name>.sed`` files, filter curves as ``.res``."""

from __future__ import annotations

import os

import numpy as np

from rail.deepdisc.spectra.filters import FilterCurve
from rail.deepdisc.spectra.templates import TemplateSet
from rail.deepdisc.store.atomic import atomic_output


def write_sed_files(templates: TemplateSet, directory: str | os.PathLike) -> list[str]:
    """Write ``<name>.sed`` two-column files (Angstrom, f_lambda) into ``directory``.

    Returns the file names (relative to ``directory``) in set order.
    """
    names = []
    for t in templates.templates:
        fname = f"{t.name}.sed"
        with atomic_output(os.path.join(os.fspath(directory), fname), "template") as tmp:
            np.savetxt(tmp, np.column_stack([t.wave, t.flux]), fmt="%.7e",
                       header=f"{t.name}: {t.source}")
        names.append(fname)
    return names


def write_res(curve: FilterCurve, path: str | os.PathLike) -> str:
    """Write a BPZ ``.res`` file (two columns: Angstrom, throughput), atomically."""
    with atomic_output(path, "filter file") as tmp:
        np.savetxt(tmp, np.column_stack([curve.wave, curve.throughput]), fmt="%.6e",
                   header=f"{curve.name} from {curve.source}")
    return os.fspath(path)
