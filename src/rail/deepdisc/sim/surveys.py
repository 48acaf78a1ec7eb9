"""Survey presets for the simulator: bands, pixels, depths, PSFs, population limits.

Depths are 5-sigma AB limits for the noise in a circular aperture of radius
``depth_aperture_arcsec``; the white pixel noise follows from them (see
:meth:`SurveyPreset.pixel_noise_njy`).

* ``jades``: JWST/NIRCam, JADES-Deep-like depths (5 sigma in r = 0.2" apertures, i.e.
  about 30.6-30.9 in the r = 0.1" apertures JADES quotes), 0.03"/pixel, diffraction-limited
  6.5 m aperture.
* ``lsst``: Rubin 10-year coadd depths (Ivezic et al. 2019 point-source 5 sigma),
  0.2"/pixel, 8.36 m aperture plus atmospheric seeing. The depth aperture radius
  0.6" has the noise-equivalent area of a 0.7" FWHM Gaussian PSF, so the depths are
  point-source (PSF-optimal) depths.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from rail.deepdisc.bands import LSST_BANDS, NIRCAM_BANDS, validate_bands
from rail.deepdisc.errors import OptionError
from rail.deepdisc.magnitudes import mag_to_flux
from rail.deepdisc.options import Options, option


@dataclass(frozen=True)
class SurveyPreset:
    """Everything the simulator needs to know about one survey.

    Attributes
    ----------
    name
        ``jades`` or ``lsst``.
    bands
        Scene-store band names, blue to red.
    pixel_scale
        Arcsec per pixel.
    depths
        5-sigma AB depth per band in an aperture of radius ``depth_aperture_arcsec``.
    depth_aperture_arcsec
        Radius of the aperture the depths refer to.
    diameter_m, obscuration
        Telescope aperture (m) and linear central obscuration (fraction of diameter).
    seeing_fwhm_arcsec
        Atmospheric FWHM at 5000 A (0 in space); scales as lambda^-0.2.
    detection_band
        Band of ``mag_limit`` and of the "bright" S/N cut.
    mag_limit, zmax
        Default population limits.
    field_center
        RA, Dec (deg) of the simulated field's tangent point.
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

    def pixel_noise_njy(self, depths: dict[str, float] | None = None,
                        pixel_scale: float | None = None) -> np.ndarray:
        """White-noise sigma per pixel (nJy) in each band that gives the depths.

        ``sigma_pix = f_5sigma / 5 / sqrt(N_pix)`` with ``N_pix`` the aperture area in
        pixels.
        """
        depths = self.depths if depths is None else depths
        scale = self.pixel_scale if pixel_scale is None else pixel_scale
        npix = np.pi * (self.depth_aperture_arcsec / scale) ** 2
        f5 = mag_to_flux(np.array([depths[b] for b in self.bands], dtype=float))
        return f5 / 5.0 / np.sqrt(npix)

    def with_overrides(self, **changes) -> SurveyPreset:
        """A copy with some fields replaced (e.g. other depths or pixel scale)."""
        if "bands" in changes:
            validate_bands(changes["bands"], "bands")
        unknown = sorted(set(changes.get("depths", {})) - set(changes.get("bands", self.bands)))
        if unknown:
            raise OptionError(f"depths given for bands {unknown} that are not among the "
                              f"{self.name} bands {list(self.bands)}")
        return replace(self, **changes)


JADES = SurveyPreset(
    name="jades",
    bands=NIRCAM_BANDS,
    pixel_scale=0.03,
    depths={
        "jwst_f090w": 29.7,
        "jwst_f115w": 29.9,
        "jwst_f150w": 29.9,
        "jwst_f200w": 30.0,
        "jwst_f277w": 30.3,
        "jwst_f335m": 29.8,
        "jwst_f356w": 30.3,
        "jwst_f410m": 29.8,
        "jwst_f444w": 30.0,
    },
    depth_aperture_arcsec=0.2,
    diameter_m=6.5,
    obscuration=0.11,
    seeing_fwhm_arcsec=0.0,
    detection_band="jwst_f200w",
    mag_limit=30.0,
    zmax=12.0,
    field_center=(53.1625, -27.7914),
)

LSST = SurveyPreset(
    name="lsst",
    bands=LSST_BANDS,
    pixel_scale=0.2,
    depths={
        "lsst_u": 26.1,
        "lsst_g": 27.4,
        "lsst_r": 27.5,
        "lsst_i": 26.8,
        "lsst_z": 26.1,
        "lsst_y": 24.9,
    },
    depth_aperture_arcsec=0.6,
    diameter_m=8.36,
    obscuration=0.61,
    seeing_fwhm_arcsec=0.7,
    detection_band="lsst_i",
    mag_limit=27.0,
    zmax=6.0,
    field_center=(62.0, -37.0),
)

SURVEYS: dict[str, SurveyPreset] = {"jades": JADES, "lsst": LSST}


def get_survey(name: str) -> SurveyPreset:
    """Return the preset for a survey name (any case).

    Raises
    ------
    OptionError
        If the survey is unknown, listing the known ones.
    """
    try:
        return SURVEYS[str(name).lower()]
    except KeyError:
        raise OptionError(f"unknown survey {name!r}; known surveys are "
                          f"{sorted(SURVEYS)}") from None


@dataclass(frozen=True, kw_only=True)
class SurveyChoice(Options):
    """The survey preset option shared by the population and rendering options (checked by
    their ``_check``, which look the preset up)."""

    survey: str = option("jades", "survey preset (bands, pixels, depths, PSF, default "
                         f"limits): {', '.join(SURVEYS)}")
