"""Bounded-memory access to FITS mosaics: extensions, WCS, units and pixel windows.

A mosaic is named by a path with an optional extension, ``mosaic.fits[SCI]``,
``mosaic.fits[SCI,1]`` or ``mosaic.fits[1]``; without one the first HDU holding a 2-D image
is used. Headers, WCS and units are read with astropy. Pixels are read window by window:
uncompressed images through a ``numpy.memmap`` of just the rows asked for (at the data
offset astropy reports), which is unmapped when the window is released, so the resident
memory never holds more than the rows being tiled, however large the mosaic; tile-compressed
images (``CompImageHDU``) through astropy's ``section``, which decompresses only the tiles
it needs. ``BSCALE``/``BZERO``/``BLANK`` are applied. Whole-file compression (``.gz``,
``.bz2``, ...) cannot be read piecewise and is refused with a clear message.

Units: every band is converted to nJy per pixel with :func:`flux_factor` from ``BUNIT``
(or a unit given by the caller): flux densities (``Jy``, ``nJy``, ...) as they are, surface
brightness (``MJy/sr``, ``uJy/arcsec2``, ...) times the pixel solid angle from the WCS,
``Jy/pix`` times one pixel, count rates (``electron/s``, ``counts/s``) times ``PHOTFNU``
(Jy s per count, as HST writes it).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.options import Options, option

#: suffixes of whole-file compression, which defeats memory mapping
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".z")
_SPEC = re.compile(r"^(?P<path>.+?)\[(?P<ext>[^\[\]]+)\]$")
#: count-rate units of HST-style images (astropy does not parse ``ELECTRONS/S``)
_COUNT_RATES = {"electrons/s", "electron/s", "e/s", "e-/s", "counts/s", "count/s", "cps",
                "dn/s", "adu/s"}
_BITPIX_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


class MosaicError(InputError):
    """A mosaic, its companion maps or its catalog cannot be used as given."""


def split_spec(spec: str | os.PathLike) -> tuple[str, int | str | tuple[str, int] | None]:
    """Split ``path[EXT]`` into the path and the extension (name, (name, ver) or number).

    >>> split_spec("m.fits[SCI]")
    ('m.fits', 'SCI')
    >>> split_spec("m.fits[SCI,2]")
    ('m.fits', ('SCI', 2))
    >>> split_spec("m.fits[1]")
    ('m.fits', 1)
    """
    text = os.fspath(spec).strip()
    m = _SPEC.match(text)
    if not m:
        return text, None
    path, ext = m.group("path"), m.group("ext").strip()
    if "," in ext:
        name, ver = (p.strip() for p in ext.split(",", 1))
        if not ver.isdigit():
            raise MosaicError(f"{spec}: extension version must be an integer, got {ver!r}")
        return path, (name, int(ver))
    return path, int(ext) if ext.isdigit() else ext


def optional_celestial_wcs(header, where: str):
    """The celestial WCS of a header, or None when it has none.

    Raises
    ------
    MosaicError
        If its WCS keywords cannot be read (naming ``where``).
    """
    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, naxis=2)
        except Exception as err:  # astropy raises several types for broken WCS keywords
            raise MosaicError(f"{where}: cannot read its WCS: {err}") from err
    return wcs if wcs.has_celestial and wcs.naxis == 2 else None


def _celestial_wcs(header, where: str):
    wcs = optional_celestial_wcs(header, where)
    if wcs is None:
        raise MosaicError(f"{where} has no celestial WCS (CTYPE1/2 = "
                          f"{header.get('CTYPE1')!r}/{header.get('CTYPE2')!r}); every mosaic "
                          "needs one to place the catalog on its pixels")
    return wcs


@dataclass
class MosaicImage:
    """One 2-D image HDU of a FITS file, read window by window.

    Use :meth:`open`; the object holds only the header and where the pixels are.
    """

    spec: str
    path: str
    hdu_index: int
    header: Any
    shape: tuple[int, int]
    compressed: bool
    data_offset: int | None
    dtype: str
    label: str = "mosaic"

    @classmethod
    def open(cls, spec: str | os.PathLike, what: str = "mosaic") -> MosaicImage:
        """Open ``path[EXT]`` (see :func:`split_spec`) and check it is a 2-D image.

        Raises
        ------
        MosaicError
            Missing file, whole-file compression, no such extension, not a 2-D image.
        """
        from astropy.io import fits

        path, ext = split_spec(spec)
        where = f"{what} {spec}"
        if not os.path.isfile(path):
            raise MosaicError(f"{where}: file {path} does not exist")
        if path.lower().endswith(_COMPRESSED_SUFFIXES):
            raise MosaicError(f"{where}: compressed files cannot be memory-mapped; decompress "
                              "it first (e.g. gunzip), or use FITS tile compression (fpack)")
        try:
            with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
                index = cls._find_hdu(hdul, ext, where)
                hdu = hdul[index]
                header = hdu.header.copy()
                compressed = isinstance(hdu, fits.CompImageHDU)
                offset = None if compressed else int(hdu.fileinfo()["datLoc"])
        except OSError as err:
            raise MosaicError(f"{where} is not a readable FITS file: {err}") from err
        if int(header.get("NAXIS", 0)) != 2:
            raise MosaicError(f"{where}: expected a 2-D image, got NAXIS = "
                              f"{header.get('NAXIS', 0)}")
        shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
        bitpix = int(header["BITPIX"])
        if bitpix not in _BITPIX_DTYPES:
            raise MosaicError(f"{where}: unsupported BITPIX {bitpix}")
        return cls(spec=os.fspath(spec), path=path, hdu_index=index, header=header,
                   shape=shape, compressed=compressed, data_offset=offset,
                   dtype=_BITPIX_DTYPES[bitpix], label=what)

    @staticmethod
    def _find_hdu(hdul, ext, where: str) -> int:
        from astropy.io import fits

        images = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)
        if ext is None:
            for i, hdu in enumerate(hdul):
                if isinstance(hdu, images) and int(hdu.header.get("NAXIS", 0)) >= 2:
                    return i
            raise MosaicError(f"{where}: no image HDU in the file")
        try:
            index = hdul.index_of(ext)
        except (KeyError, IndexError):
            names = [h.name for h in hdul]
            raise MosaicError(f"{where}: no extension {ext!r}; the file has {names}") from None
        hdu = hdul[index]
        if not isinstance(hdu, images):
            raise MosaicError(f"{where}: extension {ext!r} is a {type(hdu).__name__}, "
                              "not an image")
        return index

    @property
    def wcs(self):
        """The celestial WCS (MosaicError if there is none)."""
        return _celestial_wcs(self.header, f"{self.label} {self.spec}")

    @property
    def scaling(self) -> tuple[float, float, int | None]:
        """``BSCALE``, ``BZERO`` and ``BLANK`` (None) of the stored values."""
        if self.compressed:  # astropy's section applies them
            return 1.0, 0.0, None
        blank = self.header.get("BLANK")
        return (float(self.header.get("BSCALE", 1.0)), float(self.header.get("BZERO", 0.0)),
                None if blank is None or self.dtype.startswith(">f") else int(blank))

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` as float32 (NaN where BLANK); the window is padded with
        NaN where it extends beyond the image."""
        ny, nx = self.shape
        out = np.full((y1 - y0, x1 - x0), np.nan, dtype=np.float32)
        ry0, ry1, rx0, rx1 = max(y0, 0), min(y1, ny), max(x0, 0), min(x1, nx)
        if ry0 >= ry1 or rx0 >= rx1:
            return out
        out[ry0 - y0:ry1 - y0, rx0 - x0:rx1 - x0] = self._read_inside(ry0, ry1, rx0, rx1)
        return out

    def _read_inside(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        if self.compressed:
            from astropy.io import fits

            with fits.open(self.path, memmap=True) as hdul:
                return np.asarray(hdul[self.hdu_index].section[y0:y1, x0:x1], np.float32)
        nx = self.shape[1]
        itemsize = np.dtype(self.dtype).itemsize
        # a map of just these rows; it is unmapped (its pages leave the resident set) when
        # this function returns, as only the converted copy survives
        rows = np.memmap(self.path, dtype=self.dtype, mode="r",
                         offset=self.data_offset + y0 * nx * itemsize, shape=(y1 - y0, nx))
        raw = rows[:, x0:x1]
        bscale, bzero, blank = self.scaling
        values = raw.astype(np.float32)
        if blank is not None:
            values[raw == blank] = np.nan
        if bscale != 1.0 or bzero != 0.0:
            values = values * np.float32(bscale) + np.float32(bzero)
        return values

    def read_labels(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Integer pixels ``[y0:y1, x0:x1]`` (a segmentation map) as int64, 0 outside."""
        ny, nx = self.shape
        out = np.zeros((y1 - y0, x1 - x0), dtype=np.int64)
        ry0, ry1, rx0, rx1 = max(y0, 0), min(y1, ny), max(x0, 0), min(x1, nx)
        if ry0 >= ry1 or rx0 >= rx1:
            return out
        if self.compressed:
            from astropy.io import fits

            with fits.open(self.path, memmap=True) as hdul:
                part = np.asarray(hdul[self.hdu_index].section[ry0:ry1, rx0:rx1])
        else:
            itemsize = np.dtype(self.dtype).itemsize
            rows = np.memmap(self.path, dtype=self.dtype, mode="r",
                             offset=self.data_offset + ry0 * nx * itemsize,
                             shape=(ry1 - ry0, nx))
            part = np.array(rows[:, rx0:rx1])
            del rows
            bscale, bzero, _ = self.scaling
            if bscale != 1.0 or bzero != 0.0:
                part = np.rint(part * bscale + bzero)
        if part.dtype.kind == "f":
            part = np.where(np.isfinite(part), part, 0)
        out[ry0 - y0:ry1 - y0, rx0 - x0:rx1 - x0] = part.astype(np.int64)
        return out


def pixel_area_sr(wcs) -> float:
    """Solid angle (steradian) of a pixel at the WCS reference point."""
    from astropy import units as u
    from astropy.wcs.utils import proj_plane_pixel_area

    return float((proj_plane_pixel_area(wcs) * u.deg**2).to_value(u.sr))


def flux_factor(unit_text: str | None, header, wcs, where: str) -> float:
    """Factor that turns pixel values in ``unit_text`` into nJy per pixel.

    Parameters
    ----------
    unit_text
        The unit (``BUNIT`` or given by the caller); None or empty is an error.
    header
        The image header (for ``PHOTFNU`` of count-rate images).
    wcs
        The image's WCS (for the pixel solid angle).
    where
        Names the band and file in messages.

    Raises
    ------
    MosaicError
        If the unit is missing, unknown, or not a flux density, surface brightness, flux
        per pixel or count rate with ``PHOTFNU``.
    """
    from astropy import units as u

    if not unit_text or not str(unit_text).strip():
        raise MosaicError(f"{where}: no BUNIT in the header; give the unit of the pixels "
                          "(e.g. units: {band: 'MJy/sr'})")
    text = str(unit_text).strip()
    if text.lower().replace(" ", "") in _COUNT_RATES:
        photfnu = header.get("PHOTFNU")
        if photfnu is None or not float(photfnu) > 0:
            raise MosaicError(f"{where}: pixels in {text} need PHOTFNU (Jy s per count) in "
                              "the header to become fluxes")
        return float(photfnu) * 1.0e9
    unit = None
    for fmt in ("fits", "generic"):
        try:
            unit = u.Unit(text, format=fmt, parse_strict="raise")
            break
        except ValueError:
            continue
    if unit is None:
        raise MosaicError(f"{where}: cannot parse the unit {text!r}")
    njy = u.nJy
    if unit.is_equivalent(njy):
        return float(unit.to(njy))
    if unit.is_equivalent(njy / u.sr):
        return float((1.0 * unit * (pixel_area_sr(wcs) * u.sr)).to_value(njy))
    if unit.is_equivalent(njy / u.pix):
        return float((1.0 * unit * u.pix).to_value(njy))
    raise MosaicError(f"{where}: unit {text!r} is not a flux density, surface brightness, "
                      "flux per pixel or count rate")


@dataclass(frozen=True, kw_only=True)
class MosaicMapOptions(Options):
    """The per-band maps of a field: mosaics, error or weight maps and pixel units (the
    options shared by ``rail-deepdisc survey`` and ``tile``)."""

    images: dict[str, str] = option(
        help="a band's FITS mosaic, path or path[EXT] (bands in channel order, blue to red)",
        flag="image", metavar="BAND=PATH", path=True)
    errors: dict[str, str] = option(
        {}, "a band's error map (standard deviation, path[EXT])", flag="error",
        metavar="BAND=PATH", path=True)
    weights: dict[str, str] = option(
        {}, "a band's weight map (inverse variance, path[EXT])", flag="weight",
        metavar="BAND=PATH", path=True)
    units: dict[str, str] = option(
        {}, "unit of a band's pixels (default: its BUNIT)", flag="unit", metavar="BAND=UNIT")

    #: the further per-band options of a subclass, checked to name bands with a mosaic
    per_band_options: ClassVar[tuple[str, ...]] = ()

    def _check(self) -> None:
        """Every per-band map names a band that has a mosaic, and no band has both an error
        and a weight map.

        Raises
        ------
        OptionError
            Naming the option and the bands.
        """
        if not self.images:
            raise OptionError("give at least one band's mosaic (images: {band: path}, or "
                              "--image BAND=PATH)")
        for name in ("errors", "weights", "units", *self.per_band_options):
            unknown = sorted(set(getattr(self, name)) - set(self.images))
            if unknown:
                raise OptionError(f"{name} names bands {unknown} that have no mosaic; the "
                                  f"bands are {list(self.images)}")
        both = sorted(set(self.errors) & set(self.weights))
        if both:
            raise OptionError(f"bands {both} have both an error and a weight map; give one")

    def input_paths(self) -> list[str]:
        """Every file the options name (mosaics, maps and a subclass's further path options:
        PSFs, segmentation map, spectra), without FITS extensions; the options marked
        ``path=True`` are the one list of which options are files."""
        return [split_spec(v)[0] for v in self.path_values().values()]


def check_same_grid(reference: MosaicImage, other: MosaicImage, name: str, ref_name: str,
                    tolerance: float = 1.0e-3, require_wcs: bool = True) -> None:
    """Raise MosaicError unless ``other`` is on the pixel grid of ``reference``.

    The shapes must be equal and the WCSs must map a 5 x 5 lattice of pixels spanning the
    image to the same sky positions within ``tolerance`` pixels (so equivalent headers
    written differently, CD vs PC + CDELT, pass). Without ``require_wcs`` an image without
    celestial WCS keywords (e.g. a segmentation map) is accepted on its shape.
    """
    if other.shape != reference.shape:
        raise MosaicError(f"{name} ({other.spec}) is {other.shape[1]} x {other.shape[0]} "
                          f"pixels but {ref_name} ({reference.spec}) is {reference.shape[1]} "
                          f"x {reference.shape[0]}: every map must be on one pixel grid "
                          "(reproject first)")
    if not require_wcs and not _has_wcs_keywords(other.header):
        return
    ref_wcs, wcs = reference.wcs, other.wcs
    ny, nx = reference.shape
    gx, gy = np.meshgrid(np.linspace(0, nx - 1, 5), np.linspace(0, ny - 1, 5))
    ra, dec = wcs.all_pix2world(gx.ravel(), gy.ravel(), 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            px, py = ref_wcs.all_world2pix(ra, dec, 0, tolerance=1e-6, maxiter=50,
                                           quiet=True)
        except Exception:  # pragma: no cover - astropy's convergence failure on wild WCSs
            px, py = np.full(ra.shape, np.inf), np.full(ra.shape, np.inf)
    offset = np.hypot(px - gx.ravel(), py - gy.ravel())
    worst = float(np.nanmax(np.where(np.isfinite(offset), offset, np.inf)))
    if not worst <= tolerance:
        raise MosaicError(f"{name} ({other.spec}) is not on the pixel grid of {ref_name} "
                          f"({reference.spec}): the same pixel differs by up to "
                          f"{worst:.3g} pixels on the sky (reproject first)")


def _has_wcs_keywords(header) -> bool:
    return any(k in header for k in ("CTYPE1", "CTYPE2", "CRVAL1", "CD1_1", "PC1_1"))
