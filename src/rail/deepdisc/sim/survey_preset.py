"""One survey's description for the simulator (:class:`SurveyPreset`): bands, pixels,
depths, PSFs, noise and population limits.

Survey files are read into it by :mod:`rail.deepdisc.sim.survey_file`; the presets and the
lookup by name are :mod:`rail.deepdisc.sim.surveys`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rail.deepdisc.errors import OptionError
from rail.deepdisc.magnitudes import NJY_ZEROPOINT, flux_to_mag, mag_to_flux
from rail.deepdisc.spectra.bands import BandFilter, validate_bands

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
    filters
        Band -> filter of every band of the survey file (an astro-sedpy filter or a curve,
        :class:`rail.deepdisc.spectra.bands.BandFilter`): what every function that looks up
        one of these bands' curves is given (``filters=``), and what scene stores simulated
        from the survey carry.
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
    filters: dict[str, BandFilter] = field(default_factory=dict)

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
            validate_bands(changes["bands"], "bands", self.filters)
        unknown = sorted(set(changes.get("depths", {})) - set(changes.get("bands", self.bands)))
        if unknown:
            raise OptionError(f"depths given for bands {unknown} that are not among the "
                              f"{self.name} bands {list(self.bands)}")
        if "pixel_noise" not in changes:
            keep = {} if "pixel_scale" in changes else self.pixel_noise
            changes["pixel_noise"] = {b: v for b, v in keep.items()
                                      if b not in changes.get("depths", {})}
        return replace(self, **changes)
