"""Synthetic survey mosaics of any size, written row block by row block (bounded memory).

For benchmarks and memory tests of the real-data path (:mod:`rail.deepdisc.store.mosaic`): a field
of ``shape`` pixels per band, far larger than memory if asked, written JWST-style: one FITS
file per band with an empty primary HDU and a ``SCI`` extension in ``MJy/sr`` (and an
``ERR`` extension for the first ``error_bands`` bands), a TAN WCS, a blank (NaN) border, and
a FITS catalog (``id``, ``ra``, ``dec``, ``redshift``, ``size``). The pixels are white
Gaussian noise plus round Gaussian sources; every band shows the same sources with a
per-band flux factor. The images are streamed with astropy's ``StreamingHDU`` in blocks of
``block_rows`` rows, so the writer holds a few blocks, never a band.

Unlike :func:`rail.deepdisc.sim.fits_field.write_fits_field` (a rendered scene store with
known truth for round-trip tests) nothing here is physically meaningful beyond the sizes,
units and geometry.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rail.deepdisc.errors import OptionError
from rail.deepdisc.sim.fits_field import blank_border, mjy_sr_per_njy, mosaic_wcs
from rail.deepdisc.spectra.bands import NIRCAM_BANDS
from rail.deepdisc.store.atomic import atomic_output

#: stamps are cut at this many Gaussian sigmas
_STAMP_SIGMAS = 3.0


@dataclass(frozen=True)
class LargeFieldSpec:
    """What :func:`write_large_field` writes.

    Attributes
    ----------
    shape
        Mosaic (height, width) in pixels.
    bands
        Band names (one file each).
    n_objects
        Sources, uniform over the mosaic (those on the blank border are on no data).
    error_bands
        How many of the first bands also get an ``ERR`` extension (constant: the noise).
    pixel_scale_arcsec, center, rotation_deg
        Of the TAN WCS (``center``: RA, Dec in degrees).
    nan_border
        Width (pixels) of the blank border.
    noise_njy
        Pixel noise (nJy).
    flux_range_njy
        Total source fluxes are log-uniform in this range (nJy).
    sigma_range_pixels
        Gaussian sigmas of the sources are uniform in this range (pixels).
    redshift_fraction
        Fraction of the catalog with a redshift (the others NaN).
    block_rows
        Rows written at a time.
    seed
        Random seed.
    """

    shape: tuple[int, int] = (20000, 20000)
    bands: tuple[str, ...] = field(default_factory=lambda: NIRCAM_BANDS)
    n_objects: int = 100_000
    error_bands: int = 0
    pixel_scale_arcsec: float = 0.03
    center: tuple[float, float] = (53.16, -27.78)
    rotation_deg: float = 20.0
    nan_border: int = 64
    noise_njy: float = 1.0
    flux_range_njy: tuple[float, float] = (5.0, 2000.0)
    sigma_range_pixels: tuple[float, float] = (1.0, 4.0)
    redshift_fraction: float = 0.05
    block_rows: int = 512
    seed: int = 0

    def validate(self) -> None:
        """Raise OptionError naming the first bad value."""
        ny, nx = self.shape
        if ny < 16 or nx < 16:
            raise OptionError(f"shape must be at least 16 x 16 pixels, got {self.shape}")
        if not self.bands:
            raise OptionError("give at least one band")
        if not 0 <= self.error_bands <= len(self.bands):
            raise OptionError(f"error_bands must be in [0, {len(self.bands)}], got "
                             f"{self.error_bands}")
        if self.n_objects < 1:
            raise OptionError(f"n_objects must be >= 1, got {self.n_objects}")
        if not 0 <= 2 * self.nan_border < min(ny, nx):
            raise OptionError(f"nan_border {self.nan_border} leaves no data")
        if self.block_rows < 1:
            raise OptionError(f"block_rows must be >= 1, got {self.block_rows}")

    def nbytes(self) -> int:
        """Bytes of pixels the files hold."""
        ny, nx = self.shape
        return 4 * ny * nx * (len(self.bands) + self.error_bands)


@dataclass
class LargeField:
    """Paths of a written field: band -> ``path[SCI]`` / ``path[ERR]``, the catalog, the
    WCS and the true pixel positions of the catalog's objects."""

    images: dict[str, str]
    errors: dict[str, str]
    catalog: str
    wcs: object
    x: np.ndarray
    y: np.ndarray


def _image_header(wcs, shape: tuple[int, int], name: str, band: str):
    from astropy.io import fits

    ny, nx = shape
    h = fits.Header()
    h["XTENSION"] = "IMAGE"
    h["BITPIX"] = -32
    h["NAXIS"] = 2
    h["NAXIS1"] = nx
    h["NAXIS2"] = ny
    h["PCOUNT"] = 0
    h["GCOUNT"] = 1
    h["EXTNAME"] = name
    h.extend(wcs.to_header(relax=True).cards)
    h["BUNIT"] = "MJy/sr"
    h["FILTER"] = band.split("_")[-1].upper()
    return h


def _render_block(r0: int, r1: int, nx: int, x: np.ndarray, y: np.ndarray,
                  sigma: np.ndarray, flux: np.ndarray) -> np.ndarray:
    """Sum of the sources' Gaussians over rows ``r0:r1`` (nJy per pixel, float32).

    ``x``, ``y``, ``sigma``, ``flux`` are the sources sorted by ``y``; each contributes a
    stamp of ``_STAMP_SIGMAS`` sigmas (renormalised to its flux).
    """
    out = np.zeros((r1 - r0, nx), np.float32)
    reach = int(np.ceil(_STAMP_SIGMAS * sigma.max())) + 1
    lo, hi = np.searchsorted(y, [r0 - reach, r1 + reach])
    if lo == hi:
        return out
    xs, ys, sg, fl = x[lo:hi], y[lo:hi], sigma[lo:hi], flux[lo:hi]
    offs = np.arange(-reach, reach + 1)
    px = np.floor(xs + 0.5).astype(np.int64)[:, None, None] + offs[None, None, :]
    py = np.floor(ys + 0.5).astype(np.int64)[:, None, None] + offs[None, :, None]
    r2 = (px - xs[:, None, None]) ** 2 + (py - ys[:, None, None]) ** 2
    g = np.exp(-0.5 * r2 / sg[:, None, None] ** 2)
    g = np.where(r2 <= (_STAMP_SIGMAS * sg[:, None, None]) ** 2, g, 0.0)
    g *= (fl / g.sum(axis=(1, 2)))[:, None, None]
    px, py = np.broadcast_to(px, g.shape), np.broadcast_to(py, g.shape)
    ok = (px >= 0) & (px < nx) & (py >= r0) & (py < r1)
    np.add.at(out, (py[ok] - r0, px[ok]), g[ok].astype(np.float32))
    return out


def write_large_field(spec: LargeFieldSpec, out_dir: str | os.PathLike, *,
                      progress: bool = False) -> LargeField:
    """Write the mosaics and catalog of ``spec`` into ``out_dir``.

    Every file is written under a temporary name and renamed when complete.

    Returns
    -------
    LargeField
        Where everything went, with the WCS and the sources' true pixel positions.
    """
    from astropy.table import Table

    spec.validate()
    ny, nx = spec.shape
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    wcs = mosaic_wcs(spec.shape, spec.center, spec.pixel_scale_arcsec, spec.rotation_deg)
    n = spec.n_objects
    x = rng.uniform(-0.5, nx - 0.5, n)
    y = rng.uniform(-0.5, ny - 0.5, n)
    lo, hi = np.log(spec.flux_range_njy)
    flux = np.exp(rng.uniform(lo, hi, n))
    sigma = rng.uniform(*spec.sigma_range_pixels, n)
    paths = {b: out / f"{b}.fits" for b in spec.bands}
    with ExitStack() as stack:
        tmps = {b: stack.enter_context(atomic_output(p, "FITS mosaic")) for b, p in paths.items()}
        _stream_science(spec, wcs, tmps, x, y, sigma, flux, rng, progress)
        _stream_errors(spec, wcs, tmps)
    ra, dec = wcs.all_pix2world(x, y, 0)
    z = np.where(rng.random(n) < spec.redshift_fraction, rng.uniform(0.2, 8.0, n), np.nan)
    table = Table({"id": np.arange(1, n + 1, dtype=np.int64), "ra": ra, "dec": dec,
                   "redshift": z, "size": sigma * spec.pixel_scale_arcsec})
    cat_path = out / "catalog.fits"
    with atomic_output(cat_path, "catalog") as tmp:
        table.write(tmp, format="fits")
    return LargeField(images={b: f"{p}[SCI]" for b, p in paths.items()},
                      errors={b: f"{paths[b]}[ERR]" for b in spec.bands[:spec.error_bands]},
                      catalog=str(cat_path), wcs=wcs, x=x, y=y)


def _stream_science(spec: LargeFieldSpec, wcs, tmps: dict[str, Path], x: np.ndarray,
                    y: np.ndarray, sigma: np.ndarray, flux: np.ndarray,
                    rng: np.random.Generator, progress: bool) -> None:
    """Write every band's ``SCI`` extension, block of rows by block of rows."""
    from astropy.io import fits
    from tqdm.auto import tqdm

    ny, nx = spec.shape
    colour = np.linspace(0.6, 1.4, len(spec.bands))  # per-band flux factors
    order = np.argsort(y)
    xs, ys, ss, fs = x[order], y[order], sigma[order], flux[order]
    to_mjy_sr = np.float32(mjy_sr_per_njy(spec.pixel_scale_arcsec))
    # a new file gets an empty primary HDU first (a str path: astropy takes only the file
    # name of a pathlib.Path here)
    streams = [fits.StreamingHDU(os.fspath(tmps[band]),
                                 _image_header(wcs, spec.shape, "SCI", band))
               for band in spec.bands]
    for r0 in tqdm(range(0, ny, spec.block_rows), desc="rows", unit="block",
                   disable=not progress):
        r1 = min(r0 + spec.block_rows, ny)
        sources = _render_block(r0, r1, nx, xs, ys, ss, fs)
        blank = blank_border(np.arange(r0, r1), nx, ny, spec.nan_border)
        for b, stream in enumerate(streams):
            noise = rng.standard_normal((r1 - r0, nx), dtype=np.float32)
            block = (noise * np.float32(spec.noise_njy) + np.float32(colour[b]) * sources)
            block *= to_mjy_sr
            block[blank] = np.nan
            stream.write(block)
    for stream in streams:
        stream.close()


def _stream_errors(spec: LargeFieldSpec, wcs, tmps: dict[str, Path]) -> None:
    """Append a constant ``ERR`` extension (the noise) to the first ``error_bands`` files."""
    from astropy.io import fits

    ny, nx = spec.shape
    err = np.float32(spec.noise_njy * mjy_sr_per_njy(spec.pixel_scale_arcsec))
    for band in spec.bands[:spec.error_bands]:
        stream = fits.StreamingHDU(os.fspath(tmps[band]),
                                   _image_header(wcs, spec.shape, "ERR", band))
        for r0 in range(0, ny, spec.block_rows):
            r1 = min(r0 + spec.block_rows, ny)
            block = np.full((r1 - r0, nx), err, np.float32)
            block[blank_border(np.arange(r0, r1), nx, ny, spec.nan_border)] = np.nan
            stream.write(block)
        stream.close()
