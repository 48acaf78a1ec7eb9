"""The renderer's own galaxy population (no luminosity-function tables).

* Apparent F200W magnitudes follow broken power-law number counts, ``dN/dm ~
  10^(bright_slope m)`` below ``mag_break`` and ``10^(slope m)`` above it, between
  ``mag_bright`` and ``mag_faint`` (steep at the bright end, flattening in the deep field).
* Redshifts given the magnitude: ``p(z | m) ~ z^a exp(-(z / z0(m))^b)`` on
  ``[0.02, zmax]`` with ``z0(m) = z0_20 + z0_slope (m - 20)``: fainter galaxies lie
  further away, as in the magnitude-dependent priors of template fitters.
* Types: quiescent with probability ``q_max sigmoid((q_mag - m) / 0.7) exp(-z / q_z)``,
  else star-forming.
* SEDs (:class:`.seds.SedParams`), by default (``sed_family='synthesis'``) stellar
  populations of :mod:`.synthesis` with the histories, metallicities, dust curves and
  H-alpha EWs of :func:`_synthesis_seds`; line ratios, dust amounts and Ly-alpha escape as
  below. The first version's analytic SEDs (``sed_family='analytic'``): star-forming
  galaxies have UV slopes bluer at higher
  redshift (-1.7 - 0.12 z, 0.25 scatter, within [-2.7, -1.3]), young light fractions at
  5500 A in [0.3, 0.97], an evolved part with D4000 in [1.1, 1.5] and T_eff 4200-5200 K,
  A_V exponentially distributed with a mean that grows with brightness and falls with
  redshift, H-alpha EWs ``60 A (1 + z)^1.3`` (x young fraction / 0.6; 0.3 dex scatter;
  capped at 3000 A) and line ratios that move with redshift ([OIII]/Hb up, [NII]/Ha down);
  quiescent galaxies have young fractions below 0.08, D4000 in [1.6, 2.2], T_eff
  3600-4400 K, A_V < 0.4 and weak lines (EW(Ha) < 5 A, LINER-like ratios).
* Morphology: half-light radius (major axis) ``0.30" 10^(-0.1 (m - 23)) ((1 + z)/2.5)^-0.6``
  (x 0.6 for quiescent galaxies; 0.22 dex scatter; 0.008"-1.5"), concentration ``c`` of the
  Gaussian-mixture profile (:mod:`.profiles`; star-forming 0-0.5, quiescent 0.6-1), axis
  ratio, position angle, and clumps: a star-forming galaxy at z > 0.5 is clumpy with
  probability 0.45, with 2-5 clumps carrying 10-40% of its F200W light.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .seds import SedParams


@dataclass(frozen=True)
class PopulationModel:
    """Parameters of the population (defaults: a JADES-deep-like field)."""

    surface_density: float = 2400.0  # galaxies per arcmin^2 with mag_bright < m < mag_faint
    mag_bright: float = 19.0
    mag_faint: float = 30.5
    slope: float = 0.17
    bright_slope: float = 0.36
    mag_break: float = 24.0
    z_a: float = 1.5
    z_b: float = 1.2
    z0_20: float = 0.35
    z0_slope: float = 0.13
    zmax: float = 10.0
    q_max: float = 0.35
    q_mag: float = 25.5
    q_z: float = 2.0
    clumpy_fraction: float = 0.45
    #: 'synthesis' (stellar populations of :mod:`.synthesis` with star-formation histories)
    #: or 'analytic' (broken power law + Planck curve, the first version of this field)
    sed_family: str = "synthesis"


@dataclass
class Population:
    """Drawn galaxies (one row per galaxy; positions in mosaic pixels)."""

    x: np.ndarray
    y: np.ndarray
    mag_det: np.ndarray
    quiescent: np.ndarray
    sed: SedParams
    r_e: np.ndarray  # arcsec, major axis
    concentration: np.ndarray
    axis_ratio: np.ndarray
    position_angle: np.ndarray  # radians
    clump_fraction: np.ndarray  # 0 for galaxies without clumps
    n_clumps: np.ndarray

    @property
    def z(self) -> np.ndarray:
        return self.sed.z

    def __len__(self) -> int:
        return int(self.x.size)


def draw_magnitudes(rng: np.random.Generator, n: int, m: PopulationModel) -> np.ndarray:
    """Magnitudes from the broken power-law counts (inverse CDF on a fine grid)."""
    grid = np.linspace(m.mag_bright, m.mag_faint, 4001)
    dm = grid - m.mag_break
    log_counts = np.where(dm < 0, m.bright_slope * dm, m.slope * dm)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (10.0 ** log_counts[1:]
                                                  + 10.0 ** log_counts[:-1]))])
    return np.interp(rng.uniform(size=n), cdf / cdf[-1], grid)


def draw_redshifts(rng: np.random.Generator, mag: np.ndarray, m: PopulationModel
                   ) -> np.ndarray:
    """Redshifts from ``p(z | mag)`` by inverse CDF on a table of magnitude bins."""
    zgrid = np.linspace(0.02, m.zmax, 2000)
    mags = np.linspace(m.mag_bright, m.mag_faint, 48)
    z0 = m.z0_20 + m.z0_slope * (mags - 20.0)
    pdf = zgrid[None, :] ** m.z_a * np.exp(-(zgrid[None, :] / z0[:, None]) ** m.z_b)
    cdf = np.cumsum(pdf, axis=1)
    cdf = (cdf - cdf[:, :1]) / (cdf[:, -1:] - cdf[:, :1])
    row = np.clip(np.rint((mag - m.mag_bright) / (mags[1] - mags[0])).astype(int), 0,
                  mags.size - 1)
    u = rng.uniform(size=mag.size)
    z = np.empty(mag.size)
    for r in np.unique(row):
        sel = row == r
        z[sel] = np.interp(u[sel], cdf[r], zgrid)
    return z


def draw_population(rng: np.random.Generator, n: int, width: float, height: float,
                    margin: float, m: PopulationModel | None = None) -> Population:
    """``n`` galaxies centred uniformly on ``[-margin, width + margin)`` x the same in y
    (pixels), with their SEDs and shapes."""
    m = m or PopulationModel()
    x = rng.uniform(-0.5 - margin, width - 0.5 + margin, n)
    y = rng.uniform(-0.5 - margin, height - 0.5 + margin, n)
    mag = draw_magnitudes(rng, n, m)
    z = draw_redshifts(rng, mag, m)
    p_q = m.q_max / (1.0 + np.exp(-(m.q_mag - mag) / 0.7)) * np.exp(-z / m.q_z)
    q = rng.uniform(size=n) < p_q
    sed = _draw_seds(rng, z, mag, q)
    if m.sed_family == "synthesis":
        sed = _synthesis_seds(rng, sed, q)
    elif m.sed_family != "analytic":
        raise ValueError(f"sed_family must be 'synthesis' or 'analytic', got {m.sed_family!r}")
    r_med = 0.30 * 10.0 ** (-0.1 * (mag - 23.0)) * ((1.0 + z) / 2.5) ** -0.6
    r_e = np.clip(r_med * np.where(q, 0.6, 1.0) * 10.0 ** rng.normal(0, 0.22, n), 0.008, 1.5)
    conc = np.where(q, rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.5, n))
    axis = np.where(q, np.clip(rng.normal(0.72, 0.15, n), 0.35, 1.0),
                    np.clip(rng.beta(2.2, 1.6, n), 0.15, 1.0))
    pa = rng.uniform(0, np.pi, n)
    clumpy = ~q & (z > 0.5) & (rng.uniform(size=n) < m.clumpy_fraction)
    clump_fraction = np.where(clumpy, rng.uniform(0.1, 0.4, n), 0.0)
    n_clumps = np.where(clumpy, rng.integers(2, 6, n), 0)
    return Population(x=x, y=y, mag_det=mag, quiescent=q, sed=sed, r_e=r_e,
                      concentration=conc, axis_ratio=axis, position_angle=pa,
                      clump_fraction=clump_fraction, n_clumps=n_clumps)


def _draw_seds(rng: np.random.Generator, z: np.ndarray, mag: np.ndarray, q: np.ndarray
               ) -> SedParams:
    n = z.size
    beta = np.clip(-1.7 - 0.12 * z + rng.normal(0, 0.25, n), -2.7, -1.3)
    young = np.where(q, rng.uniform(0.0, 0.08, n),
                     np.clip(0.45 + 0.07 * z + rng.normal(0, 0.15, n), 0.3, 0.97))
    t_eff = np.where(q, rng.uniform(3600, 4400, n), rng.uniform(4200, 5200, n))
    d4000 = np.where(q, rng.uniform(1.6, 2.2, n) - 0.05 * np.minimum(z, 3.0),
                     rng.uniform(1.1, 1.5, n))
    av_mean = np.clip(0.6 * 10.0 ** (-0.2 * (mag - 24.0)) / (1.0 + z) ** 0.4, 0.03, 1.2)
    av = np.where(q, rng.uniform(0.0, 0.4, n), np.minimum(rng.exponential(av_mean), 3.0))
    ew = np.minimum(60.0 * (1.0 + z) ** 1.3 * young / 0.6 * 10.0 ** rng.normal(0, 0.3, n),
                    3000.0)
    ew = np.where(q, rng.uniform(0.0, 5.0, n), ew)
    scatter = rng.normal(0, 0.15, (4, n))
    log_r3 = np.where(q, 0.0, np.clip(-0.2 + 0.25 * z, -0.3, 0.8)) + scatter[0]
    log_o2 = np.where(q, 0.5, np.maximum(0.45 - 0.08 * z, -0.4)) + scatter[1]
    log_n2 = np.where(q, 0.0, np.maximum(-0.4 - 0.15 * z, -1.6)) + scatter[2]
    log_s2 = np.where(q, -0.3, np.maximum(-0.6 - 0.08 * z, -1.3)) + scatter[3] * 0.8
    # Ly-alpha: escape rising with redshift, then the neutral IGM of reionisation
    esc = np.where(q, 0.0, rng.uniform(0, 0.25, n) * np.minimum(z / 4.0, 1.0)
                   / (1.0 + np.exp((z - 6.5) / 0.5)))
    return SedParams(z=z, beta=beta, young_fraction=young, t_eff=t_eff, d4000=d4000, av=av,
                     ew_ha=ew, log_r3=log_r3, log_o2=log_o2, log_n2=log_n2, log_s2=log_s2,
                     lya_escape=esc)


def _synthesis_seds(rng: np.random.Generator, sed: SedParams, q: np.ndarray) -> SedParams:
    """Replace the analytic continua by synthesised stellar populations: delayed-tau
    histories that began a fraction of the age of the universe before (star-forming:
    tau 0.5-15 Gyr log-uniform, 20-100% of the age; 30% with a burst of 0.1-3% of the mass
    2-100 Myr ago; quiescent: tau 0.05-0.3 Gyr and at most an eighth of the age, 60-100%
    of the age of the universe), metallicities
    log Z/Z_sun uniform in [-1, 0.2] (star-forming, lower at high redshift) or [-0.3, 0.2]
    (quiescent), attenuation curves SMC-bar x (lambda / 5500 A)^-s with s ~ N(0, 0.25)
    (greyer or steeper than the SMC), and H-alpha EWs from the star formation of the last
    10 Myr (0.15 dex scatter; quiescent galaxies keep weak LINER-like lines)."""
    from astropy.cosmology import Planck18

    from .synthesis import ew_halpha, sfh_weights

    n = len(sed)
    zgrid = np.linspace(0.0, 15.0, 301)
    age_universe = np.interp(sed.z, zgrid, Planck18.age(zgrid).value)
    tau = np.where(q, rng.uniform(0.05, 0.3, n), np.exp(rng.uniform(np.log(0.5),
                                                                   np.log(15.0), n)))
    age = np.maximum(age_universe - 0.02, 0.01) * np.where(
        q, rng.uniform(0.6, 1.0, n), rng.uniform(0.2, 1.0, n))
    tau = np.where(q, np.minimum(tau, age / 8.0), tau)  # quenched: age >= 8 tau
    bursting = ~q & (rng.uniform(size=n) < 0.3)
    burst_age = np.exp(rng.uniform(np.log(0.002), np.log(0.1), n))
    burst_fraction = np.where(bursting, np.exp(rng.uniform(np.log(1e-3), np.log(3e-2), n)),
                              0.0)
    weights = sfh_weights(age, tau, np.minimum(burst_age, age), burst_fraction)
    log_z = np.where(q, rng.uniform(-0.3, 0.2, n),
                     np.clip(rng.uniform(-1.0, 0.2, n) - 0.1 * sed.z, -1.0, 0.2))
    ew = np.minimum(ew_halpha(weights, log_z) * 10.0 ** rng.normal(0, 0.15, n), 3000.0)
    sed.ew_ha = np.where(q, np.maximum(ew, sed.ew_ha), ew)
    sed.sfh = weights
    sed.log_z = log_z
    sed.dust_slope = rng.normal(0.0, 0.25, n)
    return sed


def clump_seds(pop: Population, rows: np.ndarray) -> SedParams:
    """SEDs of the clumps of galaxies ``rows``: the young component alone and twice its
    line equivalent width (synthesis: the galaxy's stars younger than ~90 Myr and their own
    EW), half the galaxy's dust (EWs capped at 3000 A)."""
    s = pop.sed
    take = {k: None if v is None else np.asarray(v)[rows] for k, v in vars(s).items()}
    take["young_fraction"] = np.ones(rows.size)
    take["av"] = take["av"] * 0.5
    take["ew_ha"] = np.minimum(take["ew_ha"] * 2.0, 3000.0)
    if take["sfh"] is not None:
        from .synthesis import AGE_EDGES, ew_halpha

        young = np.where(AGE_EDGES[None, 1:] <= 0.1, take["sfh"], 0.0)
        empty = young.sum(axis=1) <= 0
        young[empty, 0] = 1.0
        take["sfh"] = young / young.sum(axis=1, keepdims=True)
        take["ew_ha"] = np.minimum(ew_halpha(take["sfh"], take["log_z"]), 3000.0)
    return SedParams(**take)
