"""Catalog photometry in bands the scenes were not rendered in (e.g. HST for a JWST field).

Real JWST deep-field catalogs fit templates to HST + NIRCam photometry, while the images the
network sees are NIRCam only. For the "matched bands" study the simulator's truth gives the
noiseless magnitudes in the extra bands (:func:`rail.deepdisc.sim.population.model_magnitudes`)
and this adds Gaussian noise at point-source depths, with RAIL's non-detection convention.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.fit.photometry_table import fluxes_to_mags
from rail.deepdisc.magnitudes import NJY_ZEROPOINT, mag_to_flux
from rail.deepdisc.sim.population import model_magnitudes
from rail.deepdisc.spectra import sed_distortion
from rail.deepdisc.spectra.bands import FilterMap, validate_bands

#: 5-sigma point-source depths of GOODS-S-deep-like HST ACS imaging (Hubble Legacy Fields)
HST_DEPTHS = {"hst_f435w": 29.0, "hst_f606w": 29.3, "hst_f775w": 28.9, "hst_f814w": 29.0,
              "hst_f850lp": 28.5}

NEEDED = ("sed_index", "redshift", "abs_mag", "is_quiescent")


def catalog_photometry(objects: Mapping[str, np.ndarray], bands: Sequence[str],
                       depths: Mapping[str, float], seed: int,
                       nondetect_val: float = 99.0, filters: FilterMap | None = None
                       ) -> dict[str, np.ndarray]:
    """Noisy fluxes and magnitudes of simulated objects in extra bands.

    Returns columns ``flux_<band>``, ``flux_err_<band>`` (nJy), ``mag_<band>`` and
    ``mag_err_<band>``; below S/N 1 a magnitude is ``nondetect_val`` with the 1-sigma limit
    as its error (RAIL's convention, with the conversion ``ScenePhotometry`` uses,
    :func:`rail.deepdisc.fit.photometry_table.fluxes_to_mags`). ``filters``: the survey's
    bands that are not built in (:mod:`rail.deepdisc.spectra.bands`).
    """
    bands = validate_bands(bands, "bands", filters)
    missing = [c for c in NEEDED if c not in objects]
    if missing:
        raise InputError(f"objects lack columns {missing} needed for catalog photometry")
    no_depth = [b for b in bands if b not in depths]
    if no_depth:
        raise OptionError(f"no depth given for bands {no_depth}")
    mags = model_magnitudes(objects["sed_index"], objects["redshift"], objects["abs_mag"],
                            objects["is_quiescent"], bands, filters=filters)
    offsets = sed_distortion.magnitude_offsets(objects, bands, filters)
    if offsets is not None:
        mags = mags + offsets
    rng = np.random.default_rng([seed, 47])
    out: dict[str, np.ndarray] = {}
    for j, band in enumerate(bands):
        sigma = float(mag_to_flux(depths[band])) / 5.0  # 5-sigma point-source depth
        flux = mag_to_flux(mags[:, j]) + rng.normal(0.0, sigma, mags.shape[0])
        err = np.full(flux.size, sigma)
        out[f"flux_{band}"] = flux
        out[f"flux_err_{band}"] = err
        out[f"mag_{band}"], out[f"mag_err_{band}"] = fluxes_to_mags(
            flux, err, NJY_ZEROPOINT, nondetect_snr=1.0, nondetect_val=nondetect_val)
    return out
