"""Readers of SED files and template lists: two-column SEDs, lists of them, EAZY ``.param``.

The one place that reads the template files of every SED library (pz-rail-base's sets and
a user's lists, :mod:`rail.deepdisc.spectra.templates`, through :func:`read_templates`) and
the EAZY fitter's ``.param`` files (:mod:`rail.deepdisc.fit.eazy_templates`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rail.deepdisc.errors import InputError


def rail_sed_dir() -> str:
    """Directory of the SED templates shipped with pz-rail-base."""
    from rail.utils.path_utils import find_rail_file

    return find_rail_file("examples_data/estimation_data/data/SED")


def read_sed_file(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a two-column ASCII SED (wavelength in Angstrom, f_lambda).

    Rows are sorted by wavelength, repeated wavelengths dropped (the first kept) and
    negative fluxes set to zero.

    Raises
    ------
    InputError
        If the file cannot be parsed as two numeric columns.
    """
    try:
        data = np.loadtxt(path, comments="#", usecols=(0, 1))
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read SED file {path}: {err}") from err
    if data.ndim != 2 or data.shape[0] < 2:
        raise InputError(f"SED file {path} has no (wavelength, flux) table")
    wave, flux = data[:, 0], data[:, 1]
    order = np.argsort(wave)
    wave, flux = wave[order], flux[order]
    keep = np.concatenate([[True], np.diff(wave) > 0])
    return wave[keep], np.clip(flux[keep], 0.0, None)


def read_template_sed(path: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_sed_file` without rows at wavelength <= 0.

    BPZ's files start at 0 A, which breaks IGM models and ln(lambda) grids.
    """
    wave, flux = read_sed_file(path)
    keep = wave > 0
    return wave[keep], flux[keep]


def read_template_list(list_file: str) -> list[str]:
    """The first word of each line of a template list that is not blank or a comment.

    Raises
    ------
    InputError
        If the list cannot be read or names no file.
    """
    try:
        with open(list_file, encoding="utf-8") as fin:
            files = [ln.split()[0] for ln in fin
                     if ln.strip() and not ln.lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read template list {list_file}: {err}") from err
    if not files:
        raise InputError(f"template list {list_file} names no SED file")
    return files


def read_templates(list_file: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The templates a list names, read: ``(path, wavelength in Angstrom, f_lambda)`` each.

    ``list_file`` names one two-column ASCII SED file per line (paths relative to the list's
    folder), or is an EAZY templates ``.param`` file (``N path [wavelength scale ...]`` per
    line, paths as EAZY resolves them, :func:`parse_param_file`). Each SED is read with
    :func:`read_template_sed`, its wavelengths times the ``.param`` file's scale.

    Raises
    ------
    InputError
        Naming the list or the template file that cannot be read.
    """
    if list_file.endswith(".param"):
        entries = parse_param_file(list_file)
    else:
        folder = os.path.dirname(os.path.abspath(list_file))
        entries = [(os.path.join(folder, name), 1.0) for name in read_template_list(list_file)]
    out = []
    for path, wave_scale in entries:
        wave, flux = read_template_sed(path)
        out.append((path, wave * wave_scale, flux))
    return out


def parse_param_file(path: str | os.PathLike) -> list[tuple[str, float]]:
    """Template paths and wavelength scales listed in an EAZY templates ``.param`` file.

    Relative template paths are resolved against the ``.param`` file's directory and then
    each of its parents (EAZY's own files name templates relative to the folder holding
    ``templates/``).

    Raises
    ------
    InputError
        If the file is unreadable or empty, or a listed template is not found (naming it).
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fin:
            lines = fin.readlines()
    except OSError as err:
        raise InputError(f"cannot read EAZY templates file {path}: {err}") from err
    out = []
    base = Path(path).resolve().parent
    for k, line in enumerate(lines, 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) < 2:
            raise InputError(f"{path}:{k}: expected 'N template_file [to_angstrom]'")
        name = parts[1]
        try:
            scale = float(parts[2]) if len(parts) > 2 else 1.0
        except ValueError:
            raise InputError(f"{path}:{k}: bad wavelength scale {parts[2]!r}") from None
        candidates = [Path(name)] if os.path.isabs(name) else \
            [d / name for d in (base, *base.parents)]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise InputError(f"{path}:{k}: template file {name!r} not found (looked in "
                             f"{base} and its parents)")
        out.append((os.fspath(found), scale))
    if not out:
        raise InputError(f"EAZY templates file {path} lists no templates")
    return out
