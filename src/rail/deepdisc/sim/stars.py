"""Stars as contaminants: point sources with the full PSF, labelled, without a redshift.

With ``star_fraction`` > 0 (:class:`StarOptions`) a random share of a population's rows
become stars (the galaxies of the other rows are unchanged). A star is a point source: the
renderer draws the band's PSF, diffraction spikes included with the ``optical`` PSF. Its
SED is a blackbody whose temperature is log-uniform in 2,800-9,000 K (the faint
high-latitude stars of deep fields are mostly K and M dwarfs of the halo and thick disk;
molecular bands are not modelled); its magnitude in the limit band follows the slope of
faint star counts, ``dN/dm ~ 10^(0.1 m)`` (e.g. Bahcall & Soneira 1980; Ryan & Reid 2016
for the deep-field counts), from 10 mag brighter than the limit down to the limit.

Star rows have ``is_star = 1``, ``star_teff`` (K), ``redshift`` NaN, ``sed_index`` -1,
``sed_name`` ``star``, ``abs_mag`` and ``log_mass`` NaN and zero size; in a scene store they
keep ``is_star`` and ``star_teff`` and get ``redshift_kind = none``, so training uses them for
detection only and metrics (which need a finite true redshift) leave them out. Draws use
``numpy.random.default_rng([seed, 102])``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rail.deepdisc.magnitudes import mag_to_flux
from rail.deepdisc.options import option
from rail.deepdisc.sim.morphology import catalog_columns
from rail.deepdisc.sim.randomise import RealismChoice
from rail.deepdisc.spectra import sed_distortion
from rail.deepdisc.spectra.bands import FilterMap
from rail.deepdisc.spectra.library import SEDLibrary
from rail.deepdisc.spectra.photometer import Photometer

#: slope of the faint star counts, d log10 N / dm
STAR_COUNT_SLOPE = 0.1
#: stars are drawn from this many magnitudes brighter than the limit to the limit
STAR_MAG_RANGE = 10.0
#: blackbody temperatures (K) of the star SEDs, log-uniform
TEFF_RANGE = (2800.0, 9000.0)
#: star columns copied into a scene store's /objects
STORE_COLUMNS = ("is_star", "star_teff")

_H_C_OVER_K = 1.4388e8  # h c / k_B in Angstrom K


@dataclass(frozen=True, kw_only=True)
class StarOptions(RealismChoice):
    """Stars among the population's objects (None: the ``realism`` preset's value)."""

    star_fraction: float | None = option(
        None, "fraction of the objects that are stars (point sources, blackbody SEDs, "
        "star-count magnitudes, no redshift)", ge=0, le=0.5)


@lru_cache(maxsize=2)
def blackbody_library(n: int = 64) -> SEDLibrary:
    """Blackbody f_lambda on the simulator's wavelength grid at ``n`` temperatures."""
    teff = np.geomspace(*TEFF_RANGE, n)
    wave = 900.0 * np.exp(np.arange(int(np.log(3.0e5 / 900.0) / 1.0e-3) + 1) * 1.0e-3)
    with np.errstate(over="ignore"):
        flux = wave[None, :] ** -5 / np.expm1(_H_C_OVER_K / (wave[None, :] * teff[:, None]))
    names = np.array([f"star_T{t:.0f}" for t in teff])
    return SEDLibrary(names=names, template=names, ebv=np.zeros(n), quiescent=np.zeros(n, bool),
                      wave=wave, flux=flux / flux.max(axis=1, keepdims=True))


def star_magnitudes(teff_index: np.ndarray, ref_mag: np.ndarray, ref_band: str,
                    bands: Sequence[str], filters: FilterMap | None = None) -> np.ndarray:
    """AB magnitudes (n, n_bands) of blackbody stars given their ``ref_band`` magnitude
    (``filters``: the survey's bands that are not built in)."""
    lib = blackbody_library()
    phot = Photometer(lib, list(dict.fromkeys([*bands, ref_band])), igm=False,
                      filters=filters)
    maggies = phot.maggies(teff_index, np.zeros(len(teff_index)))
    ref = maggies[:, [phot.bands.index(ref_band)]]
    cols = [phot.bands.index(b) for b in bands]
    return np.asarray(ref_mag, float)[:, None] - 2.5 * np.log10(maggies[:, cols] / ref)


def add_stars(cat: dict[str, np.ndarray], config: StarOptions, seed: int,
              bands: Sequence[str], limit_band: str, mag_limit: float,
              filters: FilterMap | None = None) -> None:
    """Turn a random ``star_fraction`` of the rows of a population into stars (in place)."""
    fraction = config.setting("star_fraction")
    if not fraction:
        return
    rng = np.random.default_rng([seed, 102])
    n = cat["redshift"].size
    u = rng.uniform(size=(3, n))
    star = u[0] < fraction
    lib = blackbody_library()
    t_index = np.minimum((u[1][star] * len(lib)).astype(np.int64), len(lib) - 1)
    mags = star_magnitudes(t_index, _count_magnitudes(u[2][star], mag_limit), limit_band,
                           bands, filters)
    values: dict[str, object] = {
        "redshift": np.nan, "is_quiescent": 0, "sed_index": -1, "sed_name": b"star",
        "ebv": 0.0, "abs_mag": np.nan, "log_mass": np.nan, "Re_maj": 0.0, "Re_maj_kpc": 0.0,
        "sersic_n": 1.0, "axis_ratio": 1.0, "position_angle": 0.0, "bulge_fraction": 0.0,
        "Re_bulge": 0.0, "bulge_axis_ratio": 0.0, "bulge_sed_index": -1,
        "clump_sed_index": -1, "ew_oiii_hb": 0.0, "oh_abundance": np.nan,
        **dict.fromkeys(sed_distortion.COLUMNS, 0.0),
        **dict.fromkeys(catalog_columns(bands), 0),
    }
    for col, value in values.items():
        if col in cat:
            cat[col][star] = value
    for j, band in enumerate(bands):
        cat[f"mag_{band}"][star] = mags[:, j]
        cat[f"{band}_fnu"][star] = mag_to_flux(mags[:, j])
    cat["is_star"] = star.astype(np.int8)
    teff = np.full(n, np.nan)
    teff[star] = np.geomspace(*TEFF_RANGE, len(lib))[t_index]
    cat["star_teff"] = teff


def _count_magnitudes(u: np.ndarray, mag_limit: float) -> np.ndarray:
    """Inverse-CDF draw from ``dN/dm ~ 10^(a m)`` over ``[limit - range, limit]``."""
    a, lo = STAR_COUNT_SLOPE, mag_limit - STAR_MAG_RANGE
    return lo + np.log10(1.0 + u * (10.0 ** (a * STAR_MAG_RANGE) - 1.0)) / a


def is_star(cat: Mapping[str, np.ndarray], j: int) -> bool:
    """Whether catalog row ``j`` is a star."""
    return "is_star" in cat and bool(cat["is_star"][j])


def redshift_kinds(cat: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """``redshift_kind`` of rendered objects: ``true``, or ``none`` for stars."""
    kinds = np.full(rows.size, b"true", dtype="S4")
    if "is_star" in cat:
        kinds[np.asarray(cat["is_star"])[rows] != 0] = b"none"
    return kinds
