"""What a second-renderer field looks like: bands, depths and the field's options."""

from __future__ import annotations

from dataclasses import dataclass, field

#: the jades preset's bands (store name = sedpy name) and this field's 5-sigma depths
#: (AB, 0.2"-radius aperture): JADES-deep-like, not the preset's values
DEPTHS = {"jwst_f090w": 29.6, "jwst_f115w": 29.8, "jwst_f150w": 29.9, "jwst_f200w": 30.0,
          "jwst_f277w": 30.2, "jwst_f335m": 29.7, "jwst_f356w": 30.2, "jwst_f410m": 29.7,
          "jwst_f444w": 29.9}
#: long-wavelength-channel bands (native 0.063" pixels)
LW_BANDS = ("jwst_f277w", "jwst_f335m", "jwst_f356w", "jwst_f410m", "jwst_f444w")
DETECTION_BAND = "jwst_f200w"
#: AB magnitude of 1 nJy
NJY_ZEROPOINT = 31.4
#: oversampling of the PSF images written
PSF_OVERSAMPLING = 4


@dataclass(frozen=True)
class FieldConfig:
    """What the field looks like (defaults: 2.0 arcmin^2 at 0.04"/pixel)."""

    mosaic_size: int = 2112
    pixel_scale: float = 0.04
    surface_density: float = 2400.0
    spec_mag_50: float = 26.5
    seed: int = 0
    margin: int = 40
    nan_border: int = 8
    rotation_deg: float = -12.0
    sip_coefficient: float = 1.0e-6
    center: tuple[float, float] = (53.135, -27.81)
    segmap_threshold: float = 1.0
    min_footprint_pixels: int = 3
    snr_aperture_arcsec: float = 0.2
    n_outside: int = 5
    zmax_inputs: float = 12.0
    depths: dict[str, float] = field(default_factory=lambda: dict(DEPTHS))
    #: 'synthesis' or 'analytic' (see :class:`.population.PopulationModel`)
    sed_family: str = "synthesis"

    @property
    def bands(self) -> list[str]:
        return list(self.depths)

    @property
    def area_arcmin2(self) -> float:
        """Area rendered (mosaic and margin)."""
        return ((self.mosaic_size + 2 * self.margin) * self.pixel_scale / 60.0) ** 2
