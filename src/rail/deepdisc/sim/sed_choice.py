"""How the population gives each galaxy its SED: library entry priors and emission lines.

Entry priors, P(entry | z), per population (star-forming or quiescent):

* template libraries (COSMOS, CWW+SB, a user's list): star-forming galaxies favour younger,
  bluer templates at higher redshift (a Gaussian in the template's place on the red-to-blue
  sequence, centred at ``0.35 + 0.12 z``) and less dust above z ~ 2; quiescent galaxies
  pick any quiescent template. The ``lowz`` population's blue cloud (``style="lowz"``)
  centres its Gaussian at ``0.55 + 0.1 z`` and has less dust (E(B-V) 0, 0.1, 0.2, 0.3, 0.4
  with weights 0.45, 0.3, 0.15, 0.07, 0.03), so that its colours are near those of local
  star-forming galaxies (median g - r ~ 0.6 at z ~ 0.1, against ~0.8 for the red
  sequence);
* ``sps`` libraries (:mod:`rail.deepdisc.spectra.sps`), whose entries were drawn from
  physical priors at a design redshift: the entries designed near z (a Gaussian kernel of
  0.07 dex in 1 + z) whose stars are younger than the Universe at z, and that are
  quiescent at z (sSFR below ``0.2 / t_H(z)``, Pacifici et al. 2016) for the quiescent
  population, star-forming otherwise.

Emission lines (:class:`LineDraw`). Lines make galaxies brighter, so a galaxy whose
continuum is fainter than the magnitude limit may pass it. To draw exactly the galaxies
brighter than the limit *with* their lines, the population's draw rate of each (redshift,
entry) cell is split into strata of the galaxy's EW distribution (standard-normal bins,
:data:`rail.deepdisc.spectra.nebular.EW_STRATA`); within a stratum the limit is relaxed by the
largest brightening its EWs can give (over the metallicities lines may have), magnitudes
are drawn to that relaxed limit, lines are drawn inside the stratum, and galaxies are kept
if their magnitude with lines passes the limit: rejection sampling with an envelope, so no
galaxy that lines lift above the limit is missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy.special import ndtr, ndtri

from rail.deepdisc.spectra import nebular
from rail.deepdisc.spectra.library import SEDLibrary
from rail.deepdisc.spectra.nebular import EW_CAP, EW_STRATA, LINE_WAVE, Lines
from rail.deepdisc.spectra.photometer import Photometer

#: metallicities over which the line brightening is bounded
_OH_PROBE = np.linspace(*nebular.OH_RANGE, 6)


# --------------------------------------------------------------------------- entry priors
#: star-forming template priors: centre of the Gaussian in sequence position (a + b z) and
#: the E(B-V) weights at low and high redshift
_SF_PRIORS = {
    "deep": ((0.35, 0.12), {0.0: 0.25, 0.1: 0.30, 0.2: 0.25, 0.3: 0.12, 0.4: 0.08},
             {0.0: 0.60, 0.1: 0.30, 0.2: 0.10, 0.3: 0.0, 0.4: 0.0}),
    "lowz": ((0.55, 0.10), {0.0: 0.45, 0.1: 0.30, 0.2: 0.15, 0.3: 0.07, 0.4: 0.03},
             {0.0: 0.45, 0.1: 0.30, 0.2: 0.15, 0.3: 0.07, 0.4: 0.03}),
}


def entry_prior(lib: SEDLibrary, z: np.ndarray, quiescent: bool, style: str = "deep"
                ) -> np.ndarray:
    """P(entry | z) for one population, shape (n_z, n_entries); rows sum to 1.

    ``style`` chooses the star-forming template prior (``deep`` or ``lowz``, see the
    module docstring).
    """
    if "age" in lib.params:
        w = _sps_prior(lib, z, quiescent)
    elif quiescent:
        w = np.tile(lib.quiescent.astype(float), (z.size, 1))
    else:
        w = _template_sf_prior(lib, z, style)
    total = w.sum(axis=1, keepdims=True)
    if np.any(total <= 0):  # nothing allowed at that z: any entry of the population
        fallback = np.where(lib.quiescent == quiescent, 1.0, 0.0)
        w = np.where(total > 0, w, fallback if fallback.any() else 1.0)
        total = w.sum(axis=1, keepdims=True)
    return w / total


def _template_sf_prior(lib: SEDLibrary, z: np.ndarray, style: str = "deep") -> np.ndarray:
    """Star-forming templates: younger at high z, dust decreasing above z ~ 2."""
    tpos = lib.sf_position if lib.sf_position is not None else np.full(len(lib), np.nan)
    (a, b), ebv_low, ebv_high = _SF_PRIORS[style]
    mean = np.clip(a + b * z, a, 0.92)[:, None]
    w = np.exp(-0.5 * ((tpos[None, :] - mean) / 0.25) ** 2)
    # dust: more at low z and intermediate z, little above z~6 (deep)
    f = np.clip((z - 2.0) / 4.0, 0.0, 1.0)[:, None]
    p_low = np.array([ebv_low.get(round(e, 2), 0.0) for e in lib.ebv])
    p_high = np.array([ebv_high.get(round(e, 2), 0.0) for e in lib.ebv])
    w = w * ((1 - f) * p_low[None, :] + f * p_high[None, :])
    w[:, lib.quiescent | np.isnan(tpos)] = 0.0
    return w


def _sps_prior(lib: SEDLibrary, z: np.ndarray, quiescent: bool) -> np.ndarray:
    """SPS entries designed near z, younger than the Universe, quiescent by sSFR."""
    from astropy.cosmology import Planck18

    p = lib.params
    z = np.asarray(z, float)
    t_univ = Planck18.age(z).value[:, None]  # Gyr
    is_q = p["log_ssfr"][None, :] < np.log10(0.2 / (t_univ * 1.0e9))
    allowed = (p["age"][None, :] < t_univ) & (is_q if quiescent else ~is_q)
    dist = np.log10(1.0 + z)[:, None] - np.log10(1.0 + p["z_design"])[None, :]
    return np.where(allowed, np.exp(-0.5 * (dist / 0.07) ** 2), 0.0)


# --------------------------------------------------------------------------- lines
@dataclass
class LineDraw:
    """A population's emission lines: EW strata, brightening bounds and draws.

    Parameters
    ----------
    library
        The SED library.
    on
        Whether galaxies get emission lines.
    scale
        Factor on every equivalent width (``line_ew_scale``).
    """

    library: SEDLibrary
    on: bool
    scale: float = 1.0
    _zref: np.ndarray = field(default_factory=lambda: np.linspace(0.0, 16.0, 321))

    @property
    def own_lines(self) -> bool:
        """Whether the library's entries carry their own lines (``sps``)."""
        return self.library.lines is not None

    @property
    def n_strata(self) -> int:
        """Number of EW strata of a (redshift, entry) cell."""
        return len(EW_STRATA) - 1 if self.on and not self.own_lines else 1

    def stratum_probabilities(self, quiescent: bool) -> np.ndarray:
        """Probability of each stratum, shape (n_strata,)."""
        if self.n_strata == 1:
            return np.ones(1)
        if quiescent:  # no lines: everything in the first stratum
            return np.eye(1, self.n_strata)[0]
        return np.diff(ndtr(np.array(EW_STRATA)))

    @cached_property
    def _colour_ref(self) -> np.ndarray:
        """Mean UV - optical colour of the star-forming entries at each z of ``_zref``."""
        prior = entry_prior(self.library, self._zref, quiescent=False)
        return prior @ np.nan_to_num(self.library.uv_optical_colour)

    def _log_ew(self, z: np.ndarray, entry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and scatter (dex) of log10 EW for template galaxies at z."""
        offset = self.library.uv_optical_colour[entry] - np.interp(z, self._zref,
                                                                     self._colour_ref)
        return nebular.log_ew_mean(z, offset), nebular.ew_sigma(z)

    def ew_upper(self, z: np.ndarray, entry: np.ndarray, stratum: np.ndarray) -> np.ndarray:
        """Largest EW([OIII]+H-beta) of the stratum (Angstrom, scale applied)."""
        if not self.on:
            return np.zeros(np.shape(z))
        if self.own_lines:
            return self.library.params["ew_oiii_hb"][entry] * self.scale
        mean, sigma = self._log_ew(z, entry)
        top = np.array(EW_STRATA)[np.asarray(stratum) + 1]
        with np.errstate(over="ignore"):
            ew = np.minimum(10.0 ** (mean + sigma * top), EW_CAP)
        return np.where(self.library.has_lines[entry], 0.0, ew) * self.scale

    def maggies_per_ew(self, phot: Photometer, z: np.ndarray, entry: np.ndarray
                       ) -> np.ndarray:
        """Largest line flux (maggies, band 0 of ``phot``) per Angstrom of EW([OIII]+Hb)."""
        if not self.on:
            return np.zeros(np.shape(z))
        if self.own_lines:
            unit = self.library.params["ew_oiii_hb"][entry]
            lines = self.lines(z, entry, np.where(unit > 0, 1.0, 0.0), np.zeros(z.shape))
            return phot.line_maggies(lines, z)[:, 0]
        best = np.zeros(np.shape(z))
        for oh in _OH_PROBE:
            lines = self.lines(z, entry, np.ones(z.shape), np.full(z.shape, oh))
            best = np.maximum(best, phot.line_maggies(lines, z)[:, 0])
        return best

    def brightening(self, phot: Photometer, z: np.ndarray, entry: np.ndarray,
                    continuum: np.ndarray, quiescent: bool) -> np.ndarray:
        """Largest brightening (mag) by lines in each stratum, shape (n, n_strata).

        ``continuum`` is the continuum flux (maggies) in the band of ``phot``; quiescent
        galaxies of template libraries have no lines.
        """
        z, entry = np.asarray(z, float), np.asarray(entry, np.int64)
        out = np.zeros((z.size, self.n_strata))
        if not self.on or (quiescent and not self.own_lines):
            return out
        per_ew = self.maggies_per_ew(phot, z, entry)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(continuum > 0, per_ew / continuum, 0.0)
        for k in range(self.n_strata):
            out[:, k] = 2.5 * np.log10(1.0 + self.ew_upper(z, entry, np.full(z.size, k)) * ratio)
        return out

    def draw(self, rng: np.random.Generator, z: np.ndarray, entry: np.ndarray,
             stratum: np.ndarray, quiescent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """EW([OIII]+H-beta) (A) and 12 + log(O/H) per galaxy, inside each one's stratum."""
        if self.own_lines:
            p = self.library.params
            return (p["ew_oiii_hb"][entry] * self.scale if self.on else np.zeros(z.size),
                    8.69 + np.log10(p["metallicity"][entry]))
        edges = ndtr(np.array(EW_STRATA))
        lo, hi = edges[stratum], edges[np.asarray(stratum) + 1]
        u = ndtri(np.clip(lo + rng.uniform(size=z.size) * (hi - lo), 1e-12, 1 - 1e-12))
        mean, sigma = self._log_ew(z, entry)
        ew = np.minimum(10.0 ** (mean + sigma * u), EW_CAP) * self.scale
        ew = np.where(quiescent | self.library.has_lines[entry], 0.0, ew)
        return ew, nebular.draw_oh(rng, z)

    def lines(self, z: np.ndarray, entry: np.ndarray, ew: np.ndarray, oh: np.ndarray
              ) -> Lines:
        """The emission lines of galaxies (see :func:`galaxy_lines`)."""
        return galaxy_lines(self.library, entry, z, ew, oh)


def galaxy_lines(library: SEDLibrary, entry: np.ndarray, z: np.ndarray, ew: np.ndarray,
                 oh: np.ndarray) -> Lines:
    """Emission lines of galaxies from their catalog columns.

    Parameters
    ----------
    library
        The SED library of ``entry``.
    entry
        Library entry (``sed_index``) per galaxy.
    z
        Redshift per galaxy.
    ew
        ``ew_oiii_hb``: rest-frame EW([OIII]+H-beta) in Angstrom (0: no lines).
    oh
        ``oh_abundance``: 12 + log(O/H) (template libraries: sets the line ratios).

    Returns
    -------
    Lines
        Line luminosities in the library's units: for ``sps`` entries their own lines
        scaled to ``ew`` (Ly-alpha times :func:`rail.deepdisc.spectra.nebular.lya_escape`), for
        templates :func:`rail.deepdisc.spectra.nebular.line_luminosities`.
    """
    entry = np.asarray(entry, np.int64)
    z, ew = np.asarray(z, float), np.asarray(ew, float)
    if library.lines is not None:
        own = library.params["ew_oiii_hb"][entry]
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(own > 0, ew / own, 0.0)
        lum = library.lines.lum[entry] * factor[:, None]
        lya = np.isclose(library.lines.wave, 1215.67, atol=0.5)
        lum[:, lya] *= nebular.lya_escape(z)[:, None]
        return Lines(library.lines.wave, lum)
    lum = nebular.line_luminosities(ew, oh, library.ebv[entry], z,
                                    library.line_continuum[entry])
    return Lines(LINE_WAVE, lum)
