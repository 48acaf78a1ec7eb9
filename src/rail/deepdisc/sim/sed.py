"""Galaxy spectral energy distributions and fast synthetic photometry.

The simulator's SEDs are the 31 COSMOS templates (Polletta et al. 2007 + BC03 blue
templates; Ilbert et al. 2009) that pz-rail-base ships, reddened by Calzetti et al. (2000)
dust (astro-sedpy's implementation) on a small grid of E(B-V). Each (template, E(B-V)) pair
is one *library entry*; a galaxy's SED is one entry, so a template fitter given the
library (:meth:`SEDLibrary.write_sed_files`) is an exact "oracle".

Synthetic photometry follows astro-sedpy's photon-counting definition,
``<f_nu> = int f_lambda T lambda dlambda / int (c / lambda) T dlambda``, with the
Madau (1995) IGM, and is vectorised over galaxies.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rail.deepdisc.bands import filter_curve, validate_bands
from rail.deepdisc.errors import InputError
from rail.deepdisc.sim.igm import madau_transmission
from rail.deepdisc.store.atomic import atomic_output

#: speed of light in Angstrom / s (astro-sedpy's value)
LIGHTSPEED_AA = 2.998e18
#: AB zero point in erg / s / cm^2 / Hz
AB_FNU0 = 3.631e-20

#: rest-frame wavelength ranges (Angstrom) used to normalise luminosities
UV_WINDOW = (1450.0, 1550.0)
OPTICAL_WINDOW = (5400.0, 5600.0)

#: COSMOS templates treated as quiescent (no dust grid applied)
QUIESCENT_TEMPLATES = ("Ell1_A_0", "Ell2_A_0", "Ell3_A_0", "Ell4_A_0", "Ell5_A_0",
                       "Ell6_A_0", "Ell7_A_0", "S0_A_0")

#: default E(B-V) grid applied to the star-forming COSMOS templates
DEFAULT_EBV_GRID = (0.0, 0.1, 0.2, 0.3, 0.4)


def rail_sed_dir() -> str:
    """Directory of the SED templates shipped with pz-rail-base."""
    from rail.utils.path_utils import find_rail_file

    return find_rail_file("examples_data/estimation_data/data/SED")


def read_sed_file(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a two-column ASCII SED (wavelength in Angstrom, f_lambda).

    Raises
    ------
    InputError
        If the file cannot be parsed as two numeric columns.
    """
    try:
        data = np.loadtxt(path, comments="#", usecols=(0, 1))
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read SED file {path}: {err}") from err
    if data.ndim != 2 or data.shape[0] < 2:
        raise InputError(f"SED file {path} has no (wavelength, flux) table")
    wave, flux = data[:, 0], data[:, 1]
    order = np.argsort(wave)
    wave, flux = wave[order], flux[order]
    keep = np.concatenate([[True], np.diff(wave) > 0])
    return wave[keep], np.clip(flux[keep], 0.0, None)


def calzetti_transmission(wave: np.ndarray, ebv: float) -> np.ndarray:
    """Calzetti et al. (2000) dust transmission for a colour excess E(B-V).

    Uses astro-sedpy's ``attenuation.calzetti`` (R_V = 4.05).
    """
    if ebv <= 0:
        return np.ones_like(wave, dtype=float)
    from sedpy.attenuation import calzetti

    r_v = 4.05
    tau_v = ebv * r_v / 1.0857362047581294
    return np.exp(-calzetti(wave, tau_v=tau_v, R_v=r_v))


@dataclass
class SEDLibrary:
    """Rest-frame SED library on a common log-wavelength grid.

    Attributes
    ----------
    names
        One name per entry, ``<template>_ebv<E(B-V)>``.
    template
        Base template name per entry.
    ebv
        Calzetti E(B-V) per entry.
    quiescent
        True for entries of the quiescent population.
    wave
        Rest-frame wavelength grid in Angstrom, uniform in ln(lambda).
    flux
        f_lambda per entry, shape (n_entries, n_wave), arbitrary units, zero below the
        Lyman limit (no escaping ionising photons).
    """

    names: np.ndarray
    template: np.ndarray
    ebv: np.ndarray
    quiescent: np.ndarray
    wave: np.ndarray
    flux: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dlnwave(self) -> float:
        """Step of the log-wavelength grid."""
        return float(np.log(self.wave[1] / self.wave[0]))

    def luminosity_nu(self, window: tuple[float, float]) -> np.ndarray:
        """Mean L_nu (template units x Angstrom^2 / c) of each entry in a rest window."""
        sel = (self.wave >= window[0]) & (self.wave <= window[1])
        fnu = self.flux[:, sel] * self.wave[sel] ** 2 / LIGHTSPEED_AA
        return fnu.mean(axis=1)

    def write_sed_files(self, directory: str, entries: Sequence[int] | None = None) -> list[str]:
        """Write entries as two-column ``.sed`` files (BPZ/EAZY format).

        Returns the file names written (relative to ``directory``), in entry order.
        """
        os.makedirs(directory, exist_ok=True)
        entries = range(len(self)) if entries is None else entries
        names = []
        for i in entries:
            name = f"{self.names[i]}.sed"
            with atomic_output(os.path.join(directory, name), "SED file") as tmp:
                np.savetxt(tmp, np.column_stack([self.wave, self.flux[i]]), fmt="%.6e")
            names.append(name)
        return names


def _log_grid(wmin: float = 300.0, wmax: float = 200000.0, dlnw: float = 1.0e-3) -> np.ndarray:
    n = int(np.ceil(np.log(wmax / wmin) / dlnw)) + 1
    return wmin * np.exp(np.arange(n) * dlnw)


@lru_cache(maxsize=4)
def cosmos_library(ebv_grid: tuple[float, ...] = DEFAULT_EBV_GRID) -> SEDLibrary:
    """The simulator's SED library: COSMOS templates x Calzetti E(B-V) grid.

    Quiescent templates (ellipticals, S0) get no extra dust; star-forming ones get
    every E(B-V) of ``ebv_grid``.
    """
    sed_dir = rail_sed_dir()
    with open(os.path.join(sed_dir, "COSMOS_seds.list"), encoding="ascii") as fin:
        files = [line.strip() for line in fin if line.strip() and not line.startswith("#")]
    wave = _log_grid()
    names, template, ebvs, quiescent, fluxes = [], [], [], [], []
    for fname in files:
        base = fname.removesuffix(".sed")
        w, f = read_sed_file(os.path.join(sed_dir, fname))
        rest = np.interp(wave, w, f, left=0.0, right=0.0)
        rest[wave < 912.0] = 0.0
        is_q = base in QUIESCENT_TEMPLATES
        for ebv in (0.0,) if is_q else ebv_grid:
            names.append(f"{base}_ebv{ebv:.2f}")
            template.append(base)
            ebvs.append(ebv)
            quiescent.append(is_q)
            fluxes.append(rest * calzetti_transmission(wave, ebv))
    return SEDLibrary(
        names=np.array(names),
        template=np.array(template),
        ebv=np.array(ebvs),
        quiescent=np.array(quiescent),
        wave=wave,
        flux=np.array(fluxes),
    )


def _resampled_filter(band: str, dlnwave: float) -> tuple[np.ndarray, np.ndarray]:
    """Filter on a uniform ln(lambda) grid with normalised photon-counting weights.

    Returns wavelengths and weights ``w`` such that ``sum(w * f_lambda(lam))`` is the
    flux in maggies of a spectrum f_lambda (erg/s/cm^2/A).
    """
    lam, trans = filter_curve(band)
    keep = np.flatnonzero(trans > 1.0e-4 * trans.max())
    lo, hi = lam[max(keep[0] - 1, 0)], lam[min(keep[-1] + 1, lam.size - 1)]
    n = int(np.ceil(np.log(hi / lo) / dlnwave)) + 1
    grid = lo * np.exp(np.linspace(0.0, np.log(hi / lo), n))
    t = np.interp(grid, lam, trans, left=0.0, right=0.0)
    # int f T lambda dlambda = int f T lambda^2 dln(lambda), trapezoid in ln(lambda)
    dln = np.full(n, np.log(hi / lo) / (n - 1))
    dln[[0, -1]] *= 0.5
    weight = t * grid**2 * dln
    zero = np.sum(weight * AB_FNU0 * LIGHTSPEED_AA / grid**2)
    return grid, weight / zero


class Photometer:
    """Fast synthetic AB photometry of library entries at arbitrary redshifts.

    Parameters
    ----------
    library
        The rest-frame SED library.
    bands
        Band names (scene-store names; filter curves from astro-sedpy).
    igm
        Apply Madau (1995) IGM attenuation.
    """

    def __init__(self, library: SEDLibrary, bands: Sequence[str], igm: bool = True,
                 dlnwave: float = 1.0e-3):
        self.library = library
        self.bands = validate_bands(bands)
        self.igm = igm
        self._filters = [_resampled_filter(band, dlnwave) for band in self.bands]

    def maggies(self, entry: np.ndarray, z: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """Band fluxes in maggies of a unit-normalised library entry placed at z.

        The template's f_lambda is taken as L_lambda with 4 pi d_L^2 = 1, so the result
        is ``<f_nu>/3631 Jy`` up to the luminosity scale (see :meth:`magnitudes`).

        Parameters
        ----------
        entry
            Library entry index per galaxy.
        z
            Redshift per galaxy.

        Returns
        -------
        numpy.ndarray
            Shape (n_galaxies, n_bands).
        """
        entry = np.atleast_1d(np.asarray(entry, dtype=np.int64))
        z = np.atleast_1d(np.asarray(z, dtype=float))
        if entry.shape != z.shape:
            raise ValueError("entry and z must have the same shape")
        lib = self.library
        lnw0, dlnw = np.log(lib.wave[0]), lib.dlnwave
        nw = lib.wave.size
        out = np.empty((z.size, len(self.bands)))
        for start in range(0, z.size, chunk):
            sl = slice(start, start + chunk)
            zp1 = 1.0 + z[sl, None]
            rows = entry[sl, None]
            for j, (lam, weight) in enumerate(self._filters):
                pos = (np.log(lam[None, :] / zp1) - lnw0) / dlnw
                i0 = np.clip(np.floor(pos).astype(np.int64), 0, nw - 2)
                frac = np.clip(pos - i0, 0.0, 1.0)
                valid = (pos >= 0) & (pos <= nw - 1)
                f = lib.flux[rows, i0] * (1.0 - frac) + lib.flux[rows, i0 + 1] * frac
                f = np.where(valid, f, 0.0) / zp1
                if self.igm:
                    f = f * madau_transmission(lam[None, :], zp1 - 1.0)
                out[sl, j] = f @ weight
        return out

    def colour_terms(self, entry: np.ndarray, z: np.ndarray, window: tuple[float, float]
                     ) -> np.ndarray:
        """``m_band - M_window - DM(z)`` for each galaxy and band.

        ``M_window`` is the absolute AB magnitude of the rest-frame L_nu in ``window``;
        ``DM`` the distance modulus. Adding ``M + DM`` gives apparent magnitudes.
        """
        entry = np.atleast_1d(np.asarray(entry, dtype=np.int64))
        lnu = self.library.luminosity_nu(window)[entry]
        mag = self.maggies(entry, z)
        with np.errstate(divide="ignore"):
            return 48.6 + 2.5 * np.log10(lnu)[:, None] - 2.5 * np.log10(mag)
