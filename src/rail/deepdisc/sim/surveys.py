"""Surveys for the simulator: bands, pixels, depths, PSFs, noise, population limits.

A survey is described by a YAML file (:mod:`rail.deepdisc.sim.survey_file`, documented in
``docs/surveys.md``); the presets ship as such files in ``rail/deepdisc/sim/presets/``:

* ``jades``: JWST/NIRCam, JADES-Deep-like depths, 0.03"/pixel;
* ``lsst``: Rubin 10-year coadd depths, 0.2"/pixel;
* ``hsc``: HSC-SSP Deep layer grizy, 0.168"/pixel;
* ``roman``: Roman WFI High Latitude Wide Area imaging, 0.11"/pixel;
* ``hst``: HST ACS + WFC3/IR, CANDELS/Deep-like, 0.06"/pixel drizzled mosaics;
* ``cfhtls``: CFHTLS Deep, MegaCam u*griz, 0.186"/pixel;
* ``legacy_dr10``: DESI Legacy Imaging Surveys DR10 (DECam griz), 0.262"/pixel, with the
  ``lowz`` population of bright galaxies at z < 1.5;
* ``hsc_wide``: HSC-SSP Wide layer grizy, 0.168"/pixel, with the ``lowz`` population;

each citing the published source of its numbers. :func:`get_survey` takes a preset name or
the path of a survey file. Depths are 5-sigma AB limits for the noise in a circular aperture
of radius ``depth_aperture_arcsec``; the pixel noise follows from them (see
:meth:`rail.deepdisc.sim.survey_preset.SurveyPreset.pixel_noise_njy`) unless a band gives
its pixel noise directly. The :class:`~rail.deepdisc.sim.survey_preset.SurveyPreset` type
itself lives in :mod:`rail.deepdisc.sim.survey_preset`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rail.deepdisc.errors import OptionError
from rail.deepdisc.options import Options, option
from rail.deepdisc.sim.survey_preset import SurveyPreset
from rail.deepdisc.spectra.bands import BandFilter

#: folder of the preset survey files
PRESET_DIR = Path(__file__).with_name("presets")
#: presets listed first when several could apply (e.g. for a reference band)
_FIRST_PRESETS = ("jades", "lsst")
def preset_names() -> list[str]:
    """Names of the preset surveys (their files in :data:`PRESET_DIR`)."""
    names = sorted(p.stem for p in PRESET_DIR.glob("*.yml"))
    return [n for n in _FIRST_PRESETS if n in names] + \
        [n for n in names if n not in _FIRST_PRESETS]


class _Presets(Mapping):
    """The preset surveys by name, each read from its file when first asked for."""

    def __getitem__(self, name: str) -> SurveyPreset:
        if name not in preset_names():
            raise KeyError(name)
        return _load(str(PRESET_DIR / f"{name}.yml"))

    def __iter__(self) -> Iterator[str]:
        return iter(preset_names())

    def __len__(self) -> int:
        return len(preset_names())


SURVEYS: Mapping[str, SurveyPreset] = _Presets()


def is_survey_path(name: str) -> bool:
    """Whether a ``survey`` value names a file rather than a preset."""
    text = os.fspath(name)
    return text.lower().endswith((".yml", ".yaml")) or os.sep in text or os.path.isfile(text)


def get_survey(name: str | os.PathLike) -> SurveyPreset:
    """Return the survey of a preset name (any case) or of a survey file's path.

    Raises
    ------
    OptionError
        If the name is neither a preset nor an existing file, listing the presets.
    InputError
        If the survey file is bad (naming the file and the key).
    """
    text = os.fspath(name)
    if isinstance(name, str) and text.lower() in preset_names():
        return SURVEYS[text.lower()]
    if is_survey_path(text):
        path = Path(os.path.expandvars(text)).expanduser()
        if not path.is_file():
            raise OptionError(f"survey: no survey file {path}")
        stat = path.stat()
        return _load(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    raise OptionError(f"unknown survey {text!r}; give a survey file (.yml) or one of the "
                      f"presets {preset_names()}")


def survey_file(name: str | os.PathLike) -> str:
    """The file that defines a survey: a preset's file in :data:`PRESET_DIR`, or the path of
    a survey file (checked by :func:`get_survey`)."""
    get_survey(name)
    text = os.fspath(name)
    if isinstance(name, str) and text.lower() in preset_names():
        return str(PRESET_DIR / f"{text.lower()}.yml")
    return str(Path(os.path.expandvars(text)).expanduser().resolve())


@cache
def _load(path: str, mtime_ns: int = 0, size: int = 0) -> SurveyPreset:
    """Read a survey file (cached by path and modification)."""
    from rail.deepdisc.sim.survey_file import read_survey_file

    return read_survey_file(path)


def preset_detection_bands() -> dict[str, str]:
    """Detection band of every preset, by name (jades and lsst first)."""
    return {name: SURVEYS[name].detection_band for name in SURVEYS}


def reference_band(bands: Sequence[str], survey: str = "", detection_band: str = "") -> str:
    """The band of the S/N quality flag and of the "bright" subset (S/N > 10).

    The survey's detection band when ``bands`` hold it: ``detection_band`` first (given by
    the caller: a scene store's or survey file's), then the preset ``survey``'s, then any
    preset's (``jwst_f200w`` for JWST fields, ``lsst_i`` for LSST ones); else the middle
    band.
    """
    bands = list(bands)
    if not bands:
        raise OptionError("no bands to choose a reference band from")
    presets = preset_detection_bands()
    for band in [detection_band, presets.get(survey), *presets.values()]:
        if band and band in bands:
            return band
    return bands[len(bands) // 2]


def survey_detection_band(survey: str | os.PathLike) -> str:
    """The detection band of a preset or survey file; '' for '' or a name that is neither
    (e.g. the survey name a store records)."""
    text = os.fspath(survey)
    if not text or not (text.lower() in preset_names() or is_survey_path(text)):
        return ""
    return get_survey(survey).detection_band


def __getattr__(name: str) -> SurveyPreset:
    # JADES, LSST, ...: the presets as module constants, read when first used
    if name.isupper() and name.lower() in preset_names():
        return SURVEYS[name.lower()]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True, kw_only=True)
class SurveyChoice(Options):
    """The survey option shared by the population and rendering options (checked by their
    ``_check``, which look the survey up)."""

    survey: str = option("jades", "survey: a preset name "
                         f"({', '.join(preset_names())}) or a survey file (.yml)")

    @property
    def filters(self) -> dict[str, BandFilter]:
        """The survey's bands and their filters (:attr:`SurveyPreset.filters`)."""
        return get_survey(self.survey).filters
