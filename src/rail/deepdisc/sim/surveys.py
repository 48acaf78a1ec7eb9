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
:meth:`SurveyPreset.pixel_noise_njy`) unless a band gives its pixel noise directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from rail.deepdisc.bands import validate_bands
from rail.deepdisc.errors import OptionError
from rail.deepdisc.magnitudes import NJY_ZEROPOINT, flux_to_mag, mag_to_flux
from rail.deepdisc.options import Options, option

#: folder of the preset survey files
PRESET_DIR = Path(__file__).with_name("presets")
#: presets listed first when several could apply (e.g. for a reference band)
_FIRST_PRESETS = ("jades", "lsst")
#: the galaxy population models a survey may choose (:mod:`rail.deepdisc.sim.population`)
POPULATION_MODEL_NAMES = ("deep", "lowz")


@dataclass(frozen=True)
class SurveyPreset:
    """Everything the simulator needs to know about one survey.

    Attributes
    ----------
    name
        Survey name (``jades``, ``lsst``, or a survey file's ``name``).
    bands
        Scene-store band names, blue to red.
    pixel_scale
        Arcsec per pixel.
    depths
        5-sigma AB depth per band in an aperture of radius ``depth_aperture_arcsec`` (for
        bands given by their pixel noise, the depth that noise makes).
    depth_aperture_arcsec
        Radius of the aperture the depths refer to.
    diameter_m, obscuration
        Telescope aperture (m) and linear central obscuration (fraction of diameter); used by
        the ``airy`` and ``optical`` PSFs (0 when the survey has none of those).
    seeing_fwhm_arcsec
        Atmospheric FWHM at 5000 A (0 in space); scales as lambda^-0.2 (``airy``/``optical``).
    detection_band
        Band of ``mag_limit`` and of the "bright" S/N cut.
    mag_limit, zmax
        Default population limits.
    population_model
        Default galaxy population model (``deep`` or ``lowz``,
        :mod:`rail.deepdisc.sim.population`).
    field_center
        RA, Dec (deg) of the simulated field's tangent point.
    pixel_noise
        Band -> pixel noise sigma (nJy) for bands given by their noise rather than a depth.
    psf_default
        PSF spec of the bands without their own (``{"kind": "airy"}`` by default).
    psfs
        Band -> PSF spec (``kind`` + parameters, see :mod:`rail.deepdisc.sim.psf`).
    struts
        Number and thickness (fraction of diameter) of the ``optical`` PSF's support struts.
    noise_correlation
        Band -> noise-correlation kernel spec (:mod:`rail.deepdisc.sim.noise`).
    flux_unit, zeropoint
        Unit of the survey file's pixel noise values and its AB zero point.
    description, reference, source
        Free text, the published source of the numbers, and the file read.
    """

    name: str
    bands: tuple[str, ...]
    pixel_scale: float
    depths: dict[str, float]
    depth_aperture_arcsec: float
    diameter_m: float
    obscuration: float
    seeing_fwhm_arcsec: float
    detection_band: str
    mag_limit: float
    zmax: float
    field_center: tuple[float, float] = field(default=(0.0, 0.0))
    pixel_noise: dict[str, float] = field(default_factory=dict)
    psf_default: dict[str, Any] = field(default_factory=lambda: {"kind": "airy"})
    psfs: dict[str, dict[str, Any]] = field(default_factory=dict)
    struts: tuple[int, float] | None = None
    noise_correlation: dict[str, dict[str, Any]] = field(default_factory=dict)
    flux_unit: str = "nJy"
    zeropoint: float = NJY_ZEROPOINT
    description: str = ""
    reference: str = ""
    source: str = ""
    population_model: str = "deep"

    def noise_kernels(self) -> list[np.ndarray | None]:
        """Per band, the unit-norm noise-correlation kernel (None: white noise)."""
        from rail.deepdisc.sim.noise import kernel_from_spec

        return [kernel_from_spec(self.noise_correlation.get(b)) for b in self.bands]

    def correlation_factors(self, pixel_scale: float | None = None) -> np.ndarray:
        """Per band, aperture variance over that of white noise of the same sigma."""
        from rail.deepdisc.sim.noise import correlation_factor

        if not self.noise_correlation:
            return np.ones(len(self.bands))
        scale = self.pixel_scale if pixel_scale is None else pixel_scale
        radius = self.depth_aperture_arcsec / scale
        return np.array([correlation_factor(k, radius) for k in self.noise_kernels()])

    def pixel_noise_njy(self, depths: dict[str, float] | None = None,
                        pixel_scale: float | None = None) -> np.ndarray:
        """Noise sigma per pixel (nJy) in each band that gives the depths.

        ``sigma_pix = f_5sigma / 5 / sqrt(N_pix c)`` with ``N_pix`` the aperture area in
        pixels and ``c`` the correlation factor (1 for white noise). Bands of
        :attr:`pixel_noise` keep their noise, unless ``depths`` are given.
        """
        own = depths is None
        depths = self.depths if own else depths
        scale = self.pixel_scale if pixel_scale is None else pixel_scale
        npix = np.pi * (self.depth_aperture_arcsec / scale) ** 2
        f5 = mag_to_flux(np.array([depths[b] for b in self.bands], dtype=float))
        sigma = f5 / 5.0 / np.sqrt(npix * self.correlation_factors(scale))
        if own:
            for i, band in enumerate(self.bands):
                sigma[i] = self.pixel_noise.get(band, sigma[i])
        return sigma

    def depths_of_noise(self, sigma_njy: np.ndarray) -> np.ndarray:
        """5-sigma AB depths (in the depth aperture) that per-band pixel noises make."""
        npix = np.pi * (self.depth_aperture_arcsec / self.pixel_scale) ** 2
        noise = np.asarray(sigma_njy, float) * np.sqrt(npix * self.correlation_factors())
        return flux_to_mag(5.0 * noise)

    def with_overrides(self, **changes) -> SurveyPreset:
        """A copy with some fields replaced (e.g. other depths or pixel scale).

        Bands given new depths, or all bands when the pixel scale changes, lose their
        :attr:`pixel_noise` (their depth is kept).
        """
        if "bands" in changes:
            validate_bands(changes["bands"], "bands")
        unknown = sorted(set(changes.get("depths", {})) - set(changes.get("bands", self.bands)))
        if unknown:
            raise OptionError(f"depths given for bands {unknown} that are not among the "
                              f"{self.name} bands {list(self.bands)}")
        if "pixel_noise" not in changes:
            keep = {} if "pixel_scale" in changes else self.pixel_noise
            changes["pixel_noise"] = {b: v for b, v in keep.items()
                                      if b not in changes.get("depths", {})}
        return replace(self, **changes)


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
