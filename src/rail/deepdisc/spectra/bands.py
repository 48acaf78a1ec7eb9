"""Photometric bands and their filter curves.

A band name is valid if a filter curve is known for it:

* the project's built-in bands (``jwst_f090w`` ... ``jwst_f444w``, ``lsst_u`` ...
  ``lsst_y``, ``hst_f435w`` ...), mapped to astro-sedpy filters by
  :data:`SEDPY_FILTER_NAMES`;
* any astro-sedpy filter name used as a band name (``decam_g``, ``hsc_i``,
  ``wfc3_ir_f160w``, ...);
* the bands of a survey file (:mod:`rail.deepdisc.sim.survey_file`), which map a band name
  to an astro-sedpy filter or to a two-column curve file.

The first two resolve by name alone. The third exists only as data that travels with what
it describes: a ``filters`` mapping (band -> :class:`BandFilter`) held by the survey
(:attr:`rail.deepdisc.sim.survey_preset.SurveyPreset.filters`), by a scene store simulated
from it (root attribute ``filters``, :func:`filters_attr`, read back by
:func:`parse_filters_attr` into :attr:`rail.deepdisc.store.scenes.SceneStore.filters`) and
by a photometry table measured on that store (the same attribute). Every function that looks
up a curve takes that mapping (``filters=``); nothing here remembers a band between calls,
so a lookup never depends on which files the process opened before. :func:`check_filters`
refuses a band name that already means another curve (a built-in band or an astro-sedpy
name).
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


#: band -> filter of a survey file, scene store or photometry table (every band of it; the
#: ones that are not built in are what lookups need it for)
FilterMap = Mapping[str, BandFilter]


@cache
def sedpy_filter_names() -> frozenset[str]:
    """Every filter name astro-sedpy ships."""
    from sedpy.observate import list_available_filters

    return frozenset(list_available_filters())


def project_filter(band: str, filters: FilterMap | None = None) -> BandFilter | None:
    """The filter of a built-in band or of a band of ``filters`` (a survey's or store's)."""
    if band in SEDPY_FILTER_NAMES:
        return BandFilter(sedpy_name=SEDPY_FILTER_NAMES[band])
    return (filters or {}).get(band)


def band_filter(band: str, filters: FilterMap | None = None) -> BandFilter | None:
    """The filter of a band (built-in, of ``filters`` or an astro-sedpy name), or None."""
    known = project_filter(band, filters)
    if known is None and isinstance(band, str) and band in sedpy_filter_names():
        return BandFilter(sedpy_name=band)
    return known


def check_filters(filters: FilterMap, source: str = "") -> dict[str, BandFilter]:
    """Refuse bands that already mean another curve; return the mapping as a dict.

    Parameters
    ----------
    filters
        Band -> filter, e.g. the bands of a survey file or a store's ``filters`` attribute.
    source
        Where the mapping comes from, for the message ('' for none).

    Raises
    ------
    OptionError
        If a band is a built-in band or an astro-sedpy name of another curve, naming the
        band and both curves.
    """
    where = f"{source}: " if source else ""
    for band, new in filters.items():
        if not isinstance(new, BandFilter):
            raise OptionError(f"{where}band {band!r} has no filter ({new!r})")
        old = band_filter(band)
        if old is not None and not _same_curve(old, new):
            raise OptionError(f"{where}band {band!r} is already {old.describe()}, not "
                              f"{new.describe()}; give the band another name")
    return dict(filters)


def _same_curve(a: BandFilter, b: BandFilter) -> bool:
    if a.sedpy_name or b.sedpy_name:
        return a.sedpy_name == b.sedpy_name
    return len(a.wave) == len(b.wave) and np.allclose(a.wave, b.wave) and \
        np.allclose(a.transmission, b.transmission)


def filters_attr(bands: Sequence[str], filters: FilterMap | None = None) -> str:
    """The bands' filters as JSON (the ``filters`` root attribute of scene stores), every
    band written out, so the file needs nothing else."""
    validate_bands(bands, filters=filters)
    return filters_json({b: band_filter(b, filters) for b in bands})


def filters_json(filters: FilterMap) -> str:
    """A band -> filter mapping as JSON (read back by :func:`parse_filters_attr`)."""
    return json.dumps({b: f.as_dict() for b, f in filters.items()})


def parse_filters_attr(text: str | bytes, source: str) -> dict[str, BandFilter]:
    """The band -> filter mapping of a ``filters`` attribute written by :func:`filters_attr`,
    checked by :func:`check_filters`.

    Raises
    ------
    OptionError
        Naming ``source`` if the text is not such a mapping or a band means another curve.
    """
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as err:
        raise OptionError(f"{source}: the 'filters' attribute is not JSON: {err}") from None
    if not isinstance(value, Mapping):
        raise OptionError(f"{source}: the 'filters' attribute must map bands to filters")
    return check_filters({str(b): BandFilter.from_dict(v, f"{source}: filters[{b}]")
                          for b, v in value.items()}, source)


def validate_bands(bands: Iterable[str], what: str = "bands",
                   filters: FilterMap | None = None) -> list[str]:
    """Check that every band has a filter curve, and return them as a list.

    Parameters
    ----------
    bands
        Band names as used in scene stores.
    what
        How to name the list in the error message (e.g. the config option).
    filters
        The bands of a survey file or store that are not built in (band -> filter).

    Raises
    ------
    OptionError
        Naming the unknown band(s) and saying which names are known.
    """
    bands = list(bands)
    if not bands:
        raise OptionError(f"{what}: no bands given")
    unknown = [b for b in bands if band_filter(b, filters) is None]
    if unknown:
        given = f", the bands given with them ({sorted(filters)})" if filters else ""
        raise OptionError(
            f"{what}: unknown band(s) {unknown}; known bands are {list(KNOWN_BANDS)}"
            f"{given}, any astro-sedpy filter name (e.g. decam_g, hsc_i, wfc3_ir_f160w) and "
            "the bands of the survey file or scene store that defines them")
    if len(set(bands)) != len(bands):
        raise OptionError(f"{what}: duplicated band names in {bands}")
    return bands


def load_filter(band: str, filters: FilterMap | None = None):
    """Return the astro-sedpy ``Filter`` for a band (cached by the band and its curve, so
    two curves of one band name never meet)."""
    validate_bands([band], filters=filters)
    return _sedpy_filter(band, band_filter(band, filters))


@cache
def _sedpy_filter(band: str, spec: BandFilter):
    from sedpy.observate import Filter

    if spec.sedpy_name:
        return Filter(spec.sedpy_name)
    return Filter(kname=band, data=(np.asarray(spec.wave), np.asarray(spec.transmission)))


def filter_curve(band: str, filters: FilterMap | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Wavelength (Angstrom) and transmission of a band's filter, zeros trimmed."""
    filt = load_filter(band, filters)
    return np.asarray(filt.wavelength, float), np.asarray(filt.transmission, float)


def effective_wavelength(bands: Sequence[str], filters: FilterMap | None = None
                         ) -> np.ndarray:
    """Effective wavelengths (Angstrom) of the bands, as astro-sedpy defines them."""
    return np.array([load_filter(b, filters).wave_effective for b in bands], dtype=float)
