"""Write a JADES-like survey field with the second renderer, in ``fits-field``'s layout.

Outputs (``out_dir``): per band ``<band>.fits`` (empty primary, ``SCI`` and ``ERR`` in
MJy/sr, TAN-SIP WCS, a blank NaN border), ``psf_<band>.fits`` (the model PSF, 4x
oversampled, ``PIXELSCL``/``OVERSAMP``), ``segmap.fits`` (catalog ids), ``catalog.fits``
(``id``, ``ra``, ``dec``, ``redshift`` all NaN, ``size``: half-light radius in arcsec;
plus a few objects off the mosaic), ``spectra.fits`` (``spec_id``, ``ra``, ``dec``,
``z_spec``, a :class:`~rail.deepdisc.sim.labels.SpecSelection`), ``field_inputs.yml``
(for ``rail-deepdisc field --inputs``) and ``truth_catalog.fits`` (``id``, ``ra``,
``dec``, ``redshift``, ``mag_<band>``, ``snr_<band>``).

Truth follows the main simulator's definitions: a pixel belongs to the object whose
noiseless light, in units of the chi-mean detection image's noise
(``sum_b (m_b / sigma_b) / sqrt(C)``), is largest there, if above ``segmap_threshold``; the
catalog lists the objects centred on the mosaic owning at least ``min_footprint_pixels``
pixels (galaxies centred in a margin around it shine in but are not listed);
``snr_<band>`` is the object's own noiseless flux in a 0.2"-radius aperture on its centre
over the noise in that aperture, ``sigma_b(x, y) sqrt(pi r^2 c_b)``, with the local pixel
noise and the band's correlation factor.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import DETECTION_BAND, LW_BANDS, NJY_ZEROPOINT, FieldConfig
from .noise import (
    NATIVE_LW,
    NATIVE_SW,
    band_kernel,
    correlation_factor,
    exposure_variation,
)
from .outputs import (
    WHAT,
    mosaic_wcs,
    output_paths,
    write_inputs,
    write_mosaics,
    write_psfs,
    write_tables,
)
from .population import Population, PopulationModel, clump_seds, draw_population
from .profiles import BandKernel, Clumps, Galaxy, render_stamp
from .psf import DoubleMoffat, band_psfs
from .seds import BandIntegrator

log = logging.getLogger(__name__)


@dataclass
class WrittenField:
    """Paths and figures of a written field."""

    inputs: str
    truth: str
    n_rendered: int
    n_objects: int
    n_spec: int
    seconds: float
    z_quantiles: dict[str, float]


def write_field(out_dir: str | os.PathLike, cfg: FieldConfig | None = None,
                progress: bool = False) -> WrittenField:
    """Render the field and write its files (see the module docstring)."""
    from rail.deepdisc.errors import OptionError
    from rail.deepdisc.store.atomic import check_output_path

    cfg = cfg or FieldConfig()
    t0 = time.perf_counter()
    out = Path(out_dir)
    paths = output_paths(out, cfg.bands)
    for key, path in paths.items():
        check_output_path(path, WHAT[key.split("_")[0]])
    bands, scale = cfg.bands, cfg.pixel_scale
    ny = nx = cfg.mosaic_size
    rng = np.random.default_rng([cfg.seed, 0])
    integrator = BandIntegrator(bands)
    psfs = band_psfs(_pivots(bands), cfg.seed)
    kernels = [_band_kernel(psfs[b], scale) for b in bands]
    model = PopulationModel(surface_density=cfg.surface_density, sed_family=cfg.sed_family)
    pop = draw_population(rng, int(rng.poisson(cfg.surface_density * cfg.area_arcmin2)),
                          nx, ny, cfg.margin, model)
    flux, smooth, clumps = _band_fluxes(pop, integrator, bands)
    corr = {b: band_kernel(NATIVE_LW if b in LW_BANDS else NATIVE_SW, scale) for b in bands}
    radius_px = cfg.snr_aperture_arcsec / scale
    cfac = np.array([correlation_factor(corr[b], radius_px) for b in bands])
    f5 = 10.0 ** (-0.4 * (np.array([cfg.depths[b] for b in bands]) - NJY_ZEROPOINT))
    sigma0 = f5 / 5.0 / np.sqrt(np.pi * radius_px**2 * cfac)
    variation = exposure_variation(ny, nx)
    log.info("rendering %d galaxies on a %d x %d mosaic", len(pop), nx, ny)
    image, best, owner, ap_flux = _render(pop, smooth, clumps, kernels, cfg, sigma0)
    ids = np.arange(1, len(pop) + 1, dtype=np.int64)
    listed = _segment(best, owner, pop, cfg)
    if listed.size == 0:
        raise OptionError(f"no galaxy of the {len(pop)} rendered owns a footprint on the "
                          f"{nx} x {ny} mosaic: raise --mosaic-size or --surface-density "
                          "(nothing written)")
    segmap = np.where(owner >= 0, ids[np.maximum(owner, 0)], 0).astype(np.int32)
    del best, owner
    px = np.clip(np.floor(pop.x + 0.5).astype(int), 0, nx - 1)
    py = np.clip(np.floor(pop.y + 0.5).astype(int), 0, ny - 1)
    sigma_local = sigma0[None, :] * variation[py, px][:, None]
    snr = ap_flux / (sigma_local * np.sqrt(np.pi * radius_px**2 * cfac)[None, :])
    wcs = mosaic_wcs(cfg)
    write_mosaics(paths, image, sigma0, variation, corr, wcs, cfg)
    del image
    truth = write_tables(paths, pop, ids, listed, flux, snr, segmap, wcs, cfg, rng)
    write_psfs(paths, psfs, cfg)
    write_inputs(paths, cfg)
    z = truth["redshift"]
    seconds = time.perf_counter() - t0
    q = {f"p{p}": float(np.percentile(z, p)) for p in (5, 16, 50, 84, 95)}
    return WrittenField(inputs=str(paths["inputs"]), truth=str(paths["truth"]),
                        n_rendered=len(pop), n_objects=int(listed.size),
                        n_spec=truth.meta["n_spec"], seconds=seconds, z_quantiles=q)


def _pivots(bands: list[str]) -> dict[str, float]:
    from sedpy.observate import load_filters

    return {b: float(f.wave_pivot) for b, f in zip(bands, load_filters(bands), strict=True)}


def _band_kernel(psf: DoubleMoffat, scale: float) -> BandKernel:
    """The PSF point-sampled on a grid fine enough for the band: 1, 2 or 4 samples per
    pixel, at least 2.3 per core FWHM."""
    need = 2.3 * scale / psf.fwhm
    sub = 1 if need <= 1 else 2 if need <= 2 else 4
    radius = int(np.ceil(psf.radius / scale))
    return BandKernel(psf.image(scale / sub, half=radius * sub), sub, radius)


def galaxy_fluxes(pop: Population, integrator: BandIntegrator, bands: list[str]
                  ) -> np.ndarray:
    """Total fluxes (nJy) per galaxy and band: the SED's band fluxes scaled to the galaxy's
    detection-band magnitude."""
    det = bands.index(DETECTION_BAND)
    shape = integrator.fluxes(pop.sed)
    return shape / shape[:, det:det + 1] * 10.0 ** (
        -0.4 * (pop.mag_det - NJY_ZEROPOINT))[:, None]


def _band_fluxes(pop: Population, integrator: BandIntegrator, bands: list[str]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Total, smooth-part and clump fluxes (nJy) per galaxy and band."""
    det = bands.index(DETECTION_BAND)
    total = galaxy_fluxes(pop, integrator, bands)
    clumps = np.zeros_like(total)
    rows = np.flatnonzero(pop.clump_fraction > 0)
    if rows.size:
        cshape = integrator.fluxes(clump_seds(pop, rows))
        cl = cshape / cshape[:, det:det + 1] * (pop.clump_fraction[rows]
                                                * total[rows, det])[:, None]
        clumps[rows] = np.minimum(cl, 0.7 * total[rows])
    return total, total - clumps, clumps


def _render(pop: Population, smooth: np.ndarray, clumps: np.ndarray,
            kernels: list[BandKernel], cfg: FieldConfig, sigma0: np.ndarray):
    """Noiseless mosaic (C, H, W), detection S/N of the owner and owner index per pixel,
    and each galaxy's flux in the S/N aperture."""
    from photutils.aperture import CircularAperture

    n_band, size, scale = len(kernels), cfg.mosaic_size, cfg.pixel_scale
    image = np.zeros((n_band, size, size), np.float32)
    best = np.zeros((size, size), np.float32)
    owner = np.full((size, size), -1, np.int32)
    ap_flux = np.zeros((len(pop), n_band))
    det_weight = (1.0 / sigma0 / np.sqrt(n_band))[:, None, None]
    for j in range(len(pop)):
        grng = np.random.default_rng([cfg.seed, 3, j])
        cl = Clumps.draw(grng, int(pop.n_clumps[j]), float(pop.r_e[j]),
                         float(pop.axis_ratio[j]), float(pop.position_angle[j])) \
            if pop.n_clumps[j] > 0 else None
        g = Galaxy(x=float(pop.x[j]), y=float(pop.y[j]), r_e=float(pop.r_e[j]),
                   concentration=float(pop.concentration[j]),
                   axis_ratio=float(pop.axis_ratio[j]),
                   position_angle=float(pop.position_angle[j]), clumps=cl)
        stack, x0, y0 = render_stamp(g, smooth[j], clumps[j], kernels, scale, sigma0)
        side = stack.shape[-1]
        ys0, ys1 = max(y0, 0), min(y0 + side, size)
        xs0, xs1 = max(x0, 0), min(x0 + side, size)
        mask = CircularAperture((g.x - x0, g.y - y0), cfg.snr_aperture_arcsec / scale
                                ).to_mask(method="exact")
        ap_flux[j] = [np.sum(mask.multiply(s)) for s in stack]
        if ys0 >= ys1 or xs0 >= xs1:
            continue
        sub = stack[:, ys0 - y0:ys1 - y0, xs0 - x0:xs1 - x0]
        image[:, ys0:ys1, xs0:xs1] += sub
        d = np.sum(sub * det_weight, axis=0)
        reg = (slice(ys0, ys1), slice(xs0, xs1))
        better = d > best[reg]
        best[reg][better] = d[better]
        owner[reg][better] = j
    return image, best, owner, ap_flux


def _segment(best: np.ndarray, owner: np.ndarray, pop: Population, cfg: FieldConfig
             ) -> np.ndarray:
    """Apply the threshold in place; return the indices of the listed galaxies (their
    pixels keep an owner, every other pixel becomes -1)."""
    size = cfg.mosaic_size
    owner[best < cfg.segmap_threshold] = -1
    area = np.bincount(owner[owner >= 0], minlength=len(pop))
    inside = (pop.x >= -0.5) & (pop.x < size - 0.5) & (pop.y >= -0.5) & (pop.y < size - 0.5)
    listed = np.flatnonzero(inside & (area >= cfg.min_footprint_pixels))
    keep = np.zeros(len(pop) + 1, bool)
    keep[listed] = True
    owner[~keep[owner]] = -1  # owner -1 indexes the last (False) entry
    return listed
