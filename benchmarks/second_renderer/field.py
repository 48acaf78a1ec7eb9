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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .noise import (
    NATIVE_LW,
    NATIVE_SW,
    band_kernel,
    correlated_noise,
    correlation_factor,
    exposure_variation,
)
from .population import Population, PopulationModel, clump_seds, draw_population
from .profiles import BandKernel, Clumps, Galaxy, render_stamp
from .psf import DoubleMoffat, band_psfs
from .seds import BandIntegrator

log = logging.getLogger(__name__)

#: the jades preset's bands (store name = sedpy name) and this field's 5-sigma depths
#: (AB, 0.2"-radius aperture): JADES-deep-like, not the preset's values
DEPTHS = {"jwst_f090w": 29.6, "jwst_f115w": 29.8, "jwst_f150w": 29.9, "jwst_f200w": 30.0,
          "jwst_f277w": 30.2, "jwst_f335m": 29.7, "jwst_f356w": 30.2, "jwst_f410m": 29.7,
          "jwst_f444w": 29.9}
#: long-wavelength-channel bands (native 0.063" pixels)
LW_BANDS = ("jwst_f277w", "jwst_f335m", "jwst_f356w", "jwst_f410m", "jwst_f444w")
DETECTION_BAND = "jwst_f200w"
#: AB magnitude of 1 nJy
NJY_ZEROPOINT = 31.4
#: oversampling of the PSF images written
PSF_OVERSAMPLING = 4


@dataclass(frozen=True)
class FieldConfig:
    """What the field looks like (defaults: 2.0 arcmin^2 at 0.04"/pixel)."""

    mosaic_size: int = 2112
    pixel_scale: float = 0.04
    surface_density: float = 2400.0
    spec_mag_50: float = 26.5
    seed: int = 0
    margin: int = 40
    nan_border: int = 8
    rotation_deg: float = -12.0
    sip_coefficient: float = 1.0e-6
    center: tuple[float, float] = (53.135, -27.81)
    segmap_threshold: float = 1.0
    min_footprint_pixels: int = 3
    snr_aperture_arcsec: float = 0.2
    n_outside: int = 5
    zmax_inputs: float = 12.0
    depths: dict[str, float] = field(default_factory=lambda: dict(DEPTHS))

    @property
    def bands(self) -> list[str]:
        return list(self.depths)

    @property
    def area_arcmin2(self) -> float:
        """Area rendered (mosaic and margin)."""
        return ((self.mosaic_size + 2 * self.margin) * self.pixel_scale / 60.0) ** 2


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


#: what each output is, for messages
_WHAT = {"segmap": "segmentation map", "catalog": "catalog", "spectra": "spectroscopic catalog",
         "truth": "truth catalog", "inputs": "field inputs", "image": "FITS mosaic",
         "psf": "PSF image"}


def _output_paths(out: Path, bands: list[str]) -> dict[str, Path]:
    paths = {f"image_{b}": out / f"{b}.fits" for b in bands}
    paths.update({f"psf_{b}": out / f"psf_{b}.fits" for b in bands})
    paths.update(segmap=out / "segmap.fits", catalog=out / "catalog.fits",
                 spectra=out / "spectra.fits", truth=out / "truth_catalog.fits",
                 inputs=out / "field_inputs.yml")
    return paths


def write_field(out_dir: str | os.PathLike, cfg: FieldConfig | None = None,
                progress: bool = False) -> WrittenField:
    """Render the field and write its files (see the module docstring)."""
    from rail.deepdisc.errors import OptionError
    from rail.deepdisc.store.atomic import check_output_path

    cfg = cfg or FieldConfig()
    t0 = time.perf_counter()
    out = Path(out_dir)
    paths = _output_paths(out, cfg.bands)
    for key, path in paths.items():
        check_output_path(path, _WHAT[key.split("_")[0]])
    bands, scale = cfg.bands, cfg.pixel_scale
    ny = nx = cfg.mosaic_size
    rng = np.random.default_rng([cfg.seed, 0])
    integrator = BandIntegrator(bands)
    psfs = band_psfs(_pivots(bands), cfg.seed)
    kernels = [_band_kernel(psfs[b], scale) for b in bands]
    pop = draw_population(rng, int(rng.poisson(cfg.surface_density * cfg.area_arcmin2)),
                          nx, ny, cfg.margin, PopulationModel(surface_density=cfg.surface_density))
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
    wcs = _wcs(cfg)
    _write_mosaics(paths, image, sigma0, variation, corr, wcs, cfg)
    del image
    truth = _write_tables(paths, pop, ids, listed, flux, snr, segmap, wcs, cfg, rng)
    _write_psfs(paths, psfs, cfg)
    _write_inputs(paths, cfg)
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


def _band_fluxes(pop: Population, integrator: BandIntegrator, bands: list[str]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Total, smooth-part and clump fluxes (nJy) per galaxy and band."""
    det = bands.index(DETECTION_BAND)
    shape = integrator.fluxes(pop.sed)
    total = shape / shape[:, det:det + 1] * 10.0 ** (-0.4 * (pop.mag_det - NJY_ZEROPOINT)
                                                    )[:, None]
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


def _wcs(cfg: FieldConfig):
    from rail.deepdisc.sim.fits_field import mosaic_wcs

    return mosaic_wcs((cfg.mosaic_size, cfg.mosaic_size), cfg.center, cfg.pixel_scale,
                      cfg.rotation_deg, cfg.sip_coefficient)


def _write_mosaics(paths, image, sigma0, variation, corr, wcs, cfg: FieldConfig) -> None:
    from astropy.io import fits

    from rail.deepdisc.sim.fits_field import blank_border, mjy_sr_per_njy
    from rail.deepdisc.store.atomic import atomic_output

    size = cfg.mosaic_size
    to_mjy_sr = mjy_sr_per_njy(cfg.pixel_scale)
    blank = blank_border(np.arange(size), size, size, cfg.nan_border)
    header = wcs.to_header(relax=True)
    for b, band in enumerate(cfg.bands):
        rng = np.random.default_rng([cfg.seed, 1, b])
        err = (sigma0[b] * variation).astype(np.float32)
        sci = image[b] + correlated_noise(rng, image[b].shape, corr[band]) * err
        sci *= to_mjy_sr
        err *= to_mjy_sr
        sci[blank] = np.nan
        err[blank] = np.nan
        hdr = header.copy()
        hdr["BUNIT"] = "MJy/sr"
        hdr["FILTER"] = band.split("_")[-1].upper()
        hdr["ORIGIN"] = "second_renderer (pz-rail-deepdisc benchmarks)"
        hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci, hdr, name="SCI"),
                             fits.ImageHDU(err, hdr, name="ERR")])
        with atomic_output(paths[f"image_{band}"], "FITS mosaic") as tmp:
            hdul.writeto(tmp)


def _write_tables(paths, pop: Population, ids, listed, flux, snr, segmap, wcs,
                  cfg: FieldConfig, rng: np.random.Generator):
    """Segmentation map, catalog, spectra and truth table; returns the truth table."""
    from astropy.io import fits
    from astropy.table import Table

    from rail.deepdisc.sim.fits_field import _spec_table, blank_border
    from rail.deepdisc.sim.labels import SpecSelection, spectroscopic_subset
    from rail.deepdisc.store.atomic import atomic_output

    size = cfg.mosaic_size
    with atomic_output(paths["segmap"], "segmentation map") as tmp:
        fits.PrimaryHDU(segmap, wcs.to_header(relax=True)).writeto(tmp)
    x, y = pop.x[listed], pop.y[listed]
    ra, dec = wcs.all_pix2world(x, y, 0)
    # objects off the mosaic (the tiler must leave them out), as fits-field writes
    ox = rng.uniform(-size, 2 * size, 4 * cfg.n_outside)
    oy = rng.uniform(-size, 2 * size, 4 * cfg.n_outside)
    off = (ox < -1) | (ox > size) | (oy < -1) | (oy > size)
    ox, oy = ox[off][:cfg.n_outside], oy[off][:cfg.n_outside]
    ora, odec = wcs.all_pix2world(ox, oy, 0)
    oid = ids.max() + 1 + np.arange(ox.size)
    catalog = Table({"id": np.concatenate([ids[listed], oid]),
                     "ra": np.concatenate([ra, ora]), "dec": np.concatenate([dec, odec]),
                     "redshift": np.full(listed.size + ox.size, np.nan),
                     "size": np.concatenate([pop.r_e[listed], np.full(ox.size, 0.1)])})
    catalog["ra"].unit = catalog["dec"].unit = "deg"
    catalog["size"].unit = "arcsec"
    with atomic_output(paths["catalog"], "catalog") as tmp:
        catalog.write(tmp, format="fits")

    z = pop.z[listed]
    mags = {f"mag_{b}": _mag(flux[listed, i]) for i, b in enumerate(cfg.bands)}
    blank = blank_border(np.arange(size), size, size, cfg.nan_border)
    px, py = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    on_data = ~blank[py, px]
    selection = SpecSelection(band=DETECTION_BAND, mag_50=cfg.spec_mag_50)
    chosen = on_data & spectroscopic_subset({**mags, "redshift": z}, selection, cfg.seed)
    spectra = _spec_table(ra[chosen], dec[chosen], z[chosen], rng)
    with atomic_output(paths["spectra"], "spectroscopic catalog") as tmp:
        spectra.write(tmp, format="fits")

    truth = Table({"id": ids[listed], "ra": ra, "dec": dec, "redshift": z})
    truth["ra"].unit = truth["dec"].unit = "deg"
    for b in cfg.bands:
        truth[f"mag_{b}"] = mags[f"mag_{b}"]
    for i, b in enumerate(cfg.bands):
        truth[f"snr_{b}"] = snr[listed, i]
    truth.meta["n_spec"] = int(chosen.sum())
    _write_truth(truth, paths["truth"], "second_renderer")
    return truth


def _mag(flux: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, NJY_ZEROPOINT - 2.5 * np.log10(np.maximum(flux, 1e-300)),
                        np.inf)


def _write_truth(truth, path, origin: str) -> None:
    from rail.deepdisc.store.atomic import atomic_output

    table = truth.copy()
    table.meta = {"ORIGIN": origin, "SNR_AP": "0.2 arcsec radius"}
    with atomic_output(path, "truth catalog") as tmp:
        table.write(tmp, format="fits")


def _write_psfs(paths, psfs: dict[str, DoubleMoffat], cfg: FieldConfig) -> None:
    """``psf_<band>.fits``: the PSF model (no pixel response), 4x oversampled."""
    from astropy.io import fits

    from rail.deepdisc.store.atomic import atomic_output

    fine = cfg.pixel_scale / PSF_OVERSAMPLING
    for band, psf in psfs.items():
        header = fits.Header()
        header["PIXELSCL"] = (fine, "arcsec per PSF pixel")
        header["OVERSAMP"] = (PSF_OVERSAMPLING, "PSF pixels per mosaic pixel")
        header["FILTER"] = band
        header["PSFMODEL"] = ("double Moffat", f"core FWHM {psf.fwhm:.4f} arcsec")
        image = psf.image(fine).astype(np.float32)
        with atomic_output(paths[f"psf_{band}"], "PSF image") as tmp:
            fits.PrimaryHDU(image, header).writeto(tmp)


def _write_inputs(paths, cfg: FieldConfig) -> None:
    import yaml

    from rail.deepdisc.store.atomic import atomic_output

    out = paths["inputs"].parent

    def rel(path) -> str:
        return os.path.relpath(path, out)

    inputs = {"catalog": rel(paths["catalog"]),
              "images": {b: f"{rel(paths[f'image_{b}'])}[SCI]" for b in cfg.bands},
              "errors": {b: f"{rel(paths[f'image_{b}'])}[ERR]" for b in cfg.bands},
              "segmap": rel(paths["segmap"]), "id_col": "id", "redshift_col": "",
              "spec_catalog": rel(paths["spectra"]),
              "psfs": {b: rel(paths[f"psf_{b}"]) for b in cfg.bands},
              "zmax": cfg.zmax_inputs, "detection_band": DETECTION_BAND}
    with atomic_output(paths["inputs"], "field inputs") as tmp:
        tmp.write_text("# a field written by benchmarks/second_renderer.py: its catalog, and "
                       "its mosaics and spectra as options of the tiler (rail-deepdisc "
                       "field --inputs);\n# relative paths are relative to this file\n"
                       + yaml.safe_dump(inputs, sort_keys=False), encoding="utf-8")


def truth_table_from_store(store: str | os.PathLike, catalog: str | os.PathLike | None = None,
                           output: str | os.PathLike | None = None):
    """The truth table of a ``rail-deepdisc fits-field`` directory, in this renderer's
    format (``id``, ``ra``, ``dec``, ``redshift``, ``mag_<band>``, ``snr_<band>``).

    ``store`` is the field's ``truth.hdf5``; RA/Dec come from the field's catalog (default
    ``catalog.fits`` beside the store), matched by id, since the mosaic's WCS (rotated,
    with distortion) is not the store's. Written to ``output`` when given.
    """
    from astropy.table import Table

    from rail.deepdisc.errors import InputError
    from rail.deepdisc.store.scenes import SceneStore

    catalog = catalog or Path(store).with_name("catalog.fits")
    with SceneStore(store) as st:
        bands = list(st.bands)
        cols = ["object_id", "redshift", *(f"{k}_{b}" for k in ("mag", "snr") for b in bands)]
        missing = [c for c in cols if c not in st.object_columns]
        if missing:
            raise InputError(f"{store}: /objects lacks {missing} for a truth table")
        obj = st.objects(cols)
    cat = Table.read(catalog)
    order = np.argsort(cat["id"])
    ids = np.asarray(obj["object_id"], np.int64)
    pos = np.searchsorted(np.asarray(cat["id"])[order], ids)
    pos = np.clip(pos, 0, len(cat) - 1)
    rows = order[pos]
    if not np.array_equal(np.asarray(cat["id"])[rows], ids):
        raise InputError(f"{catalog}: not every object of {store} has a catalog row")
    truth = Table({"id": ids, "ra": np.asarray(cat["ra"], float)[rows],
                   "dec": np.asarray(cat["dec"], float)[rows],
                   "redshift": np.asarray(obj["redshift"], float)})
    truth["ra"].unit = truth["dec"].unit = "deg"
    for k in ("mag", "snr"):
        for b in bands:
            truth[f"{k}_{b}"] = np.asarray(obj[f"{k}_{b}"], float)
    if output is not None:
        _write_truth(truth, output, "rail-deepdisc fits-field")
    return truth
