"""Nebular emission lines for template SEDs: line list, line ratios, equivalent widths.

Template libraries (COSMOS, CWW+SB, a user's list) are continua; the simulator adds the
main nebular lines to each star-forming galaxy, as narrow lines whose band fluxes are
integrated exactly (:meth:`rail.deepdisc.spectra.photometer.Photometer.line_maggies`). A galaxy's
lines are fixed by two catalog columns:

``ew_oiii_hb``
    Rest-frame equivalent width (Angstrom) of [OIII]4959,5007 + H-beta, relative to the
    galaxy's own (dust-attenuated) continuum at each line. It is drawn from a log-normal
    whose median rises with redshift, as measured: ~100 A at z ~ 2 (Boyett et al. 2022,
    MNRAS 513, 4451: [OIII]5007 median e^4.24 = 69 A, 0.58 dex wide) to ~700-800 A at
    z ~ 7 (Endsley et al. 2021, MNRAS 500, 5229: median 759 A; Endsley et al. 2023, MNRAS
    524, 2312), i.e. ``760 A ((1 + z) / 8)^2`` below z = 7 and flat above, with 0.4 dex
    scatter at z < 2 narrowing to 0.25 dex at z > 6; bluer (higher sSFR) templates get
    larger EWs (0.15 dex per magnitude of rest UV - optical colour). The draw is capped
    at :data:`EW_CAP` (the most extreme z ~ 7 emitters reach a few thousand A; Boyett et
    al. 2024, Daikuhara et al. 2025).
``oh_abundance``
    Gas-phase 12 + log(O/H), drawn around ``8.65 - 0.11 z`` (floor 7.7) with 0.15 dex
    scatter (local to z ~ 2 mass-metallicity relations; ~7.8-8.0 at z > 6 from JWST,
    Nakajima et al. 2023, Curti et al. 2024). It sets the metal-line ratios through the
    strong-line calibrations of Curti et al. (2017, MNRAS 465, 1384; 2020, MNRAS 491, 944):
    R3 = [OIII]5007/Hb, R2 = [OII]3727,29/Hb, N2 = [NII]6584/Ha, S2 = [SII]6717,31/Ha.

Hydrogen lines follow case B recombination (T = 10^4 K, n_e = 100 cm^-3; Storey & Hummer
1995); doublet ratios are atomic ([OIII] 2.98, [NII] 3.05, [SIII] 2.47; low-density
[OII] and [SII]). [NeIII]3869 is 0.08 [OIII]5007 (Ne/O is constant), He I 5876 and 10830
are 0.105 and 0.25 H-beta, and [SIII]9069+9531 equals [SII]6717+6731 (order-of-unity
S3/S2 of HII regions): these minor lines are approximate. Lines are reddened relative to
H-beta by Calzetti et al. (2000) dust with the nebular colour excess E(B-V)_gas =
E(B-V)_stars / 0.44. Ly-alpha is case B (8.7 H-alpha) times an escape fraction
``5e-4 (1 + z)^2.6`` (Hayes et al. 2011, ApJ 730, 8) that the neutral IGM suppresses above
z = 6 (the Ly-alpha emitter fraction falls ~2-3x per unit redshift; Stark et al. 2011,
Pentericci et al. 2014).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rail.deepdisc.spectra.dust import calzetti_transmission

#: line name -> rest-frame vacuum wavelength in Angstrom
LINE_WAVELENGTHS: dict[str, float] = {
    "Lya": 1215.67, "OII3726": 3727.09, "OII3729": 3729.88, "NeIII3869": 3869.86,
    "Hd": 4102.89, "Hg": 4341.69, "Hb": 4862.69, "OIII4959": 4960.30, "OIII5007": 5008.24,
    "HeI5876": 5877.25, "NII6548": 6549.86, "Ha": 6564.61, "NII6584": 6585.27,
    "SII6716": 6718.29, "SII6731": 6732.67, "SIII9069": 9071.1, "SIII9531": 9533.2,
    "HeI10830": 10833.3, "Pag": 10941.1, "Pab": 12821.6, "Paa": 18756.1, "Brg": 21661.2,
}
LINE_NAMES: tuple[str, ...] = tuple(LINE_WAVELENGTHS)
LINE_WAVE: np.ndarray = np.array([LINE_WAVELENGTHS[n] for n in LINE_NAMES])
#: lines whose summed equivalent width is the ``ew_oiii_hb`` column
BLEND = ("Hb", "OIII4959", "OIII5007")
#: catalog columns of the lines (present when the population has emission lines), for a
#: scene store's /objects
STORE_COLUMNS = ("ew_oiii_hb", "oh_abundance")

#: case B hydrogen line ratios to H-beta (10^4 K, 100 cm^-3)
_CASE_B = {"Ha": 2.86, "Hg": 0.468, "Hd": 0.259, "Pag": 0.090, "Pab": 0.162, "Paa": 0.332,
           "Brg": 0.0278}
#: Curti et al. (2017, 2020) polynomials in x = 12 + log(O/H) - 8.69 (log10 ratios)
_CURTI = {
    "R3": (-0.277, -3.549, -3.593, -0.981),
    "R2": (0.435, -1.362, -5.655, -4.851, -0.478, 0.736),
    "N2": (-0.489, 1.513, -2.554, -5.293, -2.867),
    "S2": (-0.442, -0.360, -6.271, -8.339, -3.559),
}
#: range of 12 + log(O/H) over which the calibrations hold (values are clipped to it)
OH_RANGE = (7.6, 8.85)
_OH_SUN = 8.69

#: largest ew_oiii_hb drawn (before ``line_ew_scale``), Angstrom
EW_CAP = 4000.0
#: EW median: 760 A at z >= 7, falling as (1 + z)^2 below
_EW_Z7, _EW_SLOPE = 760.0, 2.0
#: dex of log EW per magnitude of rest UV - optical colour bluer than the mean
_EW_COLOUR_SLOPE = 0.15
#: edges (standard-normal units) of the EW strata used for exact selection
EW_STRATA = (-np.inf, -1.0, 0.0, 1.0, 1.5, 2.0, 2.5, np.inf)


@dataclass(frozen=True)
class Lines:
    """Emission lines of a set of galaxies.

    Attributes
    ----------
    wave
        Rest-frame wavelengths in Angstrom, shape (n_lines,).
    lum
        Line luminosities in the library's f_lambda units times Angstrom (so that a line
        of equivalent width W on a continuum f_lambda = C has ``lum = W C``), shape
        (n_galaxies, n_lines).
    """

    wave: np.ndarray
    lum: np.ndarray

    def __getitem__(self, rows) -> Lines:
        return Lines(self.wave, self.lum[rows])


def ew_median(z: np.ndarray) -> np.ndarray:
    """Median rest-frame EW([OIII]+H-beta) of star-forming galaxies at redshift z (A)."""
    zp1 = np.minimum(1.0 + np.asarray(z, dtype=float), 8.0)
    return _EW_Z7 * (zp1 / 8.0) ** _EW_SLOPE


def ew_sigma(z: np.ndarray) -> np.ndarray:
    """Scatter (dex) of log EW([OIII]+H-beta) about the median at redshift z.

    Wider at low redshift (Boyett et al. 2022: 0.58 dex at z ~ 2, in part the spread of
    continuum colours that the template term adds) than at z ~ 7 (Endsley et al. 2021:
    ~0.25-0.3 dex).
    """
    return np.clip(0.45 - 0.035 * np.asarray(z, dtype=float), 0.25, 0.40)


def log_ew_mean(z: np.ndarray, colour_offset: np.ndarray) -> np.ndarray:
    """Mean log10 EW for galaxies at z whose template is ``colour_offset`` mag redder.

    ``colour_offset`` is the template's rest (M_1500 - M_5500) minus the mean of the
    star-forming templates at that redshift.
    """
    return np.log10(ew_median(z)) - _EW_COLOUR_SLOPE * np.asarray(colour_offset)


def oh_mean(z: np.ndarray) -> np.ndarray:
    """Mean gas-phase 12 + log(O/H) of star-forming galaxies at redshift z."""
    return np.maximum(8.65 - 0.11 * np.asarray(z, dtype=float), 7.7)


def draw_oh(rng: np.random.Generator, z: np.ndarray) -> np.ndarray:
    """Draw 12 + log(O/H) per galaxy (0.15 dex about :func:`oh_mean`, clipped)."""
    oh = oh_mean(z) + 0.15 * rng.standard_normal(np.shape(z))
    return np.clip(oh, *OH_RANGE)


def _poly(coeffs: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    return 10.0 ** np.polynomial.polynomial.polyval(x, coeffs)


def intrinsic_ratios(oh: np.ndarray) -> np.ndarray:
    """Dust-free line ratios to H-beta (Ly-alpha excluded: 0), shape (n, n_lines)."""
    oh = np.clip(np.atleast_1d(np.asarray(oh, dtype=float)), *OH_RANGE)
    values, where = np.unique(oh, return_inverse=True)
    return _ratios(values - _OH_SUN)[where.ravel()]


def _ratios(x: np.ndarray) -> np.ndarray:
    r = {name: np.full(x.shape, v) for name, v in _CASE_B.items()}
    r["Hb"] = np.ones(x.shape)
    r3, r2 = _poly(_CURTI["R3"], x), _poly(_CURTI["R2"], x)
    n2, s2 = _poly(_CURTI["N2"], x) * r["Ha"], _poly(_CURTI["S2"], x) * r["Ha"]
    r.update(OIII5007=r3, OIII4959=r3 / 2.98, OII3726=0.417 * r2, OII3729=0.583 * r2,
             NII6584=n2, NII6548=n2 / 3.05, SII6716=0.58 * s2, SII6731=0.42 * s2,
             SIII9069=s2 / 3.47, SIII9531=s2 * 2.47 / 3.47, NeIII3869=0.08 * r3,
             HeI5876=np.full(x.shape, 0.105), HeI10830=np.full(x.shape, 0.25),
             Lya=np.zeros(x.shape))
    return np.stack([r[name] for name in LINE_NAMES], axis=1)


def dust_factors(ebv: np.ndarray) -> np.ndarray:
    """Calzetti attenuation of each line relative to H-beta, shape (n, n_lines).

    Uses the nebular colour excess E(B-V)_gas = E(B-V)_stars / 0.44 (Calzetti 2000).
    Ly-alpha gets 1: its losses are in :func:`lya_escape`.
    """
    ebv = np.atleast_1d(np.asarray(ebv, dtype=float))
    out = np.ones((ebv.size, LINE_WAVE.size))
    for value in np.unique(ebv[ebv > 0]):  # libraries hold a handful of E(B-V) values
        trans = calzetti_transmission(LINE_WAVE, value / 0.44)
        out[ebv == value] = trans / trans[LINE_NAMES.index("Hb")]
    out[:, LINE_NAMES.index("Lya")] = 1.0
    return out


def lya_escape(z: np.ndarray) -> np.ndarray:
    """Fraction of case-B Ly-alpha that reaches us (galaxy escape x neutral-IGM damping)."""
    z = np.asarray(z, dtype=float)
    escape = np.minimum(5.0e-4 * (1.0 + z) ** 2.6, 1.0)
    igm = np.clip(1.0 - 0.45 * (z - 6.0), 0.1, 1.0)
    return escape * igm


def line_luminosities(ew: np.ndarray, oh: np.ndarray, ebv: np.ndarray, z: np.ndarray,
                      continuum: np.ndarray) -> np.ndarray:
    """Line luminosities of galaxies whose [OIII]+H-beta blend has rest EW ``ew``.

    Parameters
    ----------
    ew
        Rest-frame EW([OIII]4959,5007 + H-beta) in Angstrom (0: no lines).
    oh
        12 + log(O/H) (sets the metal-line ratios).
    ebv
        Stellar E(B-V) of the template (reddens the lines relative to H-beta).
    z
        Redshift (Ly-alpha escape).
    continuum
        Continuum f_lambda of each galaxy's template at each line, shape (n, n_lines)
        (:meth:`rail.deepdisc.spectra.library.SEDLibrary.line_continuum`).

    Returns
    -------
    numpy.ndarray
        Shape (n, n_lines), in the template's f_lambda units times Angstrom.
    """
    ratios = intrinsic_ratios(oh) * dust_factors(ebv)
    ratios[:, LINE_NAMES.index("Lya")] = 8.7 * _CASE_B["Ha"] * lya_escape(z)
    blend = [LINE_NAMES.index(n) for n in BLEND]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_ew = np.sum(ratios[:, blend] / continuum[:, blend], axis=1)
        hbeta = np.where(per_ew > 0, np.asarray(ew, dtype=float) / per_ew, 0.0)
    return ratios * hbeta[:, None]


def blend_ew(lum: np.ndarray, continuum: np.ndarray) -> np.ndarray:
    """Rest-frame EW([OIII]+H-beta) of line luminosities on their continua (Angstrom)."""
    blend = [LINE_NAMES.index(n) for n in BLEND]
    with np.errstate(divide="ignore", invalid="ignore"):
        ew = lum[:, blend] / continuum[:, blend]
    return np.nansum(ew, axis=1)
