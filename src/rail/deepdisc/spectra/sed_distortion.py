"""Random smooth distortions of galaxy SEDs: an SED randomisation for pretraining.

A template library (COSMOS x dust, CWW+SB) holds a few dozen SED shapes; real galaxies,
and other SED libraries (stellar population synthesis with other star-formation
histories, metallicities and dust laws), have break strengths, UV slopes and optical/NIR
colours between and beyond them. A network pretrained on the templates alone learns their
exact colour-redshift relations and is biased on galaxies whose SEDs differ
(``benchmarks/domain_transfer.py``). ``sed_distortion`` multiplies each galaxy's SED by a
random smooth curve, so the network learns to read redshift from features that survive
such changes rather than from the templates' exact colours.

The curve is a magnitude offset ``dm(lambda_rest)`` that interpolates linearly in
``ln lambda_rest`` between :data:`N_KNOTS` knots spread from 900 A to 3 um (one every
factor ~1.6 in wavelength), each knot drawn from N(0, ``sed_distortion``) per galaxy. It
is shifted per galaxy so that it is zero at the rest wavelength the limit band sees:
the magnitude in the limit band, so the selection and the number counts, are unchanged;
only colours change. The shifted knots are the catalog columns ``sed_distortion_<k>``,
from which the offsets in any band follow (:func:`magnitude_offsets`), so catalog
magnitudes in bands the scenes were not rendered in stay consistent.

Draws come from ``numpy.random.default_rng([seed, 203])``, a stream nothing else uses:
switching the option on changes no other column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rail.deepdisc.spectra.bands import FilterMap, effective_wavelength
from rail.deepdisc.spectra.interpolate import row_interp

#: number of knots of the distortion curve
N_KNOTS = 8
#: their rest wavelengths (natural log of Angstrom)
KNOTS_LN_WAVE = np.linspace(np.log(900.0), np.log(30000.0), N_KNOTS)
#: catalog columns holding the knots (mag)
COLUMNS = tuple(f"sed_distortion_{k}" for k in range(N_KNOTS))


def _curve(knots: np.ndarray, z: np.ndarray, wave_obs: float) -> np.ndarray:
    """The curve of each galaxy (rows of ``knots``) at an observed wavelength (stars,
    without a redshift, get the first knot: theirs are zero)."""
    x = np.nan_to_num(np.log(wave_obs / (1.0 + z)), nan=KNOTS_LN_WAVE[0])
    return row_interp(x, KNOTS_LN_WAVE, knots)


def draw_knots(n: int, rms: float, z: np.ndarray, anchor_band: str, seed: int,
               filters: FilterMap | None = None) -> dict[str, np.ndarray]:
    """Knot columns of ``n`` galaxies, zero at the rest wavelength ``anchor_band`` sees.

    Parameters
    ----------
    n
        Number of galaxies.
    rms
        Standard deviation (mag) of every knot before the shift.
    z
        Redshifts.
    anchor_band
        The band whose magnitudes stay unchanged (the population's limit band).
    seed
        The population's seed.
    filters
        The survey's bands that are not built in (:mod:`rail.deepdisc.spectra.bands`).
    """
    knots = np.random.default_rng([seed, 203]).normal(0.0, rms, (n, N_KNOTS))
    z = np.asarray(z, float)
    knots -= _curve(knots, z, float(effective_wavelength([anchor_band], filters)[0]))[:, None]
    return {name: knots[:, k] for k, name in enumerate(COLUMNS)}


def magnitude_offsets(catalog: Mapping[str, np.ndarray], bands: Sequence[str],
                      filters: FilterMap | None = None) -> np.ndarray | None:
    """Magnitude offsets (n_galaxies, n_bands) of the catalog's distortions; None if the
    catalog has none (``filters``: the survey's bands that are not built in)."""
    if COLUMNS[0] not in catalog:
        return None
    knots = np.column_stack([np.asarray(catalog[c], float) for c in COLUMNS])
    z = np.asarray(catalog["redshift"], float)
    return np.column_stack([_curve(knots, z, w) for w in effective_wavelength(bands, filters)])
