"""The files of a second-renderer field, in ``rail-deepdisc fits-field``'s layout, and the
truth table of a ``fits-field`` directory in the same format."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .config import DETECTION_BAND, NJY_ZEROPOINT, PSF_OVERSAMPLING, FieldConfig
from .noise import correlated_noise
from .population import Population
from .psf import DoubleMoffat

#: what each output is, for messages
WHAT = {"segmap": "segmentation map", "catalog": "catalog", "spectra": "spectroscopic catalog",
         "truth": "truth catalog", "inputs": "field inputs", "image": "FITS mosaic",
         "psf": "PSF image"}


def output_paths(out: Path, bands: list[str]) -> dict[str, Path]:
    paths = {f"image_{b}": out / f"{b}.fits" for b in bands}
    paths.update({f"psf_{b}": out / f"psf_{b}.fits" for b in bands})
    paths.update(segmap=out / "segmap.fits", catalog=out / "catalog.fits",
                 spectra=out / "spectra.fits", truth=out / "truth_catalog.fits",
                 inputs=out / "field_inputs.yml")
    return paths


def mosaic_wcs(cfg: FieldConfig):
    from rail.deepdisc.sim.fits_field import mosaic_wcs

    return mosaic_wcs((cfg.mosaic_size, cfg.mosaic_size), cfg.center, cfg.pixel_scale,
                      cfg.rotation_deg, cfg.sip_coefficient)


def write_mosaics(paths, image, sigma0, variation, corr, wcs, cfg: FieldConfig) -> None:
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


def write_tables(paths, pop: Population, ids, listed, flux, snr, segmap, wcs,
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


def write_psfs(paths, psfs: dict[str, DoubleMoffat], cfg: FieldConfig) -> None:
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


def write_inputs(paths, cfg: FieldConfig) -> None:
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
              "zmax": cfg.zmax_inputs, "detection_band": DETECTION_BAND,
              # the renderer's true redshifts of every catalog object, for the report
              "truth_catalog": rel(paths["truth"])}
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
