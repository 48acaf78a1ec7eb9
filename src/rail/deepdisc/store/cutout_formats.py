"""Per-object cutouts as survey services deliver them: read one into calibrated pixels.

Three formats (:data:`CUTOUT_FORMATS`), each read into a :class:`Cutout` (pixels in nJy per
pixel, inverse variance in 1/nJy^2, NaN where a pixel has no data, and the celestial WCS):

``legacy``
    A Legacy Surveys cutout (``fits-cutout`` of the viewer): one FITS file per object, the
    bands stacked in a cube in the primary HDU (``NAXIS3`` bands; a single band may be 2-D),
    their names in the header (``BANDS = 'griz'`` or ``BAND0``, ``BAND1``, ...), a TAN WCS,
    pixels in nanomaggies (``BUNIT`` when the header has one). An inverse-variance cube of
    the same shape may follow as a second image HDU (the viewer's ``invvar`` option).
``hsc``
    HSC-SSP cutouts (``das_cutout``): one FITS file per band per object with ``IMAGE``,
    ``MASK`` and ``VARIANCE`` extensions (else HDUs 1, 2, 3). The calibration is
    ``FLUXMAG0`` (the counts of a zeroth-magnitude source) in the primary header (or the
    image's): the AB zero point is ``2.5 log10(FLUXMAG0)``, 27.0 for the SSP coadds; a
    ``BUNIT`` flux unit is used instead when the image has one. Pixels whose ``MASK`` has
    a bit of :attr:`hsc_mask_planes` set (bit numbers from the header's ``MP_<NAME>`` keys,
    else the HSC pipeline's defaults) get no weight, as do those with a non-positive or
    non-finite variance.
``array``
    Generic arrays (N, bands, H, W) in ``.npy``, ``.npz`` or HDF5 (a dataset or array named
    ``array_key``; optional ``ivar_key`` inverse variance and ``id_key`` ids), with the
    band list, pixel scale and unit stated; no WCS (a TAN projection centred on each
    object's catalog position is made, north up, east left).

Units (:func:`to_njy_factor`): ``nJy``, ``uJy``, ``mJy``, ``Jy`` per pixel; ``nanomaggy``
(3631 nJy); ``counts`` (also ``adu``, ``dn``, ``electron``) with ``zeropoint``, the AB
magnitude of one count; any flux density, surface brightness (``MJy/sr``, times the pixel
solid angle) or flux per pixel that astropy parses.

Every problem is an :class:`~rail.deepdisc.errors.InputError` whose one-line message names the
file (and the band, extension or key).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError
from rail.deepdisc.magnitudes import NJY_ZEROPOINT

#: the cutout formats (see the module docstring)
CUTOUT_FORMATS = ("legacy", "hsc", "array")
#: nJy per pixel of one unit, for units astropy cannot convert to nJy by itself
_NAMED_UNITS = {"nanomaggy": 3631.0, "nanomaggies": 3631.0, "nmgy": 3631.0,
                "nanomaggie": 3631.0}
#: units that are counts (a zero point makes them fluxes)
_COUNT_UNITS = {"count", "counts", "adu", "dn", "electron", "electrons", "ct"}
#: mask planes of the HSC pipeline and their default bits (used when MP_<NAME> keys are absent)
HSC_DEFAULT_PLANES = {"BAD": 0, "SAT": 1, "INTRP": 2, "CR": 3, "EDGE": 4, "DETECTED": 5,
                      "DETECTED_NEGATIVE": 6, "SUSPECT": 7, "NO_DATA": 8,
                      "BRIGHT_OBJECT": 9, "CROSSTALK": 10, "NOT_DEBLENDED": 11,
                      "UNMASKEDNAN": 12}
_HSC_EXTENSIONS = (("IMAGE", 1), ("MASK", 2), ("VARIANCE", 3))
#: header keywords that define a celestial WCS (compared before building WCS objects)
_WCS_KEY = re.compile(r"^(CTYPE|CRVAL|CRPIX|CUNIT|CDELT)[12]$|^(CD|PC)[12]_[12]$|^(A|B|AP|BP)_|"
                      r"^(RADESYS|EQUINOX|LONPOLE|LATPOLE)$")


@dataclass
class Cutout:
    """One object's cutout in all bands.

    Attributes
    ----------
    image
        float32 (C, H, W), nJy per pixel; NaN where there are no data.
    ivar
        float32 (C, H, W) inverse variance (1/nJy^2), or None when the cutout has none;
        0 or NaN where there are no data.
    header
        FITS header holding the celestial WCS (None: the cutout has no WCS).
    source
        The file(s) it was read from, for messages.
    wcs
        The celestial WCS of ``header``, once built (:meth:`celestial`).
    """

    image: np.ndarray
    ivar: np.ndarray | None
    header: Any
    source: str
    wcs: Any = None

    def celestial(self):
        """The celestial WCS (built from ``header`` once; None without one)."""
        if self.wcs is None and self.header is not None:
            self.wcs = celestial_wcs(self.header, self.source)
        return self.wcs


def to_njy_factor(unit: str, zeropoint: float | None, header: Any, wcs: Any,
                  where: str) -> float:
    """Factor that turns pixel values in ``unit`` into nJy per pixel.

    Raises
    ------
    InputError
        A missing unit, counts without a zero point, or a unit that is not a flux.
    """
    from rail.deepdisc.store.mosaic_io import flux_factor

    text = (unit or "").strip()
    if not text:
        raise InputError(f"{where}: the unit of its pixels is missing; give it (unit: nJy, "
                         "nanomaggy, MJy/sr, counts with zeropoint, ...)")
    key = text.lower().replace(" ", "")
    if key in _NAMED_UNITS:
        return _NAMED_UNITS[key]
    if key in _COUNT_UNITS:
        if zeropoint is None:
            raise InputError(f"{where}: pixels in {text} need a zero point (the AB magnitude "
                             "of one count, option zeropoint) to become fluxes")
        return float(10.0 ** (0.4 * (NJY_ZEROPOINT - zeropoint)))
    if wcs is None and header is not None and not _is_flux_density(text):
        wcs = celestial_wcs(header, where)  # surface brightness: the pixel's solid angle
    return flux_factor(text, header, wcs, where)


def _is_flux_density(text: str) -> bool:
    from astropy import units as u

    try:
        return u.Unit(text, parse_strict="silent").is_equivalent(u.nJy)
    except (ValueError, TypeError):
        return False


def celestial_wcs(header: Any, where: str):
    """The celestial WCS of a header, or None when it has none (a broken one is an error)."""
    from rail.deepdisc.store.mosaic_io import optional_celestial_wcs

    return None if header is None else optional_celestial_wcs(header, where)


def tangent_header(ra: float, dec: float, pixel_scale: float, height: int, width: int):
    """A TAN WCS header with (ra, dec) at the centre of an image, north up, east left."""
    from astropy.io import fits

    header = fits.Header()
    header.update({"NAXIS": 2, "NAXIS1": int(width), "NAXIS2": int(height),
                   "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CUNIT1": "deg",
                   "CUNIT2": "deg", "CRVAL1": float(ra), "CRVAL2": float(dec),
                   "CRPIX1": (width + 1) / 2.0, "CRPIX2": (height + 1) / 2.0,
                   "CD1_1": -pixel_scale / 3600.0, "CD1_2": 0.0, "CD2_1": 0.0,
                   "CD2_2": pixel_scale / 3600.0, "RADESYS": "ICRS"})
    return header


def shifted_wcs_header(header: Any, dx: float, dy: float, height: int, width: int) -> str:
    """FITS header text of a WCS whose pixel ``(i, j)`` is pixel ``(i - dx, j - dy)`` of
    ``header``'s (an image padded by ``dx``, ``dy`` before, or cut from ``-dx``, ``-dy``),
    of ``width`` x ``height`` pixels (``header``: a FITS header, its text or a WCS)."""
    from astropy.wcs import WCS

    if isinstance(header, (str, bytes)):
        from astropy.io import fits

        header = fits.Header.fromstring(header.decode() if isinstance(header, bytes)
                                        else header)
    wcs = header.deepcopy() if isinstance(header, WCS) else celestial_wcs(header, "cutout")
    wcs.wcs.crpix = wcs.wcs.crpix + np.array([dx, dy], float)
    out = wcs.to_header(relax=True)
    out["NAXIS1"], out["NAXIS2"] = int(width), int(height)
    return out.tostring()


def _open_fits(path: str, what: str):
    from astropy.io import fits

    if not os.path.isfile(path):
        raise InputError(f"{what} {path} does not exist")
    try:
        return fits.open(path, memmap=False)
    except OSError as err:
        raise InputError(f"{what} {path} is not a readable FITS file: {err}") from err


# --------------------------------------------------------------------------- legacy
def legacy_band_letters(header: Any, path: str) -> list[str]:
    """The band names of a Legacy Surveys cutout header (``BANDS`` or ``BAND0``, ...)."""
    if "BANDS" in header:
        return list(str(header["BANDS"]).strip())
    letters = []
    while f"BAND{len(letters)}" in header:
        letters.append(str(header[f"BAND{len(letters)}"]).strip())
    if not letters:
        raise InputError(f"Legacy Surveys cutout {path}: no band list in its header (BANDS "
                         "or BAND0, BAND1, ...)")
    return letters


def read_legacy(path: str, unit: str, zeropoint: float | None) -> tuple[Cutout, list[str]]:
    """Read a Legacy Surveys cutout file; returns it and its band letters (header order).

    Raises
    ------
    InputError
        Not a cube, a band count that differs from the header's band list, an inverse
        variance of another shape, an unknown unit (naming the file).
    """
    with _open_fits(path, "Legacy Surveys cutout") as hdul:
        images = [h for h in hdul if h.is_image and h.data is not None]
        if not images:
            raise InputError(f"Legacy Surveys cutout {path} holds no image")
        data = np.asarray(images[0].data, np.float32)
        header = images[0].header.copy()
        ivar = np.asarray(images[1].data, np.float32) if len(images) > 1 else None
    if data.ndim == 2:
        data = data[None]
        ivar = None if ivar is None else ivar.reshape(data.shape)
    if data.ndim != 3:
        raise InputError(f"Legacy Surveys cutout {path}: expected a (bands, height, width) "
                         f"cube, got shape {data.shape}")
    letters = legacy_band_letters(header, path)
    if len(letters) != data.shape[0]:
        raise InputError(f"Legacy Surveys cutout {path}: its cube holds {data.shape[0]} bands "
                         f"but its header lists {len(letters)} ({''.join(letters)})")
    if ivar is not None and ivar.shape != data.shape:
        raise InputError(f"Legacy Surveys cutout {path}: its inverse variance (HDU 1) has "
                         f"shape {ivar.shape}, its image {data.shape}")
    wcs = celestial_wcs(header, f"Legacy Surveys cutout {path}")
    factor = to_njy_factor(unit or str(header.get("BUNIT", "") or "nanomaggy"), zeropoint,
                           header, wcs, f"Legacy Surveys cutout {path}")
    image = data * np.float32(factor)
    if ivar is not None:
        ivar = ivar / np.float32(factor * factor)
    return Cutout(image, ivar, header if wcs is not None else None, path, wcs), letters


# --------------------------------------------------------------------------- hsc
def _hsc_hdu(hdul, name: str, index: int, path: str):
    names = [h.name for h in hdul]
    if name in names:
        return hdul[name]
    if len(hdul) > index and hdul[index].is_image:
        return hdul[index]
    raise InputError(f"HSC cutout {path}: no {name} extension (it has {names})")


def _hsc_bad_pixels(mask_hdu, planes: Sequence[str], path: str) -> np.ndarray:
    mask = np.asarray(mask_hdu.data).astype(np.int64)
    header = mask_hdu.header
    bits = 0
    for plane in planes:
        key = f"MP_{plane.upper()}"
        if key in header:
            bits |= 1 << int(header[key])
        elif plane.upper() in HSC_DEFAULT_PLANES:
            bits |= 1 << HSC_DEFAULT_PLANES[plane.upper()]
        else:
            raise InputError(f"HSC cutout {path}: mask plane {plane!r} is neither in its MASK "
                             f"header (MP_*) nor one of {sorted(HSC_DEFAULT_PLANES)}")
    return (mask & bits) != 0


def read_hsc_band(path: str, unit: str, zeropoint: float | None,
                  mask_planes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, Any]:
    """Pixels (nJy), inverse variance and image header of one band's HSC cutout file.

    Raises
    ------
    InputError
        A missing extension, no calibration (no ``FLUXMAG0``, ``BUNIT`` or ``zeropoint``),
        planes of different shapes (naming the file).
    """
    with _open_fits(path, "HSC cutout") as hdul:
        image_hdu = _hsc_hdu(hdul, *_HSC_EXTENSIONS[0], path)
        mask_hdu = _hsc_hdu(hdul, *_HSC_EXTENSIONS[1], path)
        var_hdu = _hsc_hdu(hdul, *_HSC_EXTENSIONS[2], path)
        header = image_hdu.header.copy()
        primary = hdul[0].header
        image = np.asarray(image_hdu.data, np.float32)
        variance = np.asarray(var_hdu.data, np.float32)
        bad = _hsc_bad_pixels(mask_hdu, mask_planes, path)
    if image.ndim != 2 or variance.shape != image.shape or bad.shape != image.shape:
        raise InputError(f"HSC cutout {path}: IMAGE {image.shape}, MASK {bad.shape} and "
                         f"VARIANCE {variance.shape} must be 2-D images of one shape")
    where = f"HSC cutout {path}"
    wcs = None  # built only where a unit needs the pixels' solid angle
    fluxmag0 = header.get("FLUXMAG0", primary.get("FLUXMAG0"))
    if unit or zeropoint is not None:
        factor = to_njy_factor(unit or "counts", zeropoint, header, wcs, where)
    elif header.get("BUNIT") and str(header["BUNIT"]).strip().lower() not in _COUNT_UNITS:
        factor = to_njy_factor(str(header["BUNIT"]), None, header, wcs, where)
    elif fluxmag0 is not None and float(fluxmag0) > 0:
        factor = to_njy_factor("counts", 2.5 * np.log10(float(fluxmag0)), header, wcs, where)
    else:
        raise InputError(f"{where}: the unit of its pixels is missing: no FLUXMAG0 in its "
                         "headers and no BUNIT flux unit; give unit or zeropoint")
    f = np.float32(factor)
    with np.errstate(divide="ignore", invalid="ignore"):
        ivar = np.where(np.isfinite(variance) & (variance > 0) & ~bad,
                        1.0 / (variance * f * f), 0.0).astype(np.float32)
    image = np.where(np.isfinite(image) & (ivar > 0), image * f, np.nan).astype(np.float32)
    return image, ivar, header if _wcs_cards(header) else None


def read_hsc(paths: Sequence[str], unit: str, zeropoint: float | None,
             mask_planes: Sequence[str]) -> Cutout:
    """One object's HSC cutouts, one file per band (in channel order), as one cutout.

    Raises
    ------
    InputError
        Bands of different shapes or on different pixel grids (naming both files).
    """
    planes = [read_hsc_band(p, unit, zeropoint, mask_planes) for p in paths]
    ref_image, _, ref_header = planes[0]
    for path, (image, _, header) in zip(paths[1:], planes[1:], strict=True):
        if image.shape != ref_image.shape:
            raise InputError(f"HSC cutout {path} is {image.shape[1]} x {image.shape[0]} "
                             f"pixels but {paths[0]} is {ref_image.shape[1]} x "
                             f"{ref_image.shape[0]}: one object's bands must share a grid")
        _check_same_wcs(ref_header, header, paths[0], path)
    return Cutout(np.stack([p[0] for p in planes]), np.stack([p[1] for p in planes]),
                  ref_header, ", ".join(paths))


def _check_same_wcs(a: Any, b: Any, path_a: str, path_b: str,
                    tolerance: float = 1.0e-3) -> None:
    if (a is None) != (b is None):
        raise InputError(f"HSC cutout {path_b if b is None else path_a} has no WCS but "
                         f"{path_a if b is None else path_b} has one")
    if a is None or _wcs_cards(a) == _wcs_cards(b):
        return
    wa, wb = celestial_wcs(a, path_a), celestial_wcs(b, path_b)
    ny, nx = int(a.get("NAXIS2", 1)), int(a.get("NAXIS1", 1))
    gx, gy = np.meshgrid(np.linspace(0, nx - 1, 3), np.linspace(0, ny - 1, 3))
    ra, dec = wb.all_pix2world(gx.ravel(), gy.ravel(), 0)
    px, py = wa.all_world2pix(ra, dec, 0)
    worst = float(np.max(np.hypot(px - gx.ravel(), py - gy.ravel())))
    if not worst <= tolerance:
        raise InputError(f"HSC cutout {path_b} is not on the pixel grid of {path_a}: the same "
                         f"pixel differs by {worst:.3g} pixels on the sky")


def _wcs_cards(header: Any) -> dict[str, Any]:
    """The WCS keywords of a header and their values."""
    return {k: header[k] for k in header if _WCS_KEY.match(k)}


# --------------------------------------------------------------------------- arrays
class ArrayCutouts:
    """Cutouts stored as arrays (N, bands, H, W): ``.npy``, ``.npz`` or HDF5.

    Parameters
    ----------
    path
        The file.
    array_key, ivar_key, id_key
        Names of the images, the optional inverse variance and the optional ids (npz keys or
        HDF5 datasets; a ``.npy`` file holds the images only).

    Raises
    ------
    InputError
        A missing file or key, an array that is not 4-D, an ivar of another shape, ids that
        are not one positive integer per cutout (naming the file and key).
    """

    def __init__(self, path: str, array_key: str = "images", ivar_key: str = "ivar",
                 id_key: str = "id"):
        self.path = path
        if not os.path.isfile(path):
            raise InputError(f"cutout array file {path} does not exist")
        lower = path.lower()
        self._h5 = None
        if lower.endswith(".npy"):
            self.images = self._load_npy(path)
            self.ivar = self.ids = None
        elif lower.endswith(".npz"):
            try:
                data = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as err:
                raise InputError(f"cutout array file {path} is not a readable .npz: "
                                 f"{err}") from err
            self.images = self._key(data, array_key, path)
            self.ivar = data[ivar_key] if ivar_key in data.files else None
            self.ids = data[id_key] if id_key in data.files else None
        elif lower.endswith((".h5", ".hdf5", ".hdf")):
            import h5py

            try:
                self._h5 = h5py.File(path, "r")
            except OSError as err:
                raise InputError(f"cutout array file {path} is not a readable HDF5 file: "
                                 f"{err}") from err
            self.images = self._key(self._h5, array_key, path)
            self.ivar = self._h5[ivar_key] if ivar_key in self._h5 else None
            self.ids = self._h5[id_key][:] if id_key in self._h5 else None
        else:
            raise InputError(f"cutout array file {path}: unknown format (use .npy, .npz or "
                             ".hdf5)")
        if self.images.ndim != 4:
            raise InputError(f"cutout array file {path}: {array_key!r} has shape "
                             f"{self.images.shape}; cutouts are (N, bands, height, width)")
        if self.ivar is not None and self.ivar.shape != self.images.shape:
            raise InputError(f"cutout array file {path}: {ivar_key!r} has shape "
                             f"{self.ivar.shape}, the images {self.images.shape}")
        if self.ids is not None:
            ids = np.asarray(self.ids)
            if ids.shape != (self.images.shape[0],) or ids.dtype.kind not in "iu":
                raise InputError(f"cutout array file {path}: {id_key!r} must hold one integer "
                                 f"id per cutout ({self.images.shape[0]}), got {ids.dtype} "
                                 f"of shape {ids.shape}")
            self.ids = ids.astype(np.int64)

    @staticmethod
    def _load_npy(path: str) -> np.ndarray:
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(f"cutout array file {path} is not a readable .npy: {err}") from err

    @staticmethod
    def _key(container, key: str, path: str):
        names = list(container.files if hasattr(container, "files") else container.keys())
        if key not in names:
            raise InputError(f"cutout array file {path} has no array {key!r}; it has {names}")
        return container[key]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_bands(self) -> int:
        return int(self.images.shape[1])

    def read(self, i: int, factor: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Pixels (nJy) and inverse variance (1/nJy^2, or None) of cutout ``i``."""
        f = np.float32(factor)
        image = np.asarray(self.images[i], np.float32) * f
        ivar = None if self.ivar is None else np.asarray(self.ivar[i], np.float32) / (f * f)
        return image, ivar

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
