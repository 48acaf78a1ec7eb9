"""Galaxy SEDs and their band fluxes (no template library).

A galaxy's rest-frame continuum is either its synthesised stellar populations
(:mod:`.synthesis`; :class:`SedParams` with ``sfh`` set, the default family, with a dust
curve tilted per galaxy) or, in the first version's analytic family, a mix of two analytic
components, each normalised to 1 at 5500 A:

* **young**: a broken power law ``f_lambda ~ lambda^beta`` below 3000 A (UV slope ``beta``),
  ``lambda^-2.2`` to 9000 A and ``lambda^-3.2`` beyond, zero below the Lyman limit;
* **evolved**: a Planck curve of temperature ``t_eff`` (3600-5200 K: the red near-infrared
  turnover), times a step at 3975 A that makes the D4000 index (mean f_nu in 4000-4100 A
  over 3850-3950 A; Balogh et al. 1999 windows) equal ``d4000``, a UV deficit
  ``1 / (1 + (2600 A / lambda)^6)`` and a 10% H- bump at 1.6 um;

mixed by ``young_fraction`` (share of the light at 5500 A), reddened by SMC-bar dust
(Gordon et al. 2003, ``dust_extinction.G03_SMCBar``; extended as a power law beyond its
range) with ``A_V``, and attenuated by the Inoue (2014) IGM (:mod:`.igm`). Nebular lines
(Ly-alpha, [OII], H-delta, H-gamma, H-beta, [OIII]4959,5007, [NII], H-alpha, [SII],
Pa-gamma, Pa-beta, Pa-alpha) have fluxes set by the H-alpha equivalent width (against the
unreddened continuum) and line ratios per galaxy (:class:`SedParams`), reddened by
``gas_av_factor`` x A_V; they are integrated exactly through the filters.

Band fluxes follow the photon-counting definition
``<f_nu> = int f_lambda T lambda dlambda / int T c / lambda dlambda`` on a log-wavelength
grid of observed wavelengths, as one matrix product for all galaxies.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .igm import inoue_transmission

#: speed of light (Angstrom / s)
C_AA = 2.99792458e18
#: rest wavelengths (Angstrom) of the lines, and their names
LINES = {"Lya": 1215.67, "OII3726": 3727.09, "OII3729": 3729.88, "Hd": 4102.89,
         "Hg": 4341.69, "Hb": 4862.69, "OIII4959": 4960.30, "OIII5007": 5008.24,
         "NII6548": 6549.86, "Ha": 6564.61, "NII6584": 6585.27, "SII6716": 6718.29,
         "SII6731": 6732.67, "Pag": 10941.1, "Pab": 12821.6, "Paa": 18756.1}
#: case-B hydrogen ratios to H-beta (10^4 K; Hummer & Storey 1987)
_CASE_B = {"Hd": 0.259, "Hg": 0.468, "Ha": 2.86, "Pag": 0.0903, "Pab": 0.162, "Paa": 0.332}
#: gas attenuation relative to the stars' (A_V,gas = factor x A_V)
GAS_AV_FACTOR = 1.5


@dataclass
class SedParams:
    """Per-galaxy SED parameters (arrays of one length).

    ``ew_ha`` is the rest-frame H-alpha equivalent width (A) against the unreddened
    continuum; ``log_r3 = log10 [OIII]5007/Hb``, ``log_o2 = log10 [OII]3726,29/Hb``,
    ``log_n2 = log10 [NII]6584/Ha``, ``log_s2 = log10 [SII]6716,31/Ha``; ``lya_escape``
    is the fraction of case-B Ly-alpha (8.7 H-alpha) that escapes the galaxy and the
    neutral IGM.
    """

    z: np.ndarray
    beta: np.ndarray
    young_fraction: np.ndarray
    t_eff: np.ndarray
    d4000: np.ndarray
    av: np.ndarray
    ew_ha: np.ndarray
    log_r3: np.ndarray
    log_o2: np.ndarray
    log_n2: np.ndarray
    log_s2: np.ndarray
    lya_escape: np.ndarray
    #: SSP mass weights of :mod:`.synthesis` (n_galaxies, n_ages): the continuum is then
    #: the synthesised one and ``beta``, ``young_fraction``, ``t_eff``, ``d4000`` are unused
    sfh: np.ndarray | None = None
    #: log10 metallicity (solar units) of the synthesised populations
    log_z: np.ndarray | None = None
    #: the attenuation curve is SMC-bar x (lambda / 5500 A)^-dust_slope (synthesis only)
    dust_slope: np.ndarray | None = None

    def __len__(self) -> int:
        return int(np.asarray(self.z).size)


def young_continuum(lam: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Young component at rest wavelengths ``lam`` (A), 1 at 5500 A."""
    beta = np.asarray(beta, float)
    ln = np.log(lam / 3000.0)
    mid = -2.2 * ln
    red = -2.2 * np.log(9000.0 / 3000.0) - 3.2 * np.log(lam / 9000.0)
    lnf = np.where(lam < 3000.0, beta * ln, np.where(lam < 9000.0, mid, red))
    norm = -2.2 * np.log(5500.0 / 3000.0)
    return np.where(lam >= 912.0, np.exp(lnf - norm), 0.0)


def _planck_shape(lam: np.ndarray, t_eff: np.ndarray) -> np.ndarray:
    """B_lambda(T) up to a constant (lam in A)."""
    x = 1.4387769e8 / (lam * t_eff)  # h c / (lambda k T), lambda in A
    with np.errstate(over="ignore"):
        return lam**-5 / np.expm1(np.minimum(x, 700.0))


def _evolved_smooth(lam: np.ndarray, t_eff: np.ndarray) -> np.ndarray:
    """The evolved component without its break."""
    uv = 1.0 / (1.0 + (2600.0 / lam) ** 6)
    bump = 1.0 + 0.1 * np.exp(-0.5 * (np.log(lam / 16000.0) / 0.25) ** 2)
    return _planck_shape(lam, t_eff) * uv * bump


def _window_mean_fnu(t_eff: np.ndarray, lo: float, hi: float) -> np.ndarray:
    lam = np.linspace(lo, hi, 21)
    t = np.asarray(t_eff, float)[..., None]
    return np.mean(_evolved_smooth(lam, t) * lam**2, axis=-1)


def evolved_continuum(lam: np.ndarray, t_eff: np.ndarray, d4000: np.ndarray) -> np.ndarray:
    """Evolved component at rest wavelengths ``lam`` (A), 1 at 5500 A; ``t_eff`` and
    ``d4000`` broadcast against ``lam`` with the galaxies on axis 0."""
    t_eff = np.asarray(t_eff, float)
    d4000 = np.asarray(d4000, float)
    smooth_ratio = _window_mean_fnu(t_eff, 4000.0, 4100.0) / \
        _window_mean_fnu(t_eff, 3850.0, 3950.0)
    step_height = np.asarray(d4000 / smooth_ratio)  # blue side is 1 / step_height
    step = 1.0 / step_height + (1.0 - 1.0 / step_height) * 0.5 * (
        1.0 + np.tanh((lam - 3975.0) / 8.0))
    f = _evolved_smooth(lam, t_eff) * step
    norm = _evolved_smooth(np.array(5500.0), t_eff)
    return np.where(lam >= 912.0, f / norm, 0.0)


@lru_cache(maxsize=1)
def _smc_curve() -> tuple[np.ndarray, np.ndarray]:
    """ln(lambda / A) grid and A_lambda / A_V of the SMC bar (Gordon et al. 2003),
    constant blueward of 1000 A and a lambda^-1.7 power law redward of 3.3 um."""
    import astropy.units as u
    from dust_extinction.averages import G03_SMCBar

    model = G03_SMCBar()
    lam = np.geomspace(300.0, 80000.0, 3000)
    x = 1.0e4 / lam  # 1 / micron
    lo, hi = model.x_range
    inside = (x >= lo) & (x <= hi)
    k = np.empty_like(lam)
    k[inside] = model(x[inside] / u.micron)
    k_blue = float(model(np.array([hi]) / u.micron)[0])
    k_red = float(model(np.array([lo]) / u.micron)[0])
    k[x > hi] = k_blue
    k[x < lo] = k_red * (lam[x < lo] / (1.0e4 / lo)) ** -1.7
    return np.log(lam), k


def smc_attenuation(lam: np.ndarray) -> np.ndarray:
    """A_lambda / A_V of the SMC-bar curve at rest wavelengths ``lam`` (A)."""
    lnlam, k = _smc_curve()
    return np.interp(np.log(lam), lnlam, k)


def attenuation(lam: np.ndarray, p: SedParams) -> np.ndarray:
    """A_lambda / A_V of each galaxy's curve at rest wavelengths ``lam`` (n_galaxies, n):
    the SMC bar, tilted by ``(lambda / 5500 A)^-dust_slope`` when the galaxy has one."""
    curve = smc_attenuation(lam)
    if p.dust_slope is None:
        return curve
    return curve * (lam / 5500.0) ** -np.asarray(p.dust_slope, float)[:, None]


def line_fluxes(p: SedParams) -> np.ndarray:
    """Rest-frame line fluxes (continuum f_lambda at 5500 A x Angstrom), before dust,
    shape (n_galaxies, n_lines) in the order of :data:`LINES`, for a continuum of
    :func:`continuum` (unreddened)."""
    ha_cont = continuum(np.array([6564.61]), p, dust=False)[:, 0]
    ha = np.asarray(p.ew_ha, float) * ha_cont
    hb = ha / _CASE_B["Ha"]
    r3, o2 = 10.0 ** np.asarray(p.log_r3), 10.0 ** np.asarray(p.log_o2)
    n2, s2 = 10.0 ** np.asarray(p.log_n2), 10.0 ** np.asarray(p.log_s2)
    out = {"Lya": 8.7 * ha * np.asarray(p.lya_escape), "OII3726": o2 * hb / 2.4,
           "OII3729": o2 * hb * 1.4 / 2.4, "OIII5007": r3 * hb, "OIII4959": r3 * hb / 2.98,
           "NII6584": n2 * ha, "NII6548": n2 * ha / 3.05, "SII6716": s2 * ha * 1.2 / 2.2,
           "SII6731": s2 * ha / 2.2, "Hb": hb}
    out.update({name: ratio * hb for name, ratio in _CASE_B.items()})
    return np.stack([out[name] for name in LINES], axis=1)


def continuum(lam_rest: np.ndarray, p: SedParams, dust: bool = True) -> np.ndarray:
    """Rest-frame continuum f_lambda at ``lam_rest`` (shape (n_galaxies, n) or (n,))."""
    col = (slice(None), None)
    lam = np.broadcast_to(lam_rest, (len(p), np.shape(lam_rest)[-1]))
    if p.sfh is not None:
        from .synthesis import galaxy_table, interpolate

        f = interpolate(galaxy_table(p.sfh, p.log_z), lam)
        if dust:
            f = f * 10.0 ** (-0.4 * np.asarray(p.av, float)[col] * attenuation(lam, p))
        return f
    fy = np.asarray(p.young_fraction, float)[col]
    f = fy * young_continuum(lam, np.asarray(p.beta, float)[col]) + (1.0 - fy) * \
        evolved_continuum(lam, np.asarray(p.t_eff, float)[col],
                          np.asarray(p.d4000, float)[col])
    if dust:
        f = f * 10.0 ** (-0.4 * np.asarray(p.av, float)[col] * smc_attenuation(lam))
    return f


class BandIntegrator:
    """Band fluxes of analytic SEDs through sedpy filter curves, vectorised over galaxies.

    Parameters
    ----------
    bands
        Store band names; ``filters`` maps them to sedpy names (default: the same).
    dlnlam
        Spacing of the observed log-wavelength grid.
    """

    def __init__(self, bands: list[str], filters: dict[str, str] | None = None,
                 dlnlam: float = 1.0e-3):
        from sedpy.observate import load_filters

        self.bands = list(bands)
        names = [(filters or {}).get(b, b) for b in self.bands]
        curves = load_filters(names)
        lo = min(float(f.wavelength[f.transmission > 0].min()) for f in curves)
        hi = max(float(f.wavelength[f.transmission > 0].max()) for f in curves)
        self.lam = np.exp(np.arange(np.log(lo * 0.99), np.log(hi * 1.01), dlnlam))
        self._curves = [(np.asarray(f.wavelength, float), np.asarray(f.transmission, float))
                        for f in curves]
        trans = np.array([np.interp(self.lam, w, t, left=0.0, right=0.0)
                          for w, t in self._curves])
        #: int T c / lambda dlambda on the grid (dlambda = lambda dlnlam)
        self._norm = np.sum(trans, axis=1) * C_AA * dlnlam
        #: weights of f_lambda samples: T lambda dlambda / norm
        self.weights = trans * self.lam**2 * dlnlam / self._norm[:, None]

    def fluxes(self, p: SedParams, chunk: int = 512) -> np.ndarray:
        """Band f_nu (arbitrary common units) per galaxy, shape (n_galaxies, n_bands)."""
        n = len(p)
        out = np.empty((n, len(self.bands)))
        for start in range(0, n, chunk):
            sl = slice(start, min(start + chunk, n))
            sub = _subset(p, sl)
            out[sl] = self._fluxes(sub)
        return out

    def _fluxes(self, p: SedParams) -> np.ndarray:
        zp1 = 1.0 + np.asarray(p.z, float)[:, None]
        lam_rest = self.lam[None, :] / zp1
        f_obs = continuum(lam_rest, p) / zp1 * inoue_transmission(self.lam[None, :], zp1 - 1)
        cont = f_obs @ self.weights.T
        return cont + self._line_fluxes(p)

    def _line_fluxes(self, p: SedParams) -> np.ndarray:
        """Exact band integrals of the lines (observed line flux = rest flux here, as the
        continuum's f_lambda is divided by 1 + z)."""
        rest = np.array(list(LINES.values()))
        av_gas = GAS_AV_FACTOR * np.asarray(p.av, float)[:, None]
        # the galaxy's own curve, as for its stars
        curve = attenuation(np.broadcast_to(rest, (len(p), rest.size)), p)
        flux = line_fluxes(p) * 10.0 ** (-0.4 * av_gas * curve)
        lam_obs = rest[None, :] * (1.0 + np.asarray(p.z, float)[:, None])
        # lines blueward of Ly-alpha: none; Ly-alpha's IGM losses are in its escape
        out = np.empty((len(p), len(self.bands)))
        for b, (w, t) in enumerate(self._curves):
            tr = np.interp(lam_obs, w, t, left=0.0, right=0.0)
            out[:, b] = np.sum(flux * tr * lam_obs, axis=1) / self._norm[b]
        return out


def _subset(p: SedParams, sl: slice) -> SedParams:
    return SedParams(**{k: None if v is None else np.asarray(v)[sl]
                        for k, v in vars(p).items()})
