"""A small stellar population synthesis of the renderer's own (no SPS code, no templates).

Stars are Planck curves with the features that carry redshift in real galaxies, each set
by the star's effective temperature T: a Balmer jump (strongest for A stars, ~9,500 K), line
blanketing blueward of 4,000 A that grows as stars get cooler (the 4000-A break of G/K
stars), the H- bump at 1.6 um of cool stars and TiO depression of M stars. A simple stellar
population (SSP) of age t sums a Salpeter IMF of main-sequence stars below the turn-off
mass (``L ~ M^2.3..4``, lifetime ``10 Gyr M / L + 3 Myr``, ``T`` from 5,772 K at 1 M_sun to
~30,000 K at 10 M_sun) and post-main-sequence light that grows from 20% to 130% of the main
sequence's as the population ages (blue and red supergiants, then AGB and He-burning stars,
then the red-giant branch and horizontal branch), on a grid of 48 ages from 1 Myr to
13.5 Gyr. A galaxy is a delayed-tau star-formation history (with, for some, a recent
burst) integrated over that grid (:func:`sfh_weights`), its rest-frame f_lambda tabulated
on a log-wavelength grid (:func:`galaxy_table`). Nebular lines, dust and the IGM are :mod:`.seds`'.

The relations are textbook approximations (Salpeter 1955 IMF; main-sequence mass-luminosity
and mass-temperature scalings; the fuel-consumption picture of post-main-sequence light),
chosen to be independent of the main simulator's templates and of BC03/FSPS, not to match
them; checked against broad properties of real populations
(``tests/test_second_renderer.py``): UV slope of constant star formation -2.2 at 100 Myr,
D4000 ~2.1 at 10 Gyr (solar), V - J_AB ~1.3, H-alpha EW ~1,000 / 400 / 150 A after 10 Myr
/ 100 Myr / 1 Gyr of constant star formation.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: rest-frame log-wavelength grid (A)
LAM_MIN, LAM_MAX, DLNLAM = 500.0, 100_000.0, 0.004
#: SSP age grid (Gyr): bin edges and centres
AGE_EDGES = np.concatenate([[0.0], np.geomspace(1.0e-3, 13.5, 48)])
AGE_CENTRES = 0.5 * (AGE_EDGES[1:] + AGE_EDGES[:-1])
#: constant star formation for this long (Gyr) gives EW(H-alpha) = EW_CONSTANT_100MYR
EW_CONSTANT_100MYR = 400.0


def rest_grid() -> np.ndarray:
    """The rest-frame wavelengths (A) of the tables."""
    return np.exp(np.arange(np.log(LAM_MIN), np.log(LAM_MAX), DLNLAM))


#: log10 metallicities (solar units) of the SSP tables; galaxies interpolate between them
LOG_Z = (-1.0, -0.4, 0.2)
#: post-main-sequence light of an old population relative to its main sequence's
GIANT_SHARE = 1.3
#: temperature (K) of the red-giant branch of a solar-metallicity old population
RGB_TEMPERATURE = 3800.0


def star_spectra(lam: np.ndarray, temperature: np.ndarray, log_z: float = 0.0
                 ) -> np.ndarray:
    """f_lambda of stars of effective temperatures ``temperature`` (K) at ``lam`` (A), each
    with unit bolometric flux before its absorption features, shape (n_stars, n_lam);
    line blanketing scales as ``10^(0.5 log_z)``."""
    t = np.asarray(temperature, float)[:, None]
    x = 1.4387769e8 / (lam[None, :] * t)
    with np.errstate(over="ignore"):
        planck = lam[None, :] ** -5 / np.expm1(np.minimum(x, 700.0))
    bolometric = np.trapezoid(planck, lam, axis=1)[:, None]
    f = planck / bolometric
    lnt = np.log(t)
    balmer = 1.5 * np.exp(-0.5 * ((lnt - np.log(9500.0)) / 0.25) ** 2)
    f = f / (1.0 + balmer * _below(lam, 3700.0, 40.0))
    metals = 2.0 * 10.0 ** (0.3 * log_z) * np.clip((7500.0 - t) / 3500.0, 0.0, 1.0) ** 1.2
    f = f / (1.0 + metals * _below(lam, 3950.0, 25.0))
    cool = np.clip((6500.0 - t) / 2500.0, 0.0, 1.0)
    f = f * (1.0 + 0.4 * cool * np.exp(-0.5 * (np.log(lam / 16500.0) / 0.3) ** 2))
    tio = 0.25 * np.clip((4000.0 - t) / 700.0, 0.0, 1.0)
    f = f * (1.0 - tio * np.exp(-0.5 * (np.log(lam / 7500.0) / 0.12) ** 2))
    return np.where(lam[None, :] >= 912.0, f, 0.0)


def _below(lam: np.ndarray, edge: float, width: float) -> np.ndarray:
    """1 well blueward of ``edge``, 0 well redward (a tanh step of ``width`` A)."""
    return 0.5 * (1.0 - np.tanh((lam[None, :] - edge) / width))


def _main_sequence(mass: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Luminosity (L_sun), temperature (K) and lifetime (Gyr) of main-sequence stars
    (massive stars: L ~ M^2.3 above 20 M_sun and lifetimes of at least ~3 Myr)."""
    lum = np.where(mass < 0.43, 0.23 * mass**2.3,
                   np.where(mass < 2.0, mass**4,
                            np.where(mass < 20.0, 1.4 * mass**3.5,
                                     1.4 * 20.0**3.5 * (mass / 20.0) ** 2.3)))
    temp = np.where(mass < 1.0, 5772.0 * mass**0.38,
                    np.where(mass < 2.0, 5772.0 * mass**0.75,
                             5772.0 * 2.0**0.75 * (mass / 2.0) ** 0.7))
    return lum, np.clip(temp, 2800.0, 45_000.0), 10.0 * mass / lum + 0.003


@lru_cache(maxsize=len(LOG_Z) + 1)
def ssp_table(log_z: float = 0.0) -> np.ndarray:
    """f_lambda per unit mass formed of the SSPs of metallicity ``log_z`` at
    :data:`AGE_CENTRES` on :func:`rest_grid`, shape (n_ages, n_lam): metal-rich giants are
    cooler (by 300 K per dex) and their stars more blanketed."""
    lam = rest_grid()
    mass = np.geomspace(0.1, 100.0, 400)
    dm = np.gradient(mass)
    imf = mass**-2.35
    imf /= np.sum(imf * mass * dm)  # one solar mass formed
    lum, temp, life = _main_sequence(mass)
    stars = star_spectra(lam, temp, log_z)
    table = np.empty((AGE_CENTRES.size, lam.size))
    for j, age in enumerate(AGE_CENTRES):
        alive = life > age
        weight = imf * dm * lum * alive
        ms = weight @ stars
        l_ms = float(np.sum(weight))
        turnoff = float(temp[alive].max()) if alive.any() else 2800.0
        share = GIANT_SHARE * np.clip(0.15 + 0.85 * np.log10(age / 0.003) / 2.5, 0.15, 1.0)
        table[j] = ms + share * l_ms * _post_main_sequence(lam, age, turnoff, log_z)
    return table


def _post_main_sequence(lam: np.ndarray, age: float, turnoff: float, log_z: float
                        ) -> np.ndarray:
    """Unit-luminosity spectrum of the post-main-sequence stars of an SSP of ``age`` (Gyr):
    blue and red supergiants, then AGB and core-helium-burning giants, then the red-giant
    and horizontal branches, blended smoothly in log age (20-50 Myr, 0.6-1.5 Gyr)."""
    phases = [([max(0.7 * turnoff, 8000.0), 3700.0], [0.4, 0.6]),
              ([3300.0, 4600.0], [0.5, 0.5]),
              ([RGB_TEMPERATURE, 7000.0], [0.85, 0.15])]
    late = _smoothstep(np.log(age), np.log(0.02), np.log(0.05))
    old = _smoothstep(np.log(age), np.log(0.6), np.log(1.5))
    share = [1.0 - late, late * (1.0 - old), old]
    cooler = 300.0 * log_z
    out = np.zeros(lam.size)
    for weight, (temps, shares) in zip(share, phases, strict=True):
        if weight > 0:
            out += weight * (np.asarray(shares) @ star_spectra(
                lam, np.asarray(temps) - cooler, log_z))
    return out


def _smoothstep(x: float, lo: float, hi: float) -> float:
    t = float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))
    return t * t * (3.0 - 2.0 * t)


def sfh_weights(age: np.ndarray, tau: np.ndarray, burst_age: np.ndarray,
                burst_fraction: np.ndarray) -> np.ndarray:
    """Mass formed in each SSP age bin by delayed-tau histories ``SFR ~ t exp(-t / tau)``
    that began ``age`` Gyr before observation, plus a burst of ``burst_fraction`` of the
    mass ``burst_age`` Gyr ago; rows sum to 1, shape (n_galaxies, n_ages)."""
    age = np.asarray(age, float)[:, None]
    tau = np.asarray(tau, float)[:, None]
    lo = np.minimum(AGE_EDGES[None, :-1], age)
    hi = np.minimum(AGE_EDGES[None, 1:], age)
    # cumulative mass of a delayed-tau history at time s since its start
    def formed(s):
        return tau * (tau - (tau + s) * np.exp(-s / tau))
    w = formed(age - lo) - formed(age - hi)
    w = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300)
    burst = np.zeros_like(w)
    bin_of = np.clip(np.searchsorted(AGE_EDGES, burst_age) - 1, 0, AGE_CENTRES.size - 1)
    burst[np.arange(w.shape[0]), bin_of] = 1.0
    f = np.asarray(burst_fraction, float)[:, None]
    return (1.0 - f) * w + f * burst


def galaxy_table(weights: np.ndarray, log_z: np.ndarray | None = None) -> np.ndarray:
    """Rest-frame f_lambda of galaxies with SSP weights ``weights`` and metallicities
    ``log_z`` (None: solar) on :func:`rest_grid`, 1 at 5500 A."""
    table = _population_table(weights, log_z)
    i5500 = int(np.argmin(np.abs(rest_grid() - 5500.0)))
    return table / table[:, i5500:i5500 + 1]


def _population_table(weights: np.ndarray, log_z: np.ndarray | None) -> np.ndarray:
    """f_lambda per unit mass formed of galaxies (SSP weights, metallicities)."""
    weights = np.asarray(weights, float)
    if log_z is None:
        return weights @ ssp_table(0.0)
    # linear interpolation between the two bracketing metallicity tables
    zs = np.asarray(LOG_Z)
    x = np.clip(np.asarray(log_z, float), zs[0], zs[-1])
    k = np.clip(np.searchsorted(zs, x) - 1, 0, zs.size - 2)
    frac = ((x - zs[k]) / (zs[k + 1] - zs[k]))[:, None]
    table = np.zeros((weights.shape[0], rest_grid().size))
    for i in range(zs.size - 1):
        rows = k == i
        if rows.any():
            lo = weights[rows] @ ssp_table(zs[i])
            hi = weights[rows] @ ssp_table(zs[i + 1])
            table[rows] = (1.0 - frac[rows]) * lo + frac[rows] * hi
    return table


def interpolate(table: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Tabulated spectra (one row per galaxy) at rest wavelengths ``lam`` (shape (n, m))."""
    x = (np.log(np.maximum(lam, 1.0)) - np.log(LAM_MIN)) / DLNLAM
    i = np.clip(np.floor(x).astype(int), 0, table.shape[1] - 2)
    frac = np.clip(x - i, 0.0, 1.0)
    rows = np.arange(table.shape[0])[:, None]
    out = table[rows, i] * (1.0 - frac) + table[rows, i + 1] * frac
    return np.where((x >= 0) & (x <= table.shape[1] - 1), out, 0.0)


def ew_halpha(weights: np.ndarray, log_z: np.ndarray | None = None) -> np.ndarray:
    """Rest-frame H-alpha EW (A) of galaxies from the mass they formed in the youngest age
    bins (the last ~9 Myr: ionising photons) over their own continuum at H-alpha, scaled
    so that 100 Myr of constant solar-metallicity star formation gives
    :data:`EW_CONSTANT_100MYR`."""
    lam = rest_grid()
    i_ha = int(np.argmin(np.abs(lam - 6563.0)))
    young = AGE_EDGES[1:] <= 0.0101

    def ratio(w, z):
        return w[:, young].sum(axis=1) / _population_table(w, z)[:, i_ha]

    overlap = np.clip(np.minimum(AGE_EDGES[1:], 0.1) - AGE_EDGES[:-1], 0.0, None)
    constant = (overlap / overlap.sum())[None, :]
    weights = np.asarray(weights, float)
    return EW_CONSTANT_100MYR * ratio(weights, log_z) / ratio(constant, None)[0]
