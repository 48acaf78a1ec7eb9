"""A simulated field written the way surveys deliver theirs: FITS mosaics and a catalog.

:func:`write_fits_field` takes one (large) scene of a simulated scene store and writes one
FITS file per band, JWST-style (an empty primary HDU, ``SCI`` and ``ERR`` image extensions
in ``MJy/sr``), a segmentation map and a catalog (``id``, ``ra``, ``dec``, ``redshift``,
``size``), so the whole real-data path (:mod:`rail.deepdisc.store.mosaic`) can be checked against
known truth. The mosaic gets its own WCS: a TAN projection rotated by ``rotation_deg`` with
a SIP distortion, and the catalog's RA/Dec are the true pixel positions through that WCS;
a blank border of ``nan_border`` pixels (NaN in SCI and ERR) stands for the edge of a
survey's coverage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rail.deepdisc.errors import OptionError
from rail.deepdisc.sim.labels import SpecSelection, spectroscopic_subset
from rail.deepdisc.store.atomic import atomic_output
from rail.deepdisc.store.scenes import SceneStore

#: 1 nJy in MJy
_NJY_IN_MJY = 1.0e-15
#: arcsec per radian
_ARCSEC_PER_RAD = 206264.80624709636


def mjy_sr_per_njy(pixel_scale_arcsec: float) -> float:
    """MJy/sr of a pixel holding 1 nJy (surface brightness of a flux per pixel)."""
    return _NJY_IN_MJY / (pixel_scale_arcsec / _ARCSEC_PER_RAD) ** 2


def blank_border(rows: np.ndarray, nx: int, ny: int, width: int) -> np.ndarray:
    """Which pixels of rows ``rows`` (of an ``ny`` x ``nx`` mosaic) lie within ``width``
    pixels of its edge: the blank border standing for the edge of a survey's coverage."""
    blank = np.zeros((rows.size, nx), bool)
    blank[(rows < width) | (rows >= ny - width)] = True
    blank[:, :width] = True
    blank[:, nx - width:] = True
    return blank


@dataclass
class FitsField:
    """Paths of a written FITS field and its truth.

    Attributes
    ----------
    images
        Band -> ``path[SCI]``.
    errors
        Band -> ``path[ERR]``.
    segmap, catalog
        Paths.
    object_id, x, y
        Truth: the objects centred on pixels with data and their mosaic pixel positions.
    outside_ids
        Catalog ids of objects outside the footprint (blank border or off the mosaic).
    wcs
        The mosaic's ``astropy.wcs.WCS``.
    pixel_scale_arcsec
        Pixel side.
    spectra
        Path of the spectroscopic catalog (``ra``, ``dec``, ``z_spec``), if one was written.
    """

    images: dict[str, str]
    errors: dict[str, str]
    segmap: str
    catalog: str
    object_id: np.ndarray
    x: np.ndarray
    y: np.ndarray
    outside_ids: np.ndarray
    wcs: object
    pixel_scale_arcsec: float
    spectra: str | None = None


def mosaic_wcs(shape: tuple[int, int], center: tuple[float, float], scale_arcsec: float,
               rotation_deg: float = 0.0, sip_coefficient: float = 0.0):
    """A TAN(-SIP) WCS centred on ``center`` (RA, Dec deg), north rotated by
    ``rotation_deg``, with quadratic SIP terms ``A_2_0 = B_0_2 = sip_coefficient``."""
    from astropy.wcs import WCS, Sip

    ny, nx = shape
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"] if sip_coefficient else \
        ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = list(center)
    w.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    s = scale_arcsec / 3600.0
    t = np.radians(rotation_deg)
    w.wcs.cd = np.array([[-s * np.cos(t), s * np.sin(t)], [s * np.sin(t), s * np.cos(t)]])
    if sip_coefficient:
        a = np.zeros((3, 3))
        b = np.zeros((3, 3))
        a[2, 0] = sip_coefficient
        b[0, 2] = sip_coefficient
        w.sip = Sip(a, b, None, None, w.wcs.crpix)
    w.pixel_shape = (nx, ny)
    return w


def write_fits_field(store: str | os.PathLike, out_dir: str | os.PathLike, *, scene: int = 0,
                     nan_border: int = 8, rotation_deg: float = 30.0,
                     sip_coefficient: float = 2.0e-6, spec_fraction: float = 0.5,
                     n_outside: int = 5, catalog_format: str = "fits",
                     spec_selection: SpecSelection | None = None,
                     seed: int = 0) -> FitsField:
    """Write scene ``scene`` of a simulated store as FITS mosaics, segmap and catalog.

    Parameters
    ----------
    store
        A simulated scene store (nJy pixels, ``ivar``, ``segmap``).
    out_dir
        Directory for ``<band>.fits``, ``segmap.fits`` and ``catalog.<format>``.
    scene
        The scene to write.
    nan_border
        Width (pixels) of the blank border.
    rotation_deg, sip_coefficient
        Of the mosaic's WCS (see :func:`mosaic_wcs`).
    spec_fraction
        Fraction of the objects whose redshift is given (the others NaN), as a
        spectroscopic catalog would.
    n_outside
        Extra catalog objects placed off the mosaic (they must be left out by the tiler).
    catalog_format
        ``fits``, ``csv`` or ``parquet``.
    spec_selection
        When given, also write ``spectra.<format>``: the redshifts of the objects on the
        mosaic's data that this selection picks (as a spectroscopic survey would, brighter
        objects more often, fewer in the redshift desert), at their RA/Dec with a 0.03"
        astrometric scatter, for the tiler's position matching.
    seed
        For the choice of redshifts given and of the outside positions.
    """
    from astropy.io import fits
    from astropy.table import Table

    if catalog_format not in ("fits", "csv", "parquet"):
        raise OptionError(f"catalog_format must be fits, csv or parquet, got "
                          f"{catalog_format!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with SceneStore(store) as st:
        chunk = st.read_chunk(scene, scene + 1)
        bands = st.bands
        scale = st.info.pixel_scale_arcsec
        center = tuple(float(v) for v in _scene_center(chunk.scenes["wcs"][0]))
    images, ivar, seg = chunk.images[0], chunk.ivar[0], chunk.segmap[0]
    obj = chunk.objects
    ny, nx = images.shape[1:]
    wcs = mosaic_wcs((ny, nx), center, scale, rotation_deg, sip_coefficient)
    header = wcs.to_header(relax=True)
    to_mjy_sr = mjy_sr_per_njy(scale)
    blank = blank_border(np.arange(ny), nx, ny, nan_border)
    paths, err_paths = {}, {}
    for b, band in enumerate(bands):
        sci = (images[b] * to_mjy_sr).astype(np.float32)
        with np.errstate(divide="ignore"):
            err = np.where(ivar[b] > 0, 1.0 / np.sqrt(ivar[b]), np.nan) * to_mjy_sr
        sci[blank] = np.nan
        err = err.astype(np.float32)
        err[blank] = np.nan
        hdr = header.copy()
        hdr["BUNIT"] = "MJy/sr"
        hdr["FILTER"] = band.split("_")[-1].upper()
        hdul = fits.HDUList([fits.PrimaryHDU(),
                             fits.ImageHDU(sci, hdr, name="SCI"),
                             fits.ImageHDU(err, hdr, name="ERR")])
        path = out / f"{band}.fits"
        with atomic_output(path, "FITS mosaic") as tmp:
            hdul.writeto(tmp)
        paths[band], err_paths[band] = f"{path}[SCI]", f"{path}[ERR]"
    with atomic_output(out / "segmap.fits", "segmentation map") as tmp:
        fits.PrimaryHDU(seg.astype(np.int32), header).writeto(tmp)

    x, y = np.asarray(obj["x"], float), np.asarray(obj["y"], float)
    ids = np.asarray(obj["object_id"], np.int64)
    ra, dec = wcs.all_pix2world(x, y, 0)
    rng = np.random.default_rng(seed)
    z = np.where(rng.random(ids.size) < spec_fraction, obj["redshift"], np.nan)
    px = np.clip(np.floor(x + 0.5).astype(int), 0, nx - 1)
    py = np.clip(np.floor(y + 0.5).astype(int), 0, ny - 1)
    on_data = ~blank[py, px]
    # objects off the mosaic: beyond its edges by up to a mosaic side
    ox = rng.uniform(-nx, 2 * nx, 4 * n_outside)
    oy = rng.uniform(-ny, 2 * ny, 4 * n_outside)
    off = (ox < -1) | (ox > nx) | (oy < -1) | (oy > ny)
    ox, oy = ox[off][:n_outside], oy[off][:n_outside]
    ora, odec = wcs.all_pix2world(ox, oy, 0)
    oid = ids.max() + 1 + np.arange(ox.size)
    size = np.asarray(obj["Re_maj"], float) if "Re_maj" in obj else np.full(ids.size, 0.1)
    table = Table({"id": np.concatenate([ids, oid]), "ra": np.concatenate([ra, ora]),
                   "dec": np.concatenate([dec, odec]),
                   "redshift": np.concatenate([z, np.full(ox.size, np.nan)]),
                   "size": np.concatenate([size, np.full(ox.size, 0.1)])})
    table["ra"].unit = "deg"
    table["dec"].unit = "deg"
    cat_path = out / f"catalog.{catalog_format}"
    _write_table(table, cat_path, catalog_format)
    spectra = None
    if spec_selection is not None:
        chosen = on_data & spectroscopic_subset(obj, spec_selection, seed)
        spectra = str(out / f"spectra.{catalog_format}")
        _write_table(_spec_table(ra[chosen], dec[chosen], obj["redshift"][chosen], rng),
                     spectra, catalog_format)
    return FitsField(images=paths, errors=err_paths, segmap=str(out / "segmap.fits"),
                     catalog=str(cat_path), object_id=ids[on_data], x=x[on_data],
                     y=y[on_data], outside_ids=np.concatenate([ids[~on_data], oid]),
                     wcs=wcs, pixel_scale_arcsec=scale, spectra=spectra)


def _spec_table(ra: np.ndarray, dec: np.ndarray, z: np.ndarray, rng: np.random.Generator,
                scatter_arcsec: float = 0.03):
    """A spectroscopic catalog: positions with astrometric scatter, redshifts, row order
    shuffled (as a separate survey's catalog would be)."""
    from astropy.table import Table

    order = rng.permutation(ra.size)
    dra = rng.normal(0, scatter_arcsec, ra.size) / 3600.0 / np.cos(np.radians(dec))
    ddec = rng.normal(0, scatter_arcsec, ra.size) / 3600.0
    table = Table({"spec_id": np.arange(1, ra.size + 1), "ra": (ra + dra)[order],
                   "dec": (dec + ddec)[order], "z_spec": np.asarray(z, float)[order]})
    table["ra"].unit = table["dec"].unit = "deg"
    return table


def _write_table(table, path: str | os.PathLike, catalog_format: str) -> None:
    with atomic_output(path, "catalog") as tmp:
        if catalog_format == "parquet":
            table.to_pandas().to_parquet(tmp)
        else:
            table.write(tmp, format="fits" if catalog_format == "fits" else "ascii.csv")


def _scene_center(header_text: bytes | str) -> tuple[float, float]:
    from astropy.io import fits
    from astropy.wcs import WCS

    text = header_text.decode() if isinstance(header_text, bytes) else header_text
    h = fits.Header.fromstring(text)
    w = WCS(h)
    ra, dec = w.all_pix2world([(h["NAXIS1"] - 1) / 2.0], [(h["NAXIS2"] - 1) / 2.0], 0)
    return float(ra[0]), float(dec[0])


def write_psf_images(store: str | os.PathLike, out_dir: str | os.PathLike, *,
                     oversampling: int = 4, size: int = 129) -> dict[str, str]:
    """Write the PSF of each band of a simulated store as a FITS image, as surveys deliver
    model PSFs (e.g. STPSF/WebbPSF for JWST): ``psf_<band>.fits``, ``oversampling`` times
    finer than the pixels, ``PIXELSCL`` (arcsec) and ``OVERSAMP`` in the header, without
    the pixel response (as optical PSF models come). Returns band -> path.
    """
    import json

    from astropy.io import fits

    from rail.deepdisc.sim.psf import make_psf
    from rail.deepdisc.store.atomic import atomic_output
    from rail.deepdisc.store.scenes import SceneStore

    with SceneStore(store) as st:
        description, scale, bands = (json.loads(st.info.attrs["psf"]),
                                     st.info.pixel_scale_arcsec, st.bands)
    paths = {}
    for band in bands:
        fine = scale / oversampling
        image = make_psf(description, band).drawImage(nx=size, ny=size, scale=fine,
                                                      method="no_pixel").array
        header = fits.Header()
        header["PIXELSCL"] = (fine, "arcsec per PSF pixel")
        header["OVERSAMP"] = (oversampling, "PSF pixels per mosaic pixel")
        header["FILTER"] = band
        paths[band] = os.path.join(os.fspath(out_dir), f"psf_{band}.fits")
        with atomic_output(paths[band], "PSF image") as tmp:
            fits.PrimaryHDU(image.astype(np.float32), header).writeto(tmp)
    return paths
