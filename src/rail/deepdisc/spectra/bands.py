"""Photometric bands and their filter curves.

A band name in a scene store is valid if a filter curve is known for it:

* the project's built-in bands (``jwst_f090w`` ... ``jwst_f444w``, ``lsst_u`` ...
  ``lsst_y``, ``hst_f435w`` ...), mapped to astro-sedpy filters by
  :data:`SEDPY_FILTER_NAMES`;
* any astro-sedpy filter name used as a band name (``decam_g``, ``hsc_i``,
  ``wfc3_ir_f160w``, ...);
* the bands of a survey file (:mod:`rail.deepdisc.sim.survey_file`), which map a band name
  to an astro-sedpy filter or to a two-column curve file. Loading the survey file registers
  them (:func:`register_filters`), and scene stores simulated from it carry the mapping
  (root attribute ``filters``, see :func:`filters_attr`), registered again whenever such a
  store is opened, so photometry and template fitters find the curves in any process.

The registry of bands (and of surveys' detection bands) is global to the process: opening a
survey file or a store adds to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class BandFilter:
    """Where a band's transmission curve comes from: an astro-sedpy filter or a curve.

    Attributes
    ----------
    sedpy_name
        astro-sedpy filter name ('' for a curve given as data).
    wave, transmission
        The curve (Angstrom, throughput) when not an astro-sedpy filter.
    source
        Where the curve was read (a file), for messages and provenance.
    """

    sedpy_name: str = ""
    wave: tuple[float, ...] = ()
    transmission: tuple[float, ...] = ()
    source: str = ""

    def as_dict(self) -> dict:
        """JSON-able form (stored in scene stores)."""
        if self.sedpy_name:
            return {"sedpy": self.sedpy_name}
        return {"source": self.source, "wave": list(self.wave),
                "transmission": list(self.transmission)}

    @classmethod
    def from_dict(cls, value: Mapping, where: str) -> BandFilter:
        """Inverse of :meth:`as_dict`; ``where`` names the origin in errors."""
        if not isinstance(value, Mapping):
            raise OptionError(f"{where}: a band's filter must be a mapping, got {value!r}")
        if value.get("sedpy"):
            return cls(sedpy_name=str(value["sedpy"]))
        wave = np.asarray(value.get("wave", ()), float)
        trans = np.asarray(value.get("transmission", ()), float)
        if wave.ndim != 1 or wave.size < 3 or wave.shape != trans.shape:
            raise OptionError(f"{where}: a filter curve needs >= 3 (wave, transmission) pairs")
        return cls(wave=tuple(wave.tolist()), transmission=tuple(trans.tolist()),
                   source=str(value.get("source", "")))

    def describe(self) -> str:
        return f"astro-sedpy filter {self.sedpy_name}" if self.sedpy_name else \
            f"the curve of {self.source or 'a survey file'}"


#: bands of survey files and scene stores: band -> filter
_REGISTERED: dict[str, BandFilter] = {}
#: survey name -> its detection band (survey files loaded, stores opened)
_DETECTION_BANDS: dict[str, str] = {}


@cache
def sedpy_filter_names() -> frozenset[str]:
    """Every filter name astro-sedpy ships."""
    from sedpy.observate import list_available_filters

    return frozenset(list_available_filters())


def project_filter(band: str) -> BandFilter | None:
    """The filter of a built-in band or of a band registered by a survey file or store."""
    if band in SEDPY_FILTER_NAMES:
        return BandFilter(sedpy_name=SEDPY_FILTER_NAMES[band])
    return _REGISTERED.get(band)


def band_filter(band: str) -> BandFilter | None:
    """The filter of a band (built-in, registered or an astro-sedpy name), or None."""
    known = project_filter(band)
    if known is None and isinstance(band, str) and band in sedpy_filter_names():
        return BandFilter(sedpy_name=band)
    return known


def register_filters(filters: Mapping[str, BandFilter], source: str) -> None:
    """Make bands of a survey file or scene store known by name (in this process).

    Raises
    ------
    OptionError
        If a band already means another curve (a built-in band, an astro-sedpy name or a
        band registered before), naming the band and both curves.
    """
    for band, new in filters.items():
        old = band_filter(band)
        if old is not None and not _same_curve(old, new):
            where = f"{source}: " if source else ""
            raise OptionError(f"{where}band {band!r} is already {old.describe()}, not "
                              f"{new.describe()}; give the band another name")
    for band, new in filters.items():
        if band_filter(band) is None:
            _REGISTERED[band] = new


def register_detection_band(survey: str, band: str) -> None:
    """Remember a survey's detection band (for
    :func:`rail.deepdisc.sim.surveys.reference_band`)."""
    if survey and band:
        _DETECTION_BANDS[survey] = band


def registered_detection_bands() -> dict[str, str]:
    """The detection bands of the survey files and stores seen in this process, by survey."""
    return dict(_DETECTION_BANDS)


def _same_curve(a: BandFilter, b: BandFilter) -> bool:
    if a.sedpy_name or b.sedpy_name:
        return a.sedpy_name == b.sedpy_name
    return len(a.wave) == len(b.wave) and np.allclose(a.wave, b.wave) and \
        np.allclose(a.transmission, b.transmission)


def filters_attr(bands: Sequence[str]) -> str:
    """The bands' filters as JSON (the ``filters`` root attribute of scene stores)."""
    validate_bands(bands)
    return json.dumps({b: band_filter(b).as_dict() for b in bands})


def register_filters_attr(text: str | bytes, source: str) -> None:
    """Register the bands of a ``filters`` attribute written by :func:`filters_attr`."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as err:
        raise OptionError(f"{source}: the 'filters' attribute is not JSON: {err}") from None
    if not isinstance(value, Mapping):
        raise OptionError(f"{source}: the 'filters' attribute must map bands to filters")
    register_filters({str(b): BandFilter.from_dict(v, f"{source}: filters[{b}]")
                      for b, v in value.items()}, source)


def validate_bands(bands: Iterable[str], what: str = "bands") -> list[str]:
    """Check that every band has a filter curve, and return them as a list.

    Parameters
    ----------
    bands
        Band names as used in scene stores.
    what
        How to name the list in the error message (e.g. the config option).

    Raises
    ------
    OptionError
        Naming the unknown band(s) and saying which names are known.
    """
    bands = list(bands)
    if not bands:
        raise OptionError(f"{what}: no bands given")
    unknown = [b for b in bands if band_filter(b) is None]
    if unknown:
        raise OptionError(
            f"{what}: unknown band(s) {unknown}; known bands are {list(KNOWN_BANDS)}, "
            f"the bands of survey files loaded ({sorted(_REGISTERED)}) and any "
            "astro-sedpy filter name (e.g. decam_g, hsc_i, wfc3_ir_f160w)")
    if len(set(bands)) != len(bands):
        raise OptionError(f"{what}: duplicated band names in {bands}")
    return bands


@cache
def load_filter(band: str):
    """Return the astro-sedpy ``Filter`` for a band (cached)."""
    from sedpy.observate import Filter

    validate_bands([band])
    spec = band_filter(band)
    if spec.sedpy_name:
        return Filter(spec.sedpy_name)
    return Filter(kname=band, data=(np.asarray(spec.wave), np.asarray(spec.transmission)))


def filter_curve(band: str) -> tuple[np.ndarray, np.ndarray]:
    """Wavelength (Angstrom) and transmission of a band's filter, zeros trimmed."""
    filt = load_filter(band)
    return np.asarray(filt.wavelength, float), np.asarray(filt.transmission, float)


def effective_wavelength(bands: Sequence[str]) -> np.ndarray:
    """Effective wavelengths (Angstrom) of the bands, as astro-sedpy defines them."""
    return np.array([load_filter(b).wave_effective for b in bands], dtype=float)
