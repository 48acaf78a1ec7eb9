"""Galaxy spectral energy distributions and fast synthetic photometry.

The simulator's SEDs are *library entries*: rest-frame continua on a common log-wavelength
grid. A library is chosen by name (:func:`get_library`):

``cosmos`` (default)
    The 31 COSMOS templates (Polletta et al. 2007 + BC03 blue templates; Ilbert et al.
    2009) that pz-rail-base ships, reddened by Calzetti et al. (2000) dust (astro-sedpy's
    implementation) on a small grid of E(B-V).
``cww``
    BPZ's CWW+SB4 set shipped with pz-rail-base (:func:`rail.deepdisc.fit.templates.
    cww_templates`, extended redward), on the same dust grid.
a path
    A user's template list: one two-column SED file (Angstrom, f_lambda) per line, paths
    relative to the list's folder; templates redder than rest (M_1500 - M_5500) = 5 mag are
    the quiescent population.
``sps``
    Stellar population synthesis with nebular emission (BC03 + CLOUDY, through the optional
    ``bagpipes`` package: :mod:`rail.deepdisc.sim.sps`), whose entries carry their own lines.

Each (template, E(B-V)) pair is one entry; a galaxy's continuum is one entry, so a template
fitter given the library (:meth:`SEDLibrary.write_sed_files`) is an exact "oracle" for
galaxies without emission lines. Template continua get nebular emission lines per galaxy
(:mod:`rail.deepdisc.sim.nebular`); templates that already show lines (the Kinney
starbursts of CWW+SB) get none added.

Synthetic photometry follows astro-sedpy's photon-counting definition,
``<f_nu> = int f_lambda T lambda dlambda / int (c / lambda) T dlambda``, with the
Madau (1995) IGM, and is vectorised over galaxies. Emission lines are integrated exactly
(a line of flux F at observed wavelength l adds ``F T(l) l`` to the numerator), so no line
is lost between wavelength samples, whatever its width.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

import numpy as np

from rail.deepdisc.bands import filter_curve, validate_bands
from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.options import option
from rail.deepdisc.sim.igm import madau_transmission
from rail.deepdisc.sim.randomise import RealismChoice
from rail.deepdisc.store.atomic import atomic_output

if TYPE_CHECKING:
    from rail.deepdisc.sim.nebular import Lines

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

#: star-forming COSMOS templates, oldest/reddest to youngest/bluest
SF_TEMPLATE_SEQUENCE = (
    "Sa_A_0", "Sa_A_1", "Sb_A_0", "Sb_A_1", "Sc_A_0", "Sc_A_1", "Sc_A_2", "Sd_A_0",
    "Sd_A_1", "Sd_A_2", "Sdm_A_0", "SB0_A_0", "SB1_A_0", "SB2_A_0", "SB3_A_0", "SB4_A_0",
    "SB5_A_0", "SB6_A_0", "SB7_A_0", "SB8_A_0", "SB9_A_0", "SB10_A_0", "SB11_A_0",
)

#: default E(B-V) grid applied to the star-forming templates
DEFAULT_EBV_GRID = (0.0, 0.1, 0.2, 0.3, 0.4)

#: templates of a user's list redder than this rest M_1500 - M_5500 (AB) are quiescent
#: (COSMOS: S0 5.1, ellipticals 6.8-9.1; the reddest spiral, Sa, 4.7)
QUIESCENT_COLOUR = 5.0

#: built-in SED libraries (``sed_library`` also takes a template-list path)
BUILTIN_LIBRARIES = ("cosmos", "cww", "sps")


@dataclass(frozen=True, kw_only=True)
class SEDOptions(RealismChoice):
    """Which SEDs galaxies get: the library and nebular emission lines."""

    sed_library: str | None = option(
        None, "SED library: 'cosmos' (COSMOS templates x dust), 'cww' (CWW+SB), 'sps' "
        "(BC03 + CLOUDY stellar population synthesis, needs the sps extra: bagpipes), a "
        "template-list file (one SED file per line, or an EAZY templates .param file), "
        "or template libraries joined by '+' "
        "(their entries mixed, e.g. 'cosmos+cww'); None: the realism preset's value "
        "('cosmos')", metavar="NAME|FILE")
    emission_lines: bool | None = option(
        None, "add nebular emission lines to template SEDs (rest EW([OIII]+Hb) ~100 A at "
        "z~2 to ~760 A at z>=7; None: the realism preset's value; sps SEDs always have "
        "theirs unless this is False)")
    line_ew_scale: float = option(
        1.0, "factor on every emission-line equivalent width", ge=0, le=10)
    sed_distortion: float | None = option(
        None, "rms (mag) of a random smooth distortion of each galaxy's SED (knots every "
        "factor ~1.6 in rest wavelength; the limit band's magnitude kept): colours beyond "
        "the library's; None: the realism preset's value", ge=0, le=1)

    @property
    def library(self) -> str:
        """The SED library galaxies draw from (``sed_library`` or the preset's)."""
        return self.setting("sed_library")

    def lines_on(self) -> bool:
        """Whether galaxies get emission lines."""
        if self.emission_lines is not None:
            return self.emission_lines
        return self.library == "sps" or bool(self.setting("emission_lines"))

    def _check(self) -> None:
        check_library_name(self.library)


def library_parts(source: str) -> list[str]:
    """The libraries a ``sed_library`` value names: itself, or its '+'-joined parts (unless
    it is a file whose name holds a '+')."""
    if "+" in source and not os.path.isfile(source):
        return [part.strip() for part in source.split("+")]
    return [source]


def check_library_name(source: str) -> None:
    """Raise OptionError unless ``source`` names SED libraries :func:`get_library` reads."""
    parts = library_parts(source)
    for part in parts:
        if part == "sps":
            if len(parts) > 1:
                raise OptionError(f"sed_library {source!r}: 'sps' cannot be mixed with "
                                  "template libraries")
            from rail.deepdisc.sim.sps import bagpipes_available

            if not bagpipes_available():
                raise OptionError("sed_library 'sps' needs the bagpipes package: "
                                  "pip install 'pz-rail-deepdisc[sps]'")
        elif part not in BUILTIN_LIBRARIES and not os.path.isfile(part):
            raise OptionError(f"sed_library must be one of {list(BUILTIN_LIBRARIES)}, a "
                              f"template list file or such names joined by '+'; {part!r} "
                              "is neither")


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
        Lyman limit (no escaping ionising photons). Continuum only: emission lines are
        added per galaxy (:mod:`rail.deepdisc.sim.nebular`) or held in ``lines``.
    name
        What the library is (``cosmos``, ``cww``, ``sps`` or a template-list path).
    sf_position
        Place of each star-forming entry's template on the sequence from old/red (0) to
        young/blue (1); NaN for quiescent entries.
    has_lines
        True for entries whose template already shows nebular lines (none are added).
    lines
        Each entry's own emission lines (``sps`` libraries), else None.
    params
        Physical parameters per entry (``sps``: age, tau, metallicity, Av, logU, ssfr).
    """

    names: np.ndarray
    template: np.ndarray
    ebv: np.ndarray
    quiescent: np.ndarray
    wave: np.ndarray
    flux: np.ndarray
    name: str = "cosmos"
    sf_position: np.ndarray | None = None
    has_lines: np.ndarray | None = None
    lines: Lines | None = None
    params: dict[str, np.ndarray] = field(default_factory=dict)

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

    @cached_property
    def uv_optical_colour(self) -> np.ndarray:
        """Rest-frame M_1500 - M_5500 (AB) of each entry: negative is blue."""
        return 2.5 * np.log10(self.luminosity_nu(OPTICAL_WINDOW)
                              / self.luminosity_nu(UV_WINDOW))

    @cached_property
    def line_continuum(self) -> np.ndarray:
        """Continuum f_lambda of each entry at the nebular lines, shape (n_entries, n_lines).

        The mean within +-0.5% of each line's wavelength (about +-25 A at H-beta), so narrow
        absorption features of the template do not set a line's equivalent width.
        """
        from rail.deepdisc.sim.nebular import LINE_WAVE

        lnw = np.log(self.wave)
        lo = np.searchsorted(lnw, np.log(LINE_WAVE) - 0.005)
        hi = np.searchsorted(lnw, np.log(LINE_WAVE) + 0.005)
        cum = np.concatenate([np.zeros((len(self), 1)), np.cumsum(self.flux, axis=1)], axis=1)
        return (cum[:, hi] - cum[:, lo]) / np.maximum(hi - lo, 1)

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


def shows_lines(wave: np.ndarray, flux: np.ndarray) -> bool:
    """Whether a template already has nebular emission lines ([OII], [OIII] or H-alpha).

    A line is there if the peak within +-30 A exceeds the median within +-100 A by 30%.
    """
    for lam in (3728.5, 5008.2, 6564.6):
        near = (wave > lam - 100.0) & (wave < lam + 100.0)
        peak = near & (np.abs(wave - lam) < 30.0)
        if peak.sum() and np.median(flux[near]) > 0 and \
                flux[peak].max() > 1.3 * np.median(flux[near]):
            return True
    return False


def _entries(name: str, templates: Sequence[tuple[str, np.ndarray, np.ndarray]],
             quiescent: Sequence[bool], sf_position: Sequence[float],
             ebv_grid: tuple[float, ...]) -> SEDLibrary:
    """Library of templates x E(B-V) grid (quiescent templates get no extra dust)."""
    wave = _log_grid()
    cols: dict[str, list] = {k: [] for k in ("names", "template", "ebv", "quiescent",
                                             "flux", "sf_position", "has_lines")}
    for (base, w, f), is_q, pos in zip(templates, quiescent, sf_position, strict=True):
        rest = np.interp(wave, w, f, left=0.0, right=0.0)
        rest[wave < 912.0] = 0.0
        lines = shows_lines(w, f)
        for ebv in (0.0,) if is_q else ebv_grid:
            for key, value in (("names", f"{base}_ebv{ebv:.2f}"), ("template", base),
                               ("ebv", ebv), ("quiescent", is_q), ("sf_position", pos),
                               ("has_lines", lines),
                               ("flux", rest * calzetti_transmission(wave, ebv))):
                cols[key].append(value)
    arrays = {k: np.array(v) for k, v in cols.items()}
    return SEDLibrary(wave=wave, name=name, **arrays)


@lru_cache(maxsize=4)
def cosmos_library(ebv_grid: tuple[float, ...] = DEFAULT_EBV_GRID) -> SEDLibrary:
    """The simulator's default SED library: COSMOS templates x Calzetti E(B-V) grid.

    Quiescent templates (ellipticals, S0) get no extra dust; star-forming ones get
    every E(B-V) of ``ebv_grid``.
    """
    sed_dir = rail_sed_dir()
    with open(os.path.join(sed_dir, "COSMOS_seds.list"), encoding="ascii") as fin:
        files = [line.strip() for line in fin if line.strip() and not line.startswith("#")]
    templates = [(f.removesuffix(".sed"), *read_sed_file(os.path.join(sed_dir, f)))
                 for f in files]
    seq = {t: i / (len(SF_TEMPLATE_SEQUENCE) - 1) for i, t in enumerate(SF_TEMPLATE_SEQUENCE)}
    return _entries("cosmos", templates, [t[0] in QUIESCENT_TEMPLATES for t in templates],
                    [seq.get(t[0], np.nan) for t in templates], ebv_grid)


def _by_colour(name: str, templates: list[tuple[str, np.ndarray, np.ndarray]],
               quiescent: list[bool] | None = None) -> SEDLibrary:
    """Library whose star-forming templates are ordered by rest UV - optical colour."""
    wave = _log_grid()
    flux = np.array([np.interp(wave, w, f, left=0.0, right=0.0) for _, w, f in templates])
    probe = SEDLibrary(np.array([t[0] for t in templates]), np.array([t[0] for t in templates]),
                       np.zeros(len(templates)), np.zeros(len(templates), bool), wave, flux)
    with np.errstate(divide="ignore", invalid="ignore"):
        colour = probe.uv_optical_colour
    if not np.all(np.isfinite(colour)):
        bad = [t[0] for t, c in zip(templates, colour, strict=True) if not np.isfinite(c)]
        raise InputError(f"templates {bad} of {name} have no flux at rest 1500 A or 5500 A")
    if quiescent is None:
        quiescent = list(colour > QUIESCENT_COLOUR)
    sf = [i for i, q in enumerate(quiescent) if not q]
    if not sf:
        raise InputError(f"{name} has no star-forming template (all redder than rest "
                         f"M_1500 - M_5500 = {QUIESCENT_COLOUR} mag)")
    rank = {i: r for r, i in enumerate(sorted(sf, key=lambda i: -colour[i]))}
    pos = [rank[i] / max(len(sf) - 1, 1) if i in rank else np.nan
           for i in range(len(templates))]
    return _entries(name, templates, quiescent, pos, DEFAULT_EBV_GRID)


@lru_cache(maxsize=2)
def cww_library() -> SEDLibrary:
    """BPZ's CWW+SB4 templates (extended redward) x the Calzetti E(B-V) grid."""
    from rail.deepdisc.fit.templates import EARLY, cww_templates

    tset = cww_templates()
    return _by_colour("cww", [(t.name, t.wave, t.flux) for t in tset.templates],
                      [t.broad_type == EARLY for t in tset.templates])


@lru_cache(maxsize=8)
def user_library(list_file: str) -> SEDLibrary:
    """A user's template list x E(B-V) grid.

    The list names one two-column ASCII SED file per line (relative to the list), or is
    an EAZY templates ``.param`` file (``N path [wavelength scale ...]`` per line, e.g.
    EAZY's ``fsps_full/tweak_fsps_QSF_12_v3.param``; paths as EAZY resolves them).

    Raises
    ------
    InputError
        Naming the list or template file that cannot be read.
    """
    if list_file.endswith(".param"):
        from rail.deepdisc.fit.eazy_templates import parse_param_file

        entries = parse_param_file(list_file)
    else:
        entries = [(os.path.join(os.path.dirname(os.path.abspath(list_file)), name), 1.0)
                   for name in _list_entries(list_file)]
    templates = []
    for path, wave_scale in entries:
        wave, flux = read_sed_file(path)
        keep = wave > 0
        templates.append((os.path.basename(path).removesuffix(".sed"),
                          wave[keep] * wave_scale, flux[keep]))
    return _by_colour(list_file, templates)


def _list_entries(list_file: str) -> list[str]:
    """The first word of each line of a template list that is not blank or a comment."""
    try:
        with open(list_file, encoding="utf-8") as fin:
            files = [ln.split()[0] for ln in fin
                     if ln.strip() and not ln.lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read template list {list_file}: {err}") from err
    if not files:
        raise InputError(f"template list {list_file} names no SED file")
    return files


def get_library(source: str = "cosmos") -> SEDLibrary:
    """The SED library named by the ``sed_library`` option.

    Parameters
    ----------
    source
        ``cosmos``, ``cww``, ``sps`` (needs the ``sps`` extra: bagpipes), the path of a
        template list, or template libraries joined by '+' (:func:`merge_libraries`).

    Raises
    ------
    OptionError
        If ``source`` names neither a built-in library nor an existing file.
    """
    check_library_name(source)
    parts = library_parts(source)
    if len(parts) > 1:
        return merge_libraries(source, [_one_library(part) for part in parts])
    return _one_library(source)


def _one_library(source: str) -> SEDLibrary:
    """The library of one checked name (:func:`get_library`)."""
    if source == "cosmos":
        return cosmos_library()
    if source == "cww":
        return cww_library()
    if source == "sps":
        from rail.deepdisc.sim.sps import sps_library

        return sps_library()
    return user_library(os.path.abspath(source))


def merge_libraries(name: str, libraries: Sequence[SEDLibrary]) -> SEDLibrary:
    """One library holding the entries of several template libraries (same wavelength
    grid, no own lines), so each galaxy draws its template from all of them: a domain
    randomisation of the SEDs. Each entry keeps its place on its own library's sequence
    from old/red to young/blue, so the redshift-dependent template prior mixes the sets in
    proportion to their numbers of entries. Names clashing between libraries get their
    library's name as a prefix.
    """
    for lib in libraries:
        if lib.lines is not None or lib.params or not np.array_equal(lib.wave,
                                                                     libraries[0].wave):
            raise OptionError(f"SED library {lib.name!r} cannot be mixed into {name!r} "
                              "(only template libraries can)")
    names = [str(n) for lib in libraries for n in lib.names]
    if len(set(names)) < len(names):
        names = [f"{os.path.basename(lib.name)}-{n}" for lib in libraries for n in lib.names]

    def joined(attr: str, fill: float | bool) -> np.ndarray:
        return np.concatenate([getattr(lib, attr) if getattr(lib, attr) is not None
                               else np.full(len(lib), fill) for lib in libraries])

    return SEDLibrary(
        names=np.array(names), template=joined("template", ""), ebv=joined("ebv", 0.0),
        quiescent=joined("quiescent", False), wave=libraries[0].wave,
        flux=np.concatenate([lib.flux for lib in libraries]), name=name,
        sf_position=joined("sf_position", np.nan), has_lines=joined("has_lines", False))


def _resampled_filter(band: str, dlnwave: float
                      ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Filter on a uniform ln(lambda) grid with normalised photon-counting weights.

    Returns wavelengths and weights ``w`` such that ``sum(w * f_lambda(lam))`` is the
    flux in maggies of a spectrum f_lambda (erg/s/cm^2/A), and the filter curve
    (wavelength, transmission / normalisation) for lines: a line of flux F (erg/s/cm^2)
    at wavelength l has ``F l T(l) / normalisation`` maggies.
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
    return grid, weight / zero, (lam, trans / zero)


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
        resampled = [_resampled_filter(band, dlnwave) for band in self.bands]
        self._filters = [(lam, weight) for lam, weight, _ in resampled]
        self._curves = [curve for _, _, curve in resampled]

    def maggies(self, entry: np.ndarray, z: np.ndarray, lines: Lines | None = None,
                chunk: int = 2048) -> np.ndarray:
        """Band fluxes in maggies of a unit-normalised library entry placed at z.

        The template's f_lambda is taken as L_lambda with 4 pi d_L^2 = 1, so the result
        is ``<f_nu>/3631 Jy`` up to the luminosity scale (see :meth:`colour_terms`).

        Parameters
        ----------
        entry
            Library entry index per galaxy.
        z
            Redshift per galaxy.
        lines
            Emission lines per galaxy (same units as the library), added exactly
            (:meth:`line_maggies`); None for the continuum alone.

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
        if lines is not None:
            out += self.line_maggies(lines, z)
        return out

    def line_maggies(self, lines: Lines, z: np.ndarray) -> np.ndarray:
        """Band fluxes in maggies of emission lines, integrated exactly.

        A line of rest wavelength l0 and luminosity L (library f_lambda units x Angstrom)
        at redshift z has observed flux L (4 pi d_L^2 = 1, as for the continuum) at
        ``l = l0 (1 + z)``, and adds ``L l T(l) / (AB c int T dln(lambda))`` maggies: the
        photon-counting integral of a line narrower than any feature of the filter curve.
        Lines blueward of Ly-alpha get the IGM; Ly-alpha's losses are in its luminosity.

        Returns
        -------
        numpy.ndarray
            Shape (n_galaxies, n_bands).
        """
        z = np.atleast_1d(np.asarray(z, dtype=float))
        lam_obs = lines.wave[None, :] * (1.0 + z[:, None])
        absorbed = lines.wave < 1215.0
        out = np.empty((z.size, len(self.bands)))
        for j, (lam, trans) in enumerate(self._curves):
            weight = np.interp(lam_obs, lam, trans, left=0.0, right=0.0) * lam_obs
            if self.igm and absorbed.any():
                weight[:, absorbed] *= madau_transmission(lam_obs[:, absorbed], z[:, None])
            out[:, j] = np.sum(lines.lum * weight, axis=1)
        return out

    def colour_terms(self, entry: np.ndarray, z: np.ndarray, window: tuple[float, float],
                     lines: Lines | None = None) -> np.ndarray:
        """``m_band - M_window - DM(z)`` for each galaxy and band.

        ``M_window`` is the absolute AB magnitude of the rest-frame L_nu in ``window`` (of
        the continuum); ``DM`` the distance modulus. Adding ``M + DM`` gives apparent
        magnitudes. ``lines`` as for :meth:`maggies`.
        """
        entry = np.atleast_1d(np.asarray(entry, dtype=np.int64))
        lnu = self.library.luminosity_nu(window)[entry]
        mag = self.maggies(entry, z, lines)
        with np.errstate(divide="ignore"):
            return 48.6 + 2.5 * np.log10(lnu)[:, None] - 2.5 * np.log10(mag)
