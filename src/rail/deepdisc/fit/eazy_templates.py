"""Templates for EAZY (eazy-py): built-in sets and EAZY ``.param`` files, as eazy objects.

eazy-py is an optional dependency (``pip install 'pz-rail-deepdisc[eazy]'``) imported only
when templates are loaded or a model is built or used (:func:`import_eazy`).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.spectra.sed_files import parse_param_file
from rail.deepdisc.spectra.template_sets import BUILTIN_SETS, builtin_templates


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
        A built-in set name (``cww``, ``cosmos``, ``oracle``, ``sps``; see
        :mod:`rail.deepdisc.spectra.template_sets`), an EAZY ``.param`` file, or several of these
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
    """Add a built-in template set (:mod:`rail.deepdisc.spectra.template_sets`) to ``out``."""
    lib = builtin_templates(name)
    for i, entry in enumerate(lib.names):
        with contextlib.redirect_stdout(io.StringIO()):
            out.templates.append(eazy.templates.Template(arrays=lib.entry_sed(i),
                                                         name=str(entry)))
        out.names.append(str(entry))
        out.sources.append(str(lib.sources[i]))


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
