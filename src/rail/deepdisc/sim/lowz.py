"""Bright galaxies at 0 < z < 1.5: the ``lowz`` population model and its spectroscopic targets.

The ``deep`` model of :mod:`rail.deepdisc.sim.population` is built for JWST deep fields (a
rest-frame UV luminosity function for star-forming galaxies, to z ~ 15). Ground-based
surveys of bright galaxies with SDSS/DESI spectra (Legacy Surveys, HSC-SSP) see another
population: the red sequence and the blue cloud at z < 1.5, whose luminosity functions are
measured in rest-frame optical bands. The ``lowz`` model draws both from Schechter functions
in rest-frame 5500 A (V) absolute AB magnitude (h = 0.7):

* local nodes (z ~ 0.1) after the SDSS and GAMA red/blue split luminosity functions
  (Blanton et al. 2005; Loveday et al. 2012, converted from r to V with the colours of the
  templates, ~0.2 mag for blue and ~0.35 mag for red galaxies): blue M* = -20.7,
  alpha = -1.35; red M* = -20.9, alpha = -0.55;
* evolution after DEEP2 + COMBO-17 (Willmer et al. 2006; Faber et al. 2007): M* brightens by
  ~1.3 mag (blue) and ~1.0 mag (red) per unit redshift to z ~ 1; phi* of the blue cloud is
  about constant, that of the red sequence halves from z ~ 0 to z ~ 1 and keeps falling;
* M* and phi* are set so that the counts of the selections below come out near those of
  the SDSS/DESI targets: the model gives ~90 galaxies/deg^2 to r = 17.77 (SDSS main
  sample: ~90, median z 0.10), ~700 to r = 19.5 (DESI BGS bright: ~860, median z ~0.2),
  ~1,500 to r = 20.175 (BGS bright + faint: ~1,400) and ~110 LRG-like targets at median
  z 0.52 (BOSS LOWZ + CMASS: ~150); ``tests/test_lowz_population.py`` checks them.

Each population keeps its own SEDs (red: the quiescent COSMOS templates, elliptical and S0;
blue: the star-forming sequence with less Calzetti dust than the deep model gives,
:mod:`rail.deepdisc.sim.sed_choice`)
and sizes: stellar masses come from the V-band luminosity and a mass-to-light ratio (red:
log M/L_V = 0.48 at z = 0, falling to 0 at z = 2; blue: -0.15 at z = 0 to -0.45 at
z = 1.5, after Bell & de Jong 2001), and sizes from the van der Wel et al. (2014)
early- and late-type size-mass relations.

Spectroscopic targets (:func:`spectroscopic_targets`, the catalog column ``spec_target``, a
bit mask) follow the SDSS and DESI selections, on magnitudes in the SDSS g, r, i filters
(astro-sedpy's ``sdss_g0``, ``sdss_r0``, ``sdss_i0``) whatever bands the survey renders:

======= ======================== ===================================================
bit     name                     selection
======= ======================== ===================================================
1       ``main``                 r < 17.77 (SDSS main galaxy sample, Strauss et al. 2002)
2       ``bgs_bright``           r < 19.5 (DESI BGS bright, Hahn et al. 2023)
4       ``bgs_faint``            19.5 <= r < 20.175 (DESI BGS faint, without its fibre-
                                 magnitude and colour terms)
8       ``lrg``                  BOSS LOWZ or CMASS colour cuts (Reid et al. 2016):
                                 LOWZ: 16 < r < 19.6, r < 13.5 + c_par / 0.3,
                                 |c_perp| < 0.2; CMASS: 17.5 < i < 19.9,
                                 d_perp > 0.55, i < 19.86 + 1.6 (d_perp - 0.8)
======= ======================== ===================================================

with ``c_par = 0.7 (g - r) + 1.2 (r - i - 0.18)``, ``c_perp = (r - i) - (g - r) / 4 - 0.18``
and ``d_perp = (r - i) - (g - r) / 8``. A galaxy is a target if any bit is set. The cuts are
made on noiseless model magnitudes; spectroscopic success is taken as complete.
"""

from __future__ import annotations

import numpy as np

#: the redshift range the ``lowz`` model describes
LOWZ_ZMAX = 2.0

# --- luminosity-function nodes: z, M*_V (AB, h = 0.7), log10 phi* [Mpc^-3 mag^-1], alpha --
BLUE_LF_NODES = np.array([
    [0.0, -20.85, -2.60, -1.35],
    [0.5, -21.55, -2.60, -1.33],
    [1.0, -22.15, -2.66, -1.30],
    [1.5, -22.45, -2.80, -1.30],
    [2.0, -22.60, -2.95, -1.30],
])
RED_LF_NODES = np.array([
    [0.0, -21.05, -2.52, -0.55],
    [0.5, -21.65, -2.60, -0.55],
    [1.0, -22.05, -2.85, -0.55],
    [1.5, -22.25, -3.25, -0.55],
    [2.0, -22.35, -3.75, -0.55],
])
#: faintest rest-frame V absolute magnitudes drawn (blue, red)
M_FAINT_BLUE = -15.0
M_FAINT_RED = -16.0

#: filters of the spectroscopic selection (astro-sedpy names)
SELECTION_BANDS = ("sdss_g0", "sdss_r0", "sdss_i0")
#: the target classes and their bits
TARGET_BITS = {"main": 1, "bgs_bright": 2, "bgs_faint": 4, "lrg": 8}
#: catalog columns of the model that rendered scene stores keep in /objects
STORE_COLUMNS = ("spec_target",)


def log_stellar_mass(abs_mag_v: np.ndarray, z: np.ndarray, quiescent: np.ndarray
                     ) -> np.ndarray:
    """log10 stellar mass (Msun) from rest-frame V absolute magnitude and M/L_V.

    Red: log M/L_V from 0.48 at z = 0 to 0 at z = 2 (passively fading old stars); blue:
    from -0.15 at z = 0 to -0.45 at z = 1.5 (younger stars at higher z).
    """
    z = np.asarray(z, float)
    log_l = -0.4 * (np.asarray(abs_mag_v, float) - 4.83)
    ml_red = np.interp(z, [0.0, 2.0], [np.log10(3.0), 0.0])
    ml_blue = np.interp(z, [0.0, 1.5], [-0.15, -0.45])
    return log_l + np.where(np.asarray(quiescent, bool), ml_red, ml_blue)


def spectroscopic_targets(g: np.ndarray, r: np.ndarray, i: np.ndarray) -> np.ndarray:
    """The SDSS/DESI-like target bits of galaxies from their SDSS g, r, i AB magnitudes.

    Returns
    -------
    numpy.ndarray
        int16 bit mask per galaxy (:data:`TARGET_BITS`; 0: not a target).
    """
    g, r, i = (np.asarray(a, float) for a in (g, r, i))
    bits = np.zeros(r.shape, np.int16)
    bits |= np.where(r < 17.77, TARGET_BITS["main"], 0).astype(np.int16)
    bits |= np.where(r < 19.5, TARGET_BITS["bgs_bright"], 0).astype(np.int16)
    bits |= np.where((r >= 19.5) & (r < 20.175), TARGET_BITS["bgs_faint"], 0).astype(np.int16)
    gr, ri = g - r, r - i
    c_par = 0.7 * gr + 1.2 * (ri - 0.18)
    c_perp = ri - gr / 4.0 - 0.18
    d_perp = ri - gr / 8.0
    lowz = (r > 16.0) & (r < 19.6) & (r < 13.5 + c_par / 0.3) & (np.abs(c_perp) < 0.2)
    cmass = (i > 17.5) & (i < 19.9) & (d_perp > 0.55) & (i < 19.86 + 1.6 * (d_perp - 0.8))
    bits |= np.where(lowz | cmass, TARGET_BITS["lrg"], 0).astype(np.int16)
    return bits
