"""Templates for EAZY (eazy-py): built-in sets and EAZY ``.param`` files, as eazy objects.

eazy-py is an optional dependency (``pip install 'pz-rail-deepdisc[eazy]'``) imported only
when templates are loaded or a model is built or used (:func:`import_eazy`).
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.fit.templates import BUILTIN_SETS, builtin_templates


def import_eazy():
    """Import eazy-py's modules quietly, or explain how to install it."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import eazy.filters
            import eazy.photoz
            import eazy.templates
            import eazy.utils
    except ImportError as err:
        raise ImportError("EAZY needs the optional dependency eazy-py: "
                          "pip install 'pz-rail-deepdisc[eazy]'") from err
    return eazy


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


@dataclass
class TemplateSpec:
    """Templates loaded for EAZY: eazy ``Template`` objects and where each came from."""

    templates: list[Any]
    names: list[str]
    sources: list[str]
    description: str


def load_templates(spec: str) -> TemplateSpec:
    """Load templates for EAZY.

    Parameters
    ----------
    spec
        A built-in set name (``cww``, ``cosmos``, ``oracle``; see
        :mod:`rail.deepdisc.fit.templates`), an EAZY ``.param`` file, or several of these
        joined by commas (their templates are concatenated), e.g.
        ``".../fsps_full/tweak_fsps_QSF_12_v3.param,.../sfhz/blue_sfhz_13.param"``.

    Raises
    ------
    OptionError, InputError
        Naming the unknown set or the unreadable file, before any fitting.
    """
    eazy = import_eazy()
    items = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not items:
        raise OptionError("no EAZY templates given")
    out = TemplateSpec([], [], [], ",".join(items))
    for item in items:
        if item in BUILTIN_SETS:
            _add_builtin(eazy, out, item)
        else:
            _add_param_file(eazy, out, item)
    return out


def _add_builtin(eazy: Any, out: TemplateSpec, name: str) -> None:
    """Add a built-in template set (:mod:`rail.deepdisc.fit.templates`) to ``out``."""
    for t in builtin_templates(name).templates:
        with contextlib.redirect_stdout(io.StringIO()):
            out.templates.append(eazy.templates.Template(arrays=(t.wave, t.flux), name=t.name))
        out.names.append(t.name)
        out.sources.append(t.source)


def _add_param_file(eazy: Any, out: TemplateSpec, param_file: str) -> None:
    """Add the templates an EAZY ``.param`` file lists to ``out``."""
    for fpath, scale in parse_param_file(param_file):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                templ = eazy.templates.Template(file=fpath, to_angstrom=scale)
        except Exception as err:  # eazy raises many kinds on bad files
            raise InputError(f"cannot read EAZY template {fpath} (listed in {param_file}): "
                             f"{err}") from err
        if not np.all(np.isfinite(templ.flux)) or templ.wave.size < 2:
            raise InputError(f"EAZY template {fpath} (listed in {param_file}) holds no "
                             "usable spectrum")
        out.templates.append(templ)
        out.names.append(Path(fpath).name)
        out.sources.append(fpath)
