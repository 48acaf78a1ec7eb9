"""Galaxy morphologies beyond one smooth Sersic profile of one colour.

Every galaxy is a Sersic disk (plus, for massive star-forming galaxies, a de Vaucouleurs
bulge: :func:`galaxy_profile`). Three seeded options of the population add
(:class:`MorphologyOptions`; None: the ``realism`` preset's value, off by default):

* ``bulge_colours``: the bulge gets an old SED (a random quiescent entry of the SED
  library) while the disk keeps the galaxy's colours, so bulge + disk galaxies have colour
  gradients;
* ``clumpy_fraction``: star-forming galaxies get star-forming clumps, GalSim's
  ``RandomKnots`` (3-15 knots distributed like the disk) with a young SED (a random entry
  among the bluest tenth of the library's star-forming entries, by rest-frame UV - optical
  colour) carrying 5-40% of the light in the limit band; the probability is
  ``clumpy_fraction`` at z >= 2, falling as (1 + z) / 3 below (clumps are common in
  galaxies at cosmic noon, rarer today; Guo et al. 2015). Only galaxies whose half-light
  radius spans ``MIN_RESOLVED_PIXELS`` pixels get clumps (in smaller ones they could not
  show, and they would cost rendering time for nothing);
* ``asymmetric_fraction``: star-forming galaxies as resolved become
  lopsided: 10-35% of the disk light moves to an offset exponential component (0.3-0.6 of
  the disk's size, centred 0.5-1.5 disk half-light radii away in a random direction).

Fluxes per component. The galaxy's total flux in every band stays its catalog flux (its SED
entry and emission lines, so template fits of the total photometry are unchanged); a
component's share of it in band ``b`` is ``f_k r_k(b) / sum_j f_j r_j(b)``, with ``f_k`` the
component's share in the limit band and ``r_k(b)`` its flux in band ``b`` over that in the
limit band: for a bulge or clumps, of their library entry at the galaxy's redshift; for the
disk (and a bulge without its own SED), of the galaxy's catalog fluxes. So
``bulge_fraction`` and ``clump_fraction`` are shares in the limit band, and the catalog
gets ``bulge_frac_<band>``/``clump_frac_<band>`` per band.

Catalog columns (only those of the options that are on): ``bulge_sed_index``,
``bulge_frac_<band>``; ``clump_fraction``, ``n_clumps``, ``clump_seed``, ``clump_sed_index``,
``clump_frac_<band>``; ``asym_fraction`` (share of the disk light), ``asym_dx``, ``asym_dy``
(arcsec), ``asym_size`` (half-light radius over the disk's). The draws use the generator
``numpy.random.default_rng([seed, 101])``, one value per catalog row, so switching an option
on changes no other column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rail.deepdisc.options import option
from rail.deepdisc.sim.randomise import RealismChoice
from rail.deepdisc.spectra.bands import FilterMap

if TYPE_CHECKING:
    import galsim

    from rail.deepdisc.spectra.library import SEDLibrary

#: clumps and offset components only for half-light radii (major axis) of this many pixels
MIN_RESOLVED_PIXELS = 2.0
#: clump SEDs are drawn from this bluest fraction of the star-forming library entries
CLUMP_SED_QUANTILE = 0.1
#: scalar morphology columns copied into a scene store's /objects
STORE_COLUMNS = ("clump_fraction", "n_clumps", "asym_fraction")


@dataclass(frozen=True, kw_only=True)
class MorphologyOptions(RealismChoice):
    """Clumps, bulge colours and lopsided galaxies (None: the ``realism`` preset's value)."""

    clumpy_fraction: float | None = option(
        None, "fraction of star-forming galaxies at z >= 2 with star-forming clumps (GalSim "
        "RandomKnots, young SED; fewer at lower z)", ge=0, le=1)
    bulge_colours: bool | None = option(
        None, "give bulges an old elliptical SED, disks the galaxy's (colour gradients)")
    asymmetric_fraction: float | None = option(
        None, "fraction of resolved star-forming galaxies made lopsided by an offset "
        "component", ge=0, le=1)


def catalog_columns(bands: Sequence[str]) -> tuple[str, ...]:
    """Every catalog column the renderer reads for these options (present or not)."""
    per_band = tuple(f"{p}_frac_{b}" for p in ("bulge", "clump") for b in bands)
    return ("clump_fraction", "n_clumps", "clump_seed", "asym_fraction", "asym_dx",
            "asym_dy", "asym_size", *per_band)


# --- drawing (population) ---------------------------------------------------------------
def add_components(cat: dict[str, np.ndarray], config: MorphologyOptions, seed: int,
                   library: SEDLibrary, bands: Sequence[str], limit_band: str,
                   pixel_scale: float, filters: FilterMap | None = None) -> None:
    """Add the morphology columns of the options that are on to a population (in place).

    Parameters
    ----------
    cat
        The population's columns (``redshift``, ``is_quiescent``, ``sed_index``, ``Re_maj``,
        ``bulge_fraction`` ...).
    config
        The options.
    seed
        The population's seed.
    library
        Its SED library.
    bands, limit_band
        Bands of the catalog and the band the shares refer to.
    pixel_scale
        Arcsec per pixel (galaxies smaller than ``MIN_RESOLVED_PIXELS`` get no clumps or
        lopsidedness).
    filters
        The survey's bands that are not built in (:mod:`rail.deepdisc.spectra.bands`).
    """
    clumpy = config.setting("clumpy_fraction")
    colours = config.setting("bulge_colours")
    asym = config.setting("asymmetric_fraction")
    if not (clumpy or colours or asym):
        return
    rng = np.random.default_rng([seed, 101])
    n = cat["redshift"].size
    u = rng.uniform(size=(10, n))  # one row per quantity, the same whatever is on
    knot_seeds = rng.integers(1, 2**31 - 1, n)
    sf = cat["is_quiescent"] == 0
    resolved = sf & (cat["Re_maj"] >= MIN_RESOLVED_PIXELS * pixel_scale)
    bt = np.asarray(cat["bulge_fraction"], float)
    old, young = _sed_choices(library)
    shares = {"bulge": bt}
    entries = {}
    if colours:
        entries["bulge"] = np.where(bt > 0, _pick(old, u[0]), -1)
        cat["bulge_sed_index"] = entries["bulge"].astype(np.int32)
    if clumpy:
        p = clumpy * np.clip((1.0 + cat["redshift"]) / 3.0, 1.0 / 3.0, 1.0)
        has = resolved & (u[1] < p)
        shares["clump"] = np.where(has, (1.0 - bt) * (0.05 + 0.35 * u[2]), 0.0)
        entries["clump"] = np.where(has, _pick(young, u[3]), -1)
        cat["clump_fraction"] = shares["clump"]
        cat["n_clumps"] = np.where(has, 3 + (13 * u[4]).astype(np.int16), 0).astype(np.int16)
        cat["clump_seed"] = np.where(has, knot_seeds, 0).astype(np.int64)
        cat["clump_sed_index"] = entries["clump"].astype(np.int32)
    if colours or clumpy:
        fnu = np.column_stack([cat[f"{b}_fnu"] for b in bands])
        fractions = _band_shares(library, cat["redshift"], fnu, entries, shares, bands,
                                 limit_band, filters)
        for name, share in fractions.items():
            for j, band in enumerate(bands):
                cat[f"{name}_frac_{band}"] = share[:, j]
    if asym:
        _add_asymmetry(cat, resolved & (u[5] < asym), u[6:10])


def _sed_choices(library: SEDLibrary) -> tuple[np.ndarray, np.ndarray]:
    """Library entries for bulges (the quiescent ones, else the reddest tenth) and clumps
    (the bluest tenth of the star-forming ones), by rest-frame UV - optical colour."""
    from rail.deepdisc.spectra.library import OPTICAL_WINDOW, UV_WINDOW

    blueness = library.luminosity_nu(UV_WINDOW) / library.luminosity_nu(OPTICAL_WINDOW)
    sf = np.flatnonzero(~library.quiescent)
    young = sf[blueness[sf] >= np.quantile(blueness[sf], 1.0 - CLUMP_SED_QUANTILE)]
    old = np.flatnonzero(library.quiescent)
    if old.size == 0:
        old = np.flatnonzero(blueness <= np.quantile(blueness, CLUMP_SED_QUANTILE))
    return old, young


def _pick(choices: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``choices[floor(u * len)]`` per row (a uniform pick from a uniform draw)."""
    return choices[np.minimum((u * choices.size).astype(np.int64), choices.size - 1)]


def _band_shares(library: SEDLibrary, z: np.ndarray, fnu: np.ndarray,
                 entries: dict[str, np.ndarray], shares: dict[str, np.ndarray],
                 bands: Sequence[str], limit_band: str, filters: FilterMap | None = None
                 ) -> dict[str, np.ndarray]:
    """Each component's share of the galaxy's flux in every band (see the module doc).

    ``shares`` are the components' shares in the limit band (the disk has the rest). The
    disk has the galaxy's colours (its catalog fluxes ``fnu``, emission lines included); a
    component with an entry (>= 0) in ``entries`` has that library entry's colours, else
    the disk's. Returns (n, n_bands) shares of the components of ``shares``.
    """
    from rail.deepdisc.spectra.photometer import Photometer

    phot = Photometer(library, list(dict.fromkeys([*bands, limit_band])), filters=filters)
    ref = phot.bands.index(limit_band)
    idx = [phot.bands.index(b) for b in bands]
    n = z.size
    f_ref = fnu[:, [list(bands).index(limit_band)]]
    with np.errstate(invalid="ignore", divide="ignore"):
        colour_disk = np.where(f_ref > 0, fnu / f_ref, 0.0)
    weights = {"disk": (1.0 - sum(shares.values()))[:, None] * colour_disk}
    for name, share in shares.items():
        entry = entries.get(name, np.full(n, -1))
        own = entry >= 0
        colour = np.where(own[:, None], _colours(phot, entry, z, ref, idx, own), colour_disk)
        weights[name] = share[:, None] * colour
    total = sum(weights.values())
    out = {}
    for name, share in shares.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = np.where(total > 0, weights[name] / total, share[:, None])
    return out


def _colours(phot, entry: np.ndarray, z: np.ndarray, ref: int, idx: list[int],
             rows: np.ndarray) -> np.ndarray:
    """Flux in each band over the flux in the reference band (0 where that is 0)."""
    out = np.zeros((z.size, len(idx)))
    sel = np.flatnonzero(rows)
    if sel.size:
        m = phot.maggies(entry[sel], z[sel])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[sel] = np.where(m[:, [ref]] > 0, m[:, idx] / m[:, [ref]], 0.0)
    return out


def _add_asymmetry(cat: dict[str, np.ndarray], has: np.ndarray, u: np.ndarray) -> None:
    """Lopsided galaxies: an offset exponential carrying part of the disk light (``u``: four
    rows of uniform draws)."""
    frac, size, radius, angle = u
    hlr = cat["Re_maj"] * np.sqrt(np.clip(cat["axis_ratio"], 0.05, 1.0))
    r = (0.5 + radius) * hlr
    cat["asym_fraction"] = np.where(has, 0.10 + 0.25 * frac, 0.0)
    cat["asym_size"] = np.where(has, 0.3 + 0.3 * size, 0.0)
    cat["asym_dx"] = np.where(has, r * np.cos(2 * np.pi * angle), 0.0)
    cat["asym_dy"] = np.where(has, r * np.sin(2 * np.pi * angle), 0.0)


# --- profiles (rendering) ---------------------------------------------------------------
def galaxy_profile(re_maj: float, sersic_n: float, q: float, pa_deg: float,
                   bulge_fraction: float = 0.0, re_bulge: float = 0.0,
                   q_bulge: float = 1.0) -> galsim.GSObject:
    """Unit-flux GalSim profile: Sersic disk (+ de Vaucouleurs bulge).

    Half-light radii are along the major axis (arcsec); profiles are truncated at 8
    half-light radii and renormalised, so the drawn flux is the catalog flux.
    """
    import galsim

    beta = float(pa_deg) * galsim.degrees
    q = float(np.clip(q, 0.05, 1.0))
    hlr = max(float(re_maj) * np.sqrt(q), 1.0e-4)
    n = float(np.clip(sersic_n, 0.3, 6.2))
    disk = galsim.Sersic(n=n, half_light_radius=hlr, trunc=8.0 * hlr, flux_untruncated=True)
    disk = disk.withFlux(1.0).shear(q=q, beta=beta)
    if bulge_fraction > 0 and re_bulge > 0:
        qb = float(np.clip(q_bulge, 0.05, 1.0))
        hlr_b = max(float(re_bulge) * np.sqrt(qb), 1.0e-4)
        bulge = galsim.DeVaucouleurs(half_light_radius=hlr_b, trunc=8.0 * hlr_b,
                                     flux_untruncated=True)
        bulge = bulge.withFlux(1.0).shear(q=qb, beta=beta)
        return galsim.Add([disk * (1.0 - bulge_fraction), bulge * bulge_fraction])
    return disk


def band_profiles(cat: Mapping[str, np.ndarray], j: int, bands: Sequence[str]
                  ) -> list[galsim.GSObject] | None:
    """Unit-flux profiles of catalog row ``j`` in every band, or None for a plain galaxy.

    None (the caller draws :func:`galaxy_profile`) unless the row has per-band component
    shares, clumps or an offset component.
    """
    clumps = int(_value(cat, "n_clumps", j, 0))
    asym = float(_value(cat, "asym_fraction", j, 0.0))
    chromatic = f"bulge_frac_{bands[0]}" in cat or f"clump_frac_{bands[0]}" in cat
    if not (clumps or asym or (chromatic and _value(cat, "bulge_fraction", j, 0.0) > 0)):
        return None
    comps = _components(cat, j, clumps, asym)
    shares = _shares(cat, j, bands, asym)
    return [_combine(comps, shares[:, b]) for b in range(len(bands))]


def _value(cat: Mapping[str, np.ndarray], column: str, j: int, default: Any) -> Any:
    return cat[column][j] if column in cat else default


def _components(cat: Mapping[str, np.ndarray], j: int, clumps: int, asym: float
                ) -> list[galsim.GSObject | None]:
    """Unit-flux disk, bulge, clumps and offset component (None where absent)."""
    import galsim

    re, q = float(cat["Re_maj"][j]), float(np.clip(cat["axis_ratio"][j], 0.05, 1.0))
    pa = float(cat["position_angle"][j])
    disk = galaxy_profile(re, cat["sersic_n"][j], q, pa)
    bulge = None
    if _value(cat, "bulge_fraction", j, 0.0) > 0 and _value(cat, "Re_bulge", j, 0.0) > 0:
        bulge = galaxy_profile(cat["Re_bulge"][j], 4.0, cat["bulge_axis_ratio"][j], pa)
    hlr = max(re * np.sqrt(q), 1.0e-4)
    knots = offset = None
    if clumps:
        knots = galsim.RandomKnots(clumps, half_light_radius=hlr, flux=1.0,
                                   rng=galsim.BaseDeviate(int(cat["clump_seed"][j])))
        knots = knots.shear(q=q, beta=pa * galsim.degrees)
    if asym > 0:
        offset = galsim.Exponential(half_light_radius=hlr * float(cat["asym_size"][j]))
        offset = offset.shift(float(cat["asym_dx"][j]), float(cat["asym_dy"][j]))
    return [disk, bulge, knots, offset]


def _shares(cat: Mapping[str, np.ndarray], j: int, bands: Sequence[str], asym: float
            ) -> np.ndarray:
    """(4, n_bands) shares of disk, bulge, clumps and offset component in each band."""
    nb = len(bands)
    bulge = np.array([_value(cat, f"bulge_frac_{b}", j, _value(cat, "bulge_fraction", j, 0.0))
                      for b in bands], float)
    clump = np.array([_value(cat, f"clump_frac_{b}", j, 0.0) for b in bands], float)
    rest = np.clip(1.0 - bulge - clump, 0.0, 1.0)
    return np.array([rest * (1.0 - asym), bulge, clump, rest * asym]).reshape(4, nb)


def _combine(comps: list[galsim.GSObject | None], shares: np.ndarray) -> galsim.GSObject:
    import galsim

    parts = [c * float(s) for c, s in zip(comps, shares, strict=True)
             if c is not None and s > 0]
    return parts[0] if len(parts) == 1 else galsim.Add(parts)
