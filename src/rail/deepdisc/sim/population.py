"""A JAGUAR-like mock galaxy population, drawn from evolving luminosity functions.

Two populations, each a Schechter luminosity function whose parameters are interpolated
linearly in redshift between literature-like nodes:

* star-forming galaxies, in observed (dust-attenuated) rest-frame 1500 A absolute
  magnitude: Wyder et al. (2005) at z~0, Arnouts et al. (2005) / Cucciati et al. (2012)
  to z~1-2, Reddy & Steidel (2009) at z~3, Bouwens et al. (2021) at z=4-9, and a
  mildly JWST-enhanced extrapolation to z~12-15 (Finkelstein et al. 2023);
* quiescent galaxies, in rest-frame 5500 A absolute magnitude, with a number density
  falling by ~1 dex per unit redshift above z~1 and none above z=6.

Galaxies are drawn exactly from ``phi(M, z) dV/dz`` down to an apparent-magnitude limit in
one band: the selection is done per SED entry with its colour term, so no galaxy fainter
than the limit is drawn and no brighter one is missed (also when emission lines lift a
galaxy above the limit: :mod:`rail.deepdisc.sim.sed_choice`). Each galaxy then gets an SED
entry of the ``sed_library`` (template + Calzetti dust, or a stellar-population-synthesis
SED; :mod:`rail.deepdisc.spectra.library`), optionally nebular emission lines
(:mod:`rail.deepdisc.spectra.nebular`), a size from van der Wel et al. (2014) (z < 3, by
stellar mass) or Shibuya et al. (2015) (z >= 3, by UV luminosity) with log-normal scatter,
a Sersic index, axis ratio and position angle, and, for massive star-forming galaxies, a
bulge + disk mix.

That is the ``deep`` population model (the default). The ``lowz`` model
(:mod:`rail.deepdisc.sim.lowz`), for bright galaxies at 0 < z < 1.5 as ground-based surveys
with SDSS/DESI spectra see them, draws the red sequence and the blue cloud from rest-frame
optical luminosity functions through the same machinery, and marks SDSS/DESI-like
spectroscopic targets (``spec_target``). A survey file chooses its model
(``population: {model: lowz}``); ``population_model`` overrides it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from rail.deepdisc.errors import OptionError
from rail.deepdisc.magnitudes import mag_to_flux
from rail.deepdisc.options import option
from rail.deepdisc.sim import lowz
from rail.deepdisc.sim.morphology import MorphologyOptions, add_components
from rail.deepdisc.sim.sed_choice import LineDraw, entry_prior, galaxy_lines
from rail.deepdisc.sim.sed_options import SEDOptions
from rail.deepdisc.sim.stars import StarOptions, add_stars
from rail.deepdisc.sim.survey_preset import POPULATION_MODEL_NAMES
from rail.deepdisc.sim.surveys import SurveyChoice, get_survey
from rail.deepdisc.spectra import nebular, sed_distortion
from rail.deepdisc.spectra.bands import FilterMap, validate_bands
from rail.deepdisc.spectra.interpolate import row_interp
from rail.deepdisc.spectra.library import OPTICAL_WINDOW, UV_WINDOW, SEDLibrary
from rail.deepdisc.spectra.named_libraries import get_library
from rail.deepdisc.spectra.photometer import Photometer
from rail.deepdisc.spectra.templates import cosmos_library

log = logging.getLogger(__name__)

# --- luminosity-function nodes: z, M*, log10 phi* [Mpc^-3 mag^-1], alpha ---------------
_SF_LF_NODES = np.array([
    [0.05, -18.05, -2.39, -1.22],
    [0.5, -18.90, -2.45, -1.28],
    [1.0, -19.60, -2.55, -1.35],
    [2.0, -20.10, -2.55, -1.40],
    [3.0, -20.90, -2.77, -1.65],
    [4.0, -20.93, -2.77, -1.63],
    [5.0, -21.10, -3.10, -1.74],
    [6.0, -20.93, -3.29, -1.93],
    [7.0, -21.15, -3.72, -2.06],
    [8.0, -20.93, -4.05, -2.23],
    [9.0, -21.00, -4.50, -2.30],
    [10.0, -21.00, -4.90, -2.35],
    [12.0, -21.00, -5.40, -2.40],
    [16.0, -21.00, -6.60, -2.40],
])
_Q_LF_NODES = np.array([
    [0.05, -21.70, -2.60, -0.50],
    [1.0, -22.30, -2.90, -0.50],
    [2.0, -22.60, -3.60, -0.50],
    [3.0, -22.60, -4.40, -0.50],
    [4.0, -22.60, -5.20, -0.50],
    [5.0, -22.60, -6.20, -0.50],
    [6.0, -22.60, -9.00, -0.50],
    [16.0, -22.60, -12.0, -0.50],
])
#: faintest absolute magnitudes drawn (fainter Schechter extrapolations are meaningless)
_M_FAINT = {"sf": -12.0, "q": -14.0}
_M_BRIGHT = -26.0
_M_STEP = 0.02


@dataclass(frozen=True)
class _LuminosityFunction:
    """One population of a model: its Schechter nodes and what its magnitudes mean.

    ``optical``: the nodes are in rest-frame 5500 A (V) absolute magnitude, else 1500 A;
    ``quiescent``: the population's galaxies are quiescent (SEDs, lines, sizes);
    ``prior``: the style of its SED-entry prior (:func:`rail.deepdisc.sim.sed_choice.
    entry_prior`).
    """

    key: str
    nodes: np.ndarray
    quiescent: bool
    optical: bool
    m_faint: float
    prior: str = "deep"


#: the population models: their luminosity functions, in the order they are drawn
POPULATION_MODELS: dict[str, tuple[_LuminosityFunction, ...]] = {
    "deep": (_LuminosityFunction("sf", _SF_LF_NODES, False, False, _M_FAINT["sf"]),
             _LuminosityFunction("q", _Q_LF_NODES, True, True, _M_FAINT["q"])),
    "lowz": (_LuminosityFunction("blue", lowz.BLUE_LF_NODES, False, True, lowz.M_FAINT_BLUE,
                                 "lowz"),
             _LuminosityFunction("red", lowz.RED_LF_NODES, True, True, lowz.M_FAINT_RED,
                                 "lowz")),
}

#: most galaxies one run draws (and renders): their columns are held in memory
MAX_GALAXIES = 20_000_000

#: output columns that are not per-band
BASE_COLUMNS = (
    "id", "redshift", "is_quiescent", "sed_index", "sed_name", "ebv", "abs_mag",
    "log_mass", "Re_maj", "Re_maj_kpc", "sersic_n", "axis_ratio", "position_angle",
    "bulge_fraction", "Re_bulge", "bulge_axis_ratio",
)


@dataclass(frozen=True, kw_only=True)
class PopulationConfig(MorphologyOptions, StarOptions, SEDOptions, SurveyChoice):
    """Which galaxies a mock population holds: bands, a magnitude limit, a redshift range,
    the SEDs and emission lines (:class:`rail.deepdisc.sim.sed_options.SEDOptions`) and the
    morphology and star options (:mod:`rail.deepdisc.sim.morphology`,
    :mod:`rail.deepdisc.sim.stars`).

    Limits left at None are the survey preset's (:meth:`resolved` fills them in).
    """

    bands: tuple[str, ...] | None = option(
        None, "bands whose fluxes are computed (default: the survey's)", cli=False,
        stage=False)
    limit_band: str | None = option(
        None, "band of mag_limit (default: the survey's detection band)")
    mag_limit: float | None = option(
        None, "faintest AB magnitude in limit_band (default: the survey's)", gt=10, lt=40)
    zmin: float = option(0.02, "lowest redshift drawn", gt=0, lt=16)
    zmax: float | None = option(
        None, "highest redshift drawn (default: the survey's)", gt=0, le=16)
    population_model: str | None = option(
        None, "galaxy population: 'deep' (JAGUAR-like deep fields, UV luminosity functions "
        "to z~15) or 'lowz' (bright red-sequence and blue-cloud galaxies at z < 1.5, optical "
        "luminosity functions, SDSS/DESI-like spectroscopic targets); default: the survey's",
        choices=POPULATION_MODEL_NAMES)

    def resolved(self) -> PopulationConfig:
        """A copy with the survey's defaults in place of the limits left at None."""
        p = get_survey(self.survey)
        return replace(self, bands=tuple(self.bands or p.bands),
                       limit_band=self.limit_band or p.detection_band,
                       mag_limit=p.mag_limit if self.mag_limit is None else self.mag_limit,
                       zmax=p.zmax if self.zmax is None else self.zmax,
                       population_model=self.population_model or p.population_model)

    def _check(self) -> None:
        r = self.resolved()
        try:
            validate_bands(r.bands, "bands", r.filters)
        except ValueError as err:
            raise OptionError(str(err)) from None
        if r.limit_band not in r.bands:
            raise OptionError(f"limit band {r.limit_band!r} is not among bands {r.bands}")
        if not r.zmin < r.zmax:
            raise OptionError(f"need zmin < zmax, got zmin={r.zmin}, zmax={r.zmax}")
        if r.population_model == "lowz" and r.zmax > lowz.LOWZ_ZMAX:
            raise OptionError(f"population_model 'lowz' describes galaxies to z = "
                              f"{lowz.LOWZ_ZMAX:g}; got zmax = {r.zmax:g} (use 'deep')")
        SEDOptions._check(self)

    @property
    def luminosity_functions(self) -> tuple[_LuminosityFunction, ...]:
        """The populations of the (resolved) population model."""
        return POPULATION_MODELS[self.resolved().population_model]


def _interp_nodes(nodes: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.interp(z, nodes[:, 0], nodes[:, i]) for i in (1, 2, 3))


def schechter_mag(m: np.ndarray, mstar: np.ndarray, log_phistar: np.ndarray,
                  alpha: np.ndarray) -> np.ndarray:
    """Schechter function in absolute magnitudes, per Mpc^3 per mag."""
    x = 10.0 ** (-0.4 * (m - mstar))
    return 0.4 * np.log(10.0) * 10.0**log_phistar * x ** (alpha + 1.0) * np.exp(-x)


class _Cosmology:
    """Distance modulus, dV/dz and angular scale on a fine z grid (Planck 2018)."""

    def __init__(self, zmax: float):
        from astropy.cosmology import Planck18

        self.z = np.linspace(1.0e-3, zmax + 0.05, 4000)
        self.distmod = Planck18.distmod(self.z).value
        self.dvdz = Planck18.differential_comoving_volume(self.z).value  # Mpc^3 / sr
        self.kpc_per_arcsec = Planck18.kpc_proper_per_arcmin(self.z).value / 60.0

    def __call__(self, what: str, z: np.ndarray) -> np.ndarray:
        return np.interp(z, self.z, getattr(self, what))


@dataclass
class _Sampler:
    """What the draw of one population needs, computed once."""

    config: PopulationConfig
    lib: SEDLibrary
    cosmo: _Cosmology
    model: tuple[_LuminosityFunction, ...]
    lines: LineDraw
    limit_phot: Photometer
    zcoarse: np.ndarray
    kcoarse: np.ndarray  # (n_entries, n_zcoarse) UV colour term in the limit band
    mgrid: np.ndarray = field(default_factory=lambda: np.arange(_M_BRIGHT, -8.0 + 1e-9,
                                                                 _M_STEP))
    cum_tables: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def make(cls, config: PopulationConfig, lib: SEDLibrary) -> _Sampler:
        limit_phot = Photometer(lib, [config.limit_band], filters=config.filters)
        zcoarse = np.arange(config.zmin, config.zmax + 0.05, 0.05)
        ne = len(lib)
        # colour term of every entry in the limit band on a coarse z grid
        ee, zz = np.meshgrid(np.arange(ne), zcoarse, indexing="ij")
        kcoarse = limit_phot.colour_terms(ee.ravel(), zz.ravel(), UV_WINDOW)[:, 0]
        return cls(config, lib, _Cosmology(config.zmax), config.luminosity_functions,
                   LineDraw(lib, config.lines_on(), config.line_ew_scale), limit_phot,
                   zcoarse, kcoarse.reshape(ne, -1))

    def continuum(self, entry: np.ndarray, kc_uv: np.ndarray) -> np.ndarray:
        """Continuum maggies in the limit band from UV colour terms (4 pi d_L^2 = 1)."""
        return self.lib.luminosity_nu(UV_WINDOW)[entry] * 10.0 ** (-0.4 * (kc_uv - 48.6))


def sample_population(n: int, config: PopulationConfig, seed: int,
                      library: SEDLibrary | None = None) -> dict[str, np.ndarray]:
    """Draw ``n`` galaxies brighter than the magnitude limit.

    Parameters
    ----------
    n
        Number of galaxies.
    config
        Bands and limits (None: the survey's), SED library and emission lines.
    seed
        Seed of the random generator; the same seed gives the same catalog.
    library
        SED library (default: the one ``config.sed_library`` names).

    Returns
    -------
    dict
        Column name -> array (see ``BASE_COLUMNS``; plus ``<band>_fnu`` in nJy and
        ``mag_<band>``; with emission lines ``ew_oiii_hb`` and ``oh_abundance``, see
        :mod:`rail.deepdisc.spectra.nebular`). Attribute-like scalars are under ``"_meta"``.
    """
    if int(n) != n or not 0 < n <= MAX_GALAXIES:
        raise OptionError(f"n_samples must be a positive integer up to {MAX_GALAXIES:,}, "
                          f"got {n}")
    n = int(n)
    config.validate()
    config = config.resolved()
    rng = np.random.default_rng(seed)
    lib = get_library(config.library) if library is None else library
    smp = _Sampler.make(config, lib)
    dz = 0.01
    zgrid = np.arange(config.zmin + dz / 2, config.zmax, dz)
    rates = _rates(smp, zgrid, dz)  # (n_pop, nz, n_entries, n_strata) per steradian
    total = rates.sum()
    if not total > 0:
        raise OptionError(f"no galaxies brighter than {config.mag_limit} in {config.limit_band}")
    cols: dict[str, list[np.ndarray]] = {}
    have = drawn = 0
    pflat = (rates / total).ravel()
    while have < n:
        need = int((n - have) * 1.05) + 16
        cell = rng.choice(pflat.size, size=need, p=pflat)
        ipop, iz, ient, istr = np.unravel_index(cell, rates.shape)
        z = zgrid[iz] + rng.uniform(-dz / 2, dz / 2, need)
        z = np.clip(z, config.zmin, config.zmax)
        batch = _draw_galaxies(rng, smp, ipop, iz, ient, istr, z)
        ok = batch[f"mag_{config.limit_band}"] <= config.mag_limit
        for k, v in batch.items():
            cols.setdefault(k, []).append(v[ok])
        have += int(ok.sum())
        drawn += need
    if smp.lines.on:  # the rates are an envelope: count only the galaxies kept
        total *= have / drawn
    arcmin2_per_sr = (180.0 * 60.0 / np.pi) ** 2
    log.info("population: %.1f galaxies/arcmin^2 brighter than %s=%.2f at %.2f<z<%.2f",
             total / arcmin2_per_sr, config.limit_band, config.mag_limit, config.zmin,
             config.zmax)
    out = {k: np.concatenate(v)[:n] for k, v in cols.items()}
    out["id"] = np.arange(1, n + 1, dtype=np.int64)  # 0 means background in segmaps
    _distort_seds(out, config, seed)
    add_components(out, config, seed, lib, config.bands, config.limit_band,
                   get_survey(config.survey).pixel_scale, config.filters)
    add_stars(out, config, seed, config.bands, config.limit_band, config.mag_limit,
              config.filters)
    ordered = {k: out[k] for k in BASE_COLUMNS}
    for b in config.bands:
        ordered[f"{b}_fnu"] = out[f"{b}_fnu"]
    for b in config.bands:
        ordered[f"mag_{b}"] = out[f"mag_{b}"]
    if config.population_model == "lowz":
        out["spec_target"] = _spec_targets(out, lib)
    ordered.update({k: v for k, v in out.items() if k not in ordered})  # realism columns
    ordered["_meta"] = {"surface_density_arcmin2": float(total / arcmin2_per_sr),
                        "sed_library": lib.name}
    return ordered


def _spec_targets(cat: dict[str, np.ndarray], lib: SEDLibrary) -> np.ndarray:
    """SDSS/DESI-like target bits (:func:`rail.deepdisc.sim.lowz.spectroscopic_targets`) of
    the galaxies of a catalog; stars (``sed_index`` -1) are no targets."""
    n = cat["redshift"].size
    galaxy = np.asarray(cat["sed_index"]) >= 0
    rows = {k: np.asarray(v)[galaxy] for k, v in cat.items() if np.shape(v) == (n,)}
    bits = np.zeros(n, np.int16)
    if galaxy.any():
        sdss = catalog_magnitudes(rows, lowz.SELECTION_BANDS, lib)
        bits[galaxy] = lowz.spectroscopic_targets(*sdss.T)
    return bits


def _distort_seds(cat: dict[str, np.ndarray], config: PopulationConfig, seed: int) -> None:
    """Apply ``sed_distortion`` (:mod:`rail.deepdisc.spectra.sed_distortion`) to the
    magnitudes and fluxes, adding the knot columns."""
    rms = config.setting("sed_distortion")
    if not rms:
        return
    cat.update(sed_distortion.draw_knots(cat["redshift"].size, rms, cat["redshift"],
                                         config.limit_band, seed, config.filters))
    offsets = sed_distortion.magnitude_offsets(cat, config.bands, config.filters)
    for j, band in enumerate(config.bands):
        cat[f"mag_{band}"] = cat[f"mag_{band}"] + offsets[:, j]
        cat[f"{band}_fnu"] = mag_to_flux(cat[f"mag_{band}"])


def _rates(smp: _Sampler, zgrid: np.ndarray, dz: float) -> np.ndarray:
    """Galaxies per steradian in each (population, z, entry, EW stratum) cell.

    A cell's count is the luminosity function integrated to the limit relaxed by the
    largest brightening that lines of its EW stratum can give; the exact magnitudes
    with lines then select (:mod:`rail.deepdisc.sim.sed_choice`).
    """
    lib, cosmo = smp.lib, smp.cosmo
    ne = len(lib)
    kfine_uv = np.array([np.interp(zgrid, smp.zcoarse, smp.kcoarse[e]) for e in range(ne)]).T
    dm = cosmo("distmod", zgrid)
    blocks = []
    for pop in smp.model:
        quiescent = pop.quiescent
        mstar, lphi, alpha = _interp_nodes(pop.nodes, zgrid)
        phi = schechter_mag(smp.mgrid[None, :], mstar[:, None], lphi[:, None], alpha[:, None])
        phi[:, smp.mgrid > pop.m_faint] = 0.0
        cum = np.concatenate([np.zeros((zgrid.size, 1)),
                              np.cumsum(0.5 * (phi[:, 1:] + phi[:, :-1]) * _M_STEP, axis=1)],
                             axis=1)
        smp.cum_tables[pop.key] = cum
        kc = smp.kcoarse + _window_offset(lib)[:, None] if pop.optical else smp.kcoarse
        kfine = np.array([np.interp(zgrid, smp.zcoarse, kc[e]) for e in range(ne)]).T
        mlim = smp.config.mag_limit - dm[:, None] - kfine  # (nz, ne)
        delta = _grid_brightening(smp, zgrid, kfine_uv, quiescent)  # (nz, ne, n_strata)
        ncum = row_interp((mlim[..., None] + delta).reshape(zgrid.size, -1), smp.mgrid,
                           cum).reshape(delta.shape)
        probs = smp.lines.stratum_probabilities(quiescent)
        prior = entry_prior(lib, zgrid, quiescent, pop.prior)[..., None] * probs
        blocks.append(prior * ncum * cosmo("dvdz", zgrid)[:, None, None] * dz)
    return np.stack(blocks)


def _grid_brightening(smp: _Sampler, zgrid: np.ndarray, kfine_uv: np.ndarray,
                      quiescent: bool, chunk: int = 20000) -> np.ndarray:
    """Largest brightening by lines per (z, entry, stratum) on the z grid (mag)."""
    nz, ne = kfine_uv.shape
    out = np.zeros((nz * ne, smp.lines.n_strata))
    if not smp.lines.on:
        return out.reshape(nz, ne, -1)
    zz = np.repeat(zgrid, ne)
    ee = np.tile(np.arange(ne), nz)
    cont = smp.continuum(ee, kfine_uv.ravel())
    for start in range(0, zz.size, chunk):
        sl = slice(start, start + chunk)
        out[sl] = smp.lines.brightening(smp.limit_phot, zz[sl], ee[sl], cont[sl], quiescent)
    return out.reshape(nz, ne, -1)


def model_magnitudes(sed_index: np.ndarray, z: np.ndarray, abs_mag: np.ndarray,
                     is_quiescent: np.ndarray, bands, library: SEDLibrary | None = None,
                     distmod: np.ndarray | None = None, ew_oiii_hb: np.ndarray | None = None,
                     oh_abundance: np.ndarray | None = None,
                     filters: FilterMap | None = None) -> np.ndarray:
    """Noiseless apparent AB magnitudes of catalog galaxies in any known bands.

    ``abs_mag`` is the normalising absolute magnitude (rest 1500 A for star-forming, 5500 A
    for quiescent galaxies, of the continuum), as the population stores it; so fluxes in
    bands the scenes were not rendered in (e.g. HST for a JWST field) follow from the
    catalog columns. ``ew_oiii_hb`` and ``oh_abundance`` (catalog columns when the
    population has emission lines) add the lines; None: the continuum alone. ``library``
    must be the catalog's (its ``_meta["sed_library"]``; default COSMOS). ``filters``: the
    survey's bands that are not built in (:mod:`rail.deepdisc.spectra.bands`).

    Returns
    -------
    numpy.ndarray
        Shape (n_galaxies, n_bands).
    """
    lib = cosmos_library() if library is None else library
    entry = np.asarray(sed_index, dtype=np.int64)
    z = np.asarray(z, float)
    if distmod is None:
        from astropy.cosmology import Planck18

        distmod = Planck18.distmod(z).value
    lines = None
    if ew_oiii_hb is not None:
        oh = nebular.oh_mean(z) if oh_abundance is None else np.asarray(oh_abundance, float)
        lines = galaxy_lines(lib, entry, z, ew_oiii_hb, oh)
    offset = np.where(np.asarray(is_quiescent, bool), _window_offset(lib)[entry], 0.0)
    phot = Photometer(lib, bands, filters=filters)
    colour = phot.colour_terms(entry, z, UV_WINDOW, lines) + offset[:, None]
    return np.asarray(abs_mag, float)[:, None] + np.asarray(distmod)[:, None] + colour


def catalog_magnitudes(catalog: Mapping[str, np.ndarray], bands: Sequence[str],
                       library: SEDLibrary | None = None, filters: FilterMap | None = None
                       ) -> np.ndarray:
    """:func:`model_magnitudes` of a population catalog (or scene-store objects).

    Reads ``sed_index``, ``redshift``, ``abs_mag``, ``is_quiescent`` and, when present,
    the emission-line columns ``ew_oiii_hb`` and ``oh_abundance`` and the SED-distortion
    knots (:mod:`rail.deepdisc.spectra.sed_distortion`). ``filters``: the survey's bands
    that are not built in.
    """
    mags = model_magnitudes(catalog["sed_index"], catalog["redshift"], catalog["abs_mag"],
                            catalog["is_quiescent"], bands, library,
                            ew_oiii_hb=catalog.get("ew_oiii_hb"),
                            oh_abundance=catalog.get("oh_abundance"), filters=filters)
    offsets = sed_distortion.magnitude_offsets(catalog, bands, filters)
    return mags if offsets is None else mags + offsets


def _window_offset(lib: SEDLibrary) -> np.ndarray:
    """M_UV - M_V of each entry (adding it turns UV colour terms into V-normalised ones)."""
    return 2.5 * np.log10(lib.luminosity_nu(OPTICAL_WINDOW) / lib.luminosity_nu(UV_WINDOW))


def _draw_galaxies(rng: np.random.Generator, smp: _Sampler, ipop: np.ndarray,
                   iz: np.ndarray, ient: np.ndarray, istr: np.ndarray, z: np.ndarray
                   ) -> dict[str, np.ndarray]:
    lib, config = smp.lib, smp.config
    n = z.size
    quiescent = np.array([p.quiescent for p in smp.model])[ipop]
    optical = np.array([p.optical for p in smp.model])[ipop]
    # magnitude limit at the exact redshift, per galaxy
    kc_uv = np.empty(n)
    for e in np.unique(ient):
        sel = ient == e
        kc_uv[sel] = np.interp(z[sel], smp.zcoarse, smp.kcoarse[e])
    kc = np.where(optical, kc_uv + _window_offset(lib)[ient], kc_uv)
    dm = smp.cosmo("distmod", z)
    mlim = config.mag_limit - dm - kc
    if smp.lines.on:  # relaxed by the most the lines of the galaxy's EW stratum can add
        cont = smp.continuum(ient, kc_uv)
        for p, pop in enumerate(smp.model):
            sel = np.flatnonzero(ipop == p)
            bright = smp.lines.brightening(smp.limit_phot, z[sel], ient[sel], cont[sel],
                                           quiescent=pop.quiescent)
            mlim[sel] += bright[np.arange(sel.size), istr[sel]]
    drawn = _draw_absmag(rng, smp, ipop, iz, mlim)
    # stored: star-forming galaxies by their UV, quiescent ones by their V magnitude (what
    # model_magnitudes reads), whichever band their luminosity function is in
    to_uv = optical & ~quiescent
    absmag = np.where(to_uv, drawn + _window_offset(lib)[ient], drawn)
    out: dict[str, np.ndarray] = {
        "redshift": z,
        "is_quiescent": quiescent.astype(np.int8),
        "sed_index": ient.astype(np.int32),
        "sed_name": lib.names[ient].astype("S"),
        "ebv": lib.ebv[ient],
        "abs_mag": absmag,
    }
    line_cols = {}
    if smp.lines.on:
        ew, oh = smp.lines.draw(rng, z, ient, istr, quiescent)
        line_cols = {"ew_oiii_hb": ew, "oh_abundance": oh}
    mags = model_magnitudes(ient, z, absmag, quiescent, config.bands, lib, distmod=dm,
                            filters=config.filters, **line_cols)
    for j, b in enumerate(config.bands):
        out[f"mag_{b}"] = mags[:, j]
        out[f"{b}_fnu"] = mag_to_flux(mags[:, j])
    out.update(line_cols)
    log_mass = None
    if smp.config.population_model == "lowz":
        abs_v = np.where(to_uv, drawn, absmag)  # V-band magnitude of every galaxy
        log_mass = lowz.log_stellar_mass(abs_v, z, quiescent)
    out.update(_morphology(rng, smp.cosmo, z, absmag, quiescent, log_mass))
    return out


def _draw_absmag(rng: np.random.Generator, smp: _Sampler, ipop: np.ndarray, iz: np.ndarray,
                 mlim: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw of M from the Schechter table at each galaxy's z node, to mlim."""
    mgrid = smp.mgrid
    absmag = np.empty(ipop.size)
    for p, pop in enumerate(smp.model):
        sel = ipop == p
        if not sel.any():
            continue
        cum = smp.cum_tables[pop.key][iz[sel]]
        cmax = row_interp(mlim[sel], mgrid, cum)
        u = rng.uniform(0.0, 1.0, sel.sum()) * cmax
        j = np.clip((cum < u[:, None]).sum(axis=1), 1, mgrid.size - 1)
        c0, c1 = cum[np.arange(j.size), j - 1], cum[np.arange(j.size), j]
        frac = np.where(c1 > c0, (u - c0) / np.where(c1 > c0, c1 - c0, 1.0), 0.5)
        absmag[sel] = mgrid[j - 1] + frac * _M_STEP
    return absmag


def _morphology(rng, cosmo, z, absmag, quiescent, log_mass=None) -> dict[str, np.ndarray]:
    """Sizes, Sersic indices, shapes and bulge+disk mixes (``log_mass``: the galaxies'
    stellar masses, else a proxy from the normalising luminosity)."""
    n = z.size
    if log_mass is None:  # stellar-mass proxy from the normalising luminosity
        log_mass_sf = 9.0 - 0.5 * (absmag + 19.5) + 0.4 * np.clip((3.0 - z) / 3.0, 0.0, 1.0)
        log_ml_v = np.interp(z, [0.0, 2.0, 6.0], [np.log10(3.0), 0.0, -0.3])
        log_mass_q = -0.4 * (absmag - 4.83) + log_ml_v
        log_mass = np.where(quiescent, log_mass_q, log_mass_sf)
    m_rel = 10.0 ** (log_mass - np.log10(5.0e10))
    # van der Wel et al. (2014) at z < 3; Shibuya et al. (2015) at z >= 3
    r_late = 10.0**0.86 * (1.0 + z) ** -0.75 * m_rel**0.22
    r_early = 10.0**0.60 * (1.0 + z) ** -1.48 * m_rel**0.75
    l_rel = 10.0 ** (-0.4 * (absmag + 21.0))
    r_shibuya = 6.9 * (1.0 + z) ** -1.2 * l_rel**0.27
    r_kpc = np.where(quiescent, r_early, np.where(z < 3.0, r_late, r_shibuya))
    scatter = np.where(quiescent, 0.13, np.where(z < 3.0, 0.17, 0.22))
    r_kpc = r_kpc * 10.0 ** (scatter * rng.standard_normal(n))
    r_kpc = np.clip(r_kpc, 0.05, 30.0)
    re_arcsec = np.clip(r_kpc / cosmo("kpc_per_arcsec", z), 0.005, 4.0)

    n_sf = np.exp(rng.normal(0.0, 0.3, n))
    n_q = rng.normal(4.0, 0.8, n)
    sersic = np.where(quiescent, np.clip(n_q, 2.5, 6.0), np.clip(n_sf, 0.5, 2.5))
    sersic = np.round(sersic * 20.0) / 20.0  # quantised: GalSim caches per index
    q = np.where(quiescent, np.clip(rng.beta(5.0, 2.0, n), 0.3, 1.0),
                 np.clip(rng.beta(1.8, 1.3, n), 0.12, 1.0))
    pa = rng.uniform(0.0, 180.0, n)
    # bulges for massive star-forming galaxies at z < 2.5
    has_bulge = (~quiescent) & (log_mass > 10.0) & (z < 2.5) & (rng.uniform(size=n) < 0.6)
    bt = np.where(has_bulge, rng.uniform(0.05, 0.5, n), 0.0)
    re_bulge = np.where(has_bulge, np.clip(0.3 * re_arcsec, 0.005, None), 0.0)
    q_bulge = np.where(has_bulge, np.clip(rng.beta(5.0, 2.0, n), 0.5, 1.0), 0.0)
    return {
        "log_mass": log_mass,
        "Re_maj": re_arcsec,
        "Re_maj_kpc": r_kpc,
        "sersic_n": sersic,
        "axis_ratio": q,
        "position_angle": pa,
        "bulge_fraction": bt,
        "Re_bulge": re_bulge,
        "bulge_axis_ratio": q_bulge,
    }
