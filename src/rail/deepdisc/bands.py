"""Photometric bands known to the project and their filter curves.

Band names are the ones used in scene stores (``jwst_f090w`` ... ``jwst_f444w``,
``lsst_u`` ... ``lsst_y``); filter transmission curves come from astro-sedpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache

import numpy as np

from rail.deepdisc.errors import OptionError

#: NIRCam bands of the JADES-like preset, blue to red.
NIRCAM_BANDS: tuple[str, ...] = (
    "jwst_f090w",
    "jwst_f115w",
    "jwst_f150w",
    "jwst_f200w",
    "jwst_f277w",
    "jwst_f335m",
    "jwst_f356w",
    "jwst_f410m",
    "jwst_f444w",
)

#: LSST bands, blue to red.
LSST_BANDS: tuple[str, ...] = ("lsst_u", "lsst_g", "lsst_r", "lsst_i", "lsst_z", "lsst_y")

#: HST ACS/WFC bands (GOODS/HUDF-like optical coverage of JWST deep fields)
HST_ACS_BANDS: tuple[str, ...] = ("hst_f435w", "hst_f606w", "hst_f775w", "hst_f814w",
                                  "hst_f850lp")

#: scene-store band name -> astro-sedpy filter name
SEDPY_FILTER_NAMES: dict[str, str] = {b: b for b in NIRCAM_BANDS}
SEDPY_FILTER_NAMES.update({b: f"lsst_baseline_{b[-1]}" for b in LSST_BANDS})
SEDPY_FILTER_NAMES.update({b: f"acs_wfc_{b.removeprefix('hst_')}" for b in HST_ACS_BANDS})

KNOWN_BANDS: tuple[str, ...] = tuple(SEDPY_FILTER_NAMES)


def validate_bands(bands: Iterable[str], what: str = "bands") -> list[str]:
    """Check that every band is known, and return them as a list.

    Parameters
    ----------
    bands
        Band names as used in scene stores.
    what
        How to name the list in the error message (e.g. the config option).

    Raises
    ------
    ValueError
        Naming the unknown band(s) and listing the known ones.
    """
    bands = list(bands)
    if not bands:
        raise OptionError(f"{what}: no bands given")
    unknown = [b for b in bands if b not in SEDPY_FILTER_NAMES]
    if unknown:
        raise OptionError(
            f"{what}: unknown band(s) {unknown}; known bands are {list(KNOWN_BANDS)}"
        )
    if len(set(bands)) != len(bands):
        raise OptionError(f"{what}: duplicated band names in {bands}")
    return bands


@cache
def load_filter(band: str):
    """Return the astro-sedpy ``Filter`` for a band (cached)."""
    from sedpy.observate import Filter

    validate_bands([band])
    return Filter(SEDPY_FILTER_NAMES[band])


def filter_curve(band: str) -> tuple[np.ndarray, np.ndarray]:
    """Wavelength (Angstrom) and transmission of a band's filter, zeros trimmed."""
    filt = load_filter(band)
    return np.asarray(filt.wavelength, float), np.asarray(filt.transmission, float)


def effective_wavelength(bands: Sequence[str]) -> np.ndarray:
    """Effective wavelengths (Angstrom) of the bands, as astro-sedpy defines them."""
    return np.array([load_filter(b).wave_effective for b in bands], dtype=float)


def reference_band(bands: Sequence[str], survey: str = "") -> str:
    """The band of the S/N quality flag and of the "bright" subset (S/N > 10).

    The survey preset's detection band when ``bands`` hold it (``survey``'s first, then any
    preset's: ``jwst_f200w`` for JWST fields, ``lsst_i`` for LSST ones), else the middle band.
    """
    from rail.deepdisc.sim.surveys import SURVEYS

    bands = list(bands)
    if not bands:
        raise OptionError("no bands to choose a reference band from")
    presets = [SURVEYS[survey]] if survey in SURVEYS else []
    for preset in [*presets, *SURVEYS.values()]:
        if preset.detection_band in bands:
            return preset.detection_band
    return bands[len(bands) // 2]
