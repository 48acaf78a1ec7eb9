"""A survey file measured from the user's own mosaics (``rail-deepdisc survey``).

From per-band FITS mosaics (+ error or weight maps, + PSF images) this module writes a
survey file (:mod:`rail.deepdisc.sim.survey_file`) whose simulations look like the data:

* pixel scale from the WCS (astropy; square pixels, the same in every band);
* per-band pixel noise: the median of the error map (standard deviation) or of
  ``1/sqrt(weight)`` (inverse variance) over the footprint (pixels with data), with its
  16th/84th percentiles recorded; without either map, the robust standard deviation of the
  source-masked sky. Values are sampled evenly over the mosaic (at most
  :data:`MAX_SAMPLES` pixels);
* the noise correlation from the empty sky of a central window: the autocorrelation of the
  source-masked sky (in units of the error map) out to :data:`MAX_LAG` pixels; when any lag
  is significantly correlated, the kernel whose autocorrelation it is (square root of the
  power spectrum) is written as a FITS file beside the survey file;
* PSFs from the given FITS images (pixel scale from ``PIXELSCL``, or ``OVERSAMP`` times the
  mosaic's, else the mosaic's), or built from isolated point sources in the window with
  photutils' ``EPSFBuilder`` (an effective PSF, oversampled when there are many stars;
  written beside the survey file);
* the depths follow from the noise (5 sigma in ``depth_aperture_arcsec``, by default the
  noise-equivalent radius of the broadest PSF, i.e. point-source depths).

Everything is written atomically; an output that names an input is refused before any work.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.options import option
from rail.deepdisc.spectra.bands import band_filter
from rail.deepdisc.store.atomic import atomic_output
from rail.deepdisc.store.mosaic_io import (
    MosaicImage,
    MosaicMapOptions,
    check_same_grid,
    flux_factor,
    split_spec,
)
from rail.deepdisc.store.write_guard import WriteGuard, file_set

log = logging.getLogger(__name__)

#: most pixels sampled per band for the noise statistics
MAX_SAMPLES = 4_000_000
#: largest lag (pixels) of the measured noise correlation
MAX_LAG = 3
#: fewest point sources an empirical PSF is built from
MIN_STARS = 5


@dataclass(frozen=True, kw_only=True)
class MosaicSurveyOptions(MosaicMapOptions):
    """What ``rail-deepdisc survey`` reads and how it measures a survey from it."""

    psfs: dict[str, str] = option(
        {}, "a band's PSF image (FITS; default: built from stars in the mosaic)", flag="psf",
        metavar="BAND=PATH", path=True)
    filters: dict[str, str] = option(
        {}, "a band's filter: astro-sedpy name or curve file (default: the band name)",
        flag="filter", metavar="BAND=FILTER")
    survey_name: str = option("", "survey name (default: the output file's name)", flag="name")
    detection_band: str = option("", "detection band (default: the middle band)")
    depth_aperture_arcsec: float | None = option(
        None, "radius (arcsec) of the aperture of the depths (default: the noise-equivalent "
        "radius of the broadest PSF)", gt=0)
    mag_limit: float | None = option(
        None, "population magnitude limit (default: the detection band's depth)", gt=10, lt=40)
    zmax: float = option(6.0, "highest redshift of simulated populations", gt=0, le=16)
    window: int = option(
        2048, "side (pixels) of the central window where the sky correlation and PSF stars "
        "are measured", ge=64, le=16384)
    psf_oversampling: int | None = option(
        None, "oversampling of PSFs built from stars (default: 1 from fewer than 25 stars, "
        "2 from fewer than 100, else 4)", ge=1, le=8)

    def _check(self) -> None:
        super()._check()
        if self.detection_band and self.detection_band not in self.images:
            raise OptionError(f"detection_band {self.detection_band!r} is not among the "
                              f"bands {list(self.images)}")
        for band in self.images:
            name = self.filters.get(band, band)
            if band_filter(name) is None and not os.path.isfile(name):
                raise OptionError(f"band {band}: no filter curve {name!r} (an astro-sedpy "
                                  "name or a file); give --filter BAND=FILTER")

    per_band_options = ("psfs", "filters")

    @property
    def detection(self) -> str:
        bands = list(self.images)
        return self.detection_band or bands[len(bands) // 2]


@dataclass
class BandMeasurement:
    """What was measured in one band (noise in nJy per pixel)."""

    band: str
    sigma: float
    sigma_p16: float
    sigma_p84: float
    n_pixels: int
    sky_over_error: float
    kernel: np.ndarray | None
    psf: dict[str, Any]
    psf_source: str
    extra_files: dict[str, np.ndarray] = field(default_factory=dict)


# --- reading ------------------------------------------------------------------------------
def pixel_scale_arcsec(image: MosaicImage) -> float:
    """Side (arcsec) of the mosaic's square pixels, from its WCS.

    Raises
    ------
    InputError
        If the pixels are not square.
    """
    from astropy.wcs.utils import proj_plane_pixel_scales

    sx, sy = proj_plane_pixel_scales(image.wcs.celestial) * 3600.0
    if abs(sx - sy) > 1e-6 * max(sx, sy):
        raise InputError(f"{image.label} {image.spec}: pixels are {sx:.6g}\" x {sy:.6g}\", "
                         "not square; reproject the mosaic onto square pixels")
    return float(f"{0.5 * (sx + sy):.10g}")


def _strided_rows(image: MosaicImage, stride: int, rows_per_read: int = 512):
    """The mosaic sampled every ``stride`` pixels in both axes, strip by strip."""
    ny, nx = image.shape
    for y0 in range(0, ny, rows_per_read):
        y1 = min(y0 + rows_per_read, ny)
        strip = image.read(y0, y1, 0, nx)
        yield strip[(-y0) % stride::stride, ::stride]


def _to_sigma(aux: np.ndarray, kind: str, factor: float) -> np.ndarray:
    """Noise (nJy) from an error map (sigma) or a weight map (inverse variance); NaN where
    there is none."""
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = aux * factor if kind == "error" else factor / np.sqrt(aux)
    return np.where(np.isfinite(sigma) & (sigma > 0), sigma, np.nan)


def _sample_sigma(image: MosaicImage, noise: MosaicImage, kind: str, factor: float
                  ) -> np.ndarray:
    """Per-pixel noise (nJy) on an even sample of the footprint (pixels with data)."""
    stride = max(1, int(np.ceil(np.sqrt(image.shape[0] * image.shape[1] / MAX_SAMPLES))))
    out = []
    for sci, aux in zip(_strided_rows(image, stride), _strided_rows(noise, stride),
                        strict=True):
        sigma = _to_sigma(aux.astype(float), kind, factor)
        out.append(sigma[np.isfinite(sci) & np.isfinite(sigma)])
    return np.concatenate(out)


def _window(image: MosaicImage, side: int) -> tuple[int, int, int, int]:
    ny, nx = image.shape
    hy, hx = min(side, ny), min(side, nx)
    y0, x0 = (ny - hy) // 2, (nx - hx) // 2
    return y0, y0 + hy, x0, x0 + hx


# --- sky: source mask, noise, correlation --------------------------------------------------
def robust_std(values: np.ndarray) -> float:
    """1.4826 x the median absolute deviation."""
    values = values[np.isfinite(values)]
    return float(1.4826 * np.median(np.abs(values - np.median(values)))) if values.size \
        else float("nan")


def sky_mask(snr: np.ndarray, dilate: int = 8) -> np.ndarray:
    """Pixels of empty sky: finite, and at least ``dilate`` pixels away from sources
    detected in ``snr`` (an image in units of its noise) at 2.5 sigma after smoothing by
    Gaussians of 1 and 3 pixels (compact and extended sources)."""
    from photutils.segmentation import detect_sources
    from scipy import ndimage

    finite = np.isfinite(snr)
    sources = np.zeros(snr.shape, bool)
    if not finite.any():  # no data (or no noise) anywhere: no sky; the caller says so
        return finite
    for scale in (1.0, 3.0):
        smooth = ndimage.gaussian_filter(np.where(finite, snr, 0.0), scale)
        spread = robust_std(smooth[finite])
        if not (np.isfinite(spread) and spread > 0):  # a constant image: no sources
            continue
        seg = detect_sources(smooth, 2.5 * spread, n_pixels=5, mask=~finite)
        if seg is not None:
            sources |= seg.data > 0
    return finite & ~ndimage.binary_dilation(sources, iterations=dilate)


def sky_autocorrelation(values: np.ndarray, mask: np.ndarray, max_lag: int = MAX_LAG
                        ) -> np.ndarray:
    """Normalised autocorrelation (peak 1) of the masked pixels, lags -L..L on each axis.

    Light left in the sky (wings of sources, faint undetected ones, background structure)
    is correlated over many pixels, unlike the noise of resampling, which is correlated
    over one or two: the mean autocorrelation at lags L to 2 L is taken as that light's and
    removed (``(acf - far) / (1 - far)``).
    """
    far = 2 * max_lag
    x = np.where(mask, values - np.median(values[mask]), 0.0)
    m = mask.astype(float)
    shape = (x.shape[0] + far, x.shape[1] + far)
    fx, fm = np.fft.rfft2(x, shape), np.fft.rfft2(m, shape)
    num = np.fft.irfft2(np.abs(fx) ** 2, shape)
    pairs = np.fft.irfft2(np.abs(fm) ** 2, shape)
    lags = np.arange(-far, far + 1)
    acf = num[np.ix_(lags, lags)] / np.maximum(pairs[np.ix_(lags, lags)], 1.0)
    acf /= acf[far, far]
    r = np.hypot(*np.meshgrid(lags, lags))
    base = float(np.mean(acf[(r >= max_lag) & (r <= far)]))
    acf = (acf - base) / (1.0 - base)
    return acf[far - max_lag:far + max_lag + 1, far - max_lag:far + max_lag + 1]


def kernel_from_autocorrelation(acf: np.ndarray, n_pixels: int) -> np.ndarray | None:
    """A unit-norm kernel whose noise has this autocorrelation; None if it is white.

    Resampling correlates neighbours much more than pixels two apart, while light left in
    the sky correlates both alike: the noise counts as correlated when the autocorrelation
    drops from lag 1 to lag 2 (along either axis) by more than ``max(0.04,
    5/sqrt(n_pixels))``.
    """
    lag = acf.shape[0] // 2
    drop = max(acf[lag, lag + 1] - acf[lag, lag + 2], acf[lag + 1, lag] - acf[lag + 2, lag])
    if drop < max(0.04, 5.0 / np.sqrt(max(n_pixels, 1))):
        return None
    size = 4 * lag + 1
    padded = np.zeros((size, size))
    padded[lag:3 * lag + 1, lag:3 * lag + 1] = acf
    power = np.clip(np.fft.fft2(np.fft.ifftshift(padded)).real, 0.0, None)
    kernel = np.fft.fftshift(np.fft.ifft2(np.sqrt(power)).real)
    kernel = kernel[lag:3 * lag + 1, lag:3 * lag + 1]
    return kernel / np.sqrt(np.sum(kernel**2))


# --- PSF ----------------------------------------------------------------------------------
def psf_from_file(path: str, mosaic_scale: float) -> dict[str, Any]:
    """The survey-file PSF spec of a given PSF image (checked when the file is read)."""
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            header = next(h.header for h in hdul if h.data is not None)
    except (OSError, StopIteration) as err:
        raise InputError(f"cannot read a PSF image from {path}: {err!r}") from err
    if "PIXELSCL" in header:
        return {"kind": "image", "file": path, "pixel_scale": float(header["PIXELSCL"])}
    over = header.get("OVERSAMP") or header.get("DET_SAMP") or 1
    return {"kind": "image", "file": path, "pixel_scale": mosaic_scale / float(over)}


def find_stars(sci: np.ndarray, sigma: float, snr_min: float = 50.0
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """Isolated, round, bright point sources: x, y and their median FWHM (pixels).

    Stars are the compact end of the size distribution: within 15% of the median FWHM of
    the five most compact bright round sources.
    """
    from photutils.segmentation import SourceCatalog, detect_sources

    finite = np.isfinite(sci)
    data = np.where(finite, sci, 0.0)
    seg = detect_sources(data, 5.0 * sigma, n_pixels=5, mask=~finite)
    if seg is None:
        return np.zeros(0), np.zeros(0), float("nan")
    cat = SourceCatalog(data, seg, mask=~finite)
    flux, area = np.asarray(cat.segment_flux), np.asarray(cat.area.value)
    fwhm = np.asarray(cat.fwhm.value)
    x, y = (np.asarray(c, float) for c in _centroids(cat))
    snr = flux / (sigma * np.sqrt(area))
    bright = (snr > snr_min) & (np.asarray(cat.ellipticity.value) < 0.15) & np.isfinite(fwhm)
    if bright.sum() < MIN_STARS:
        return np.zeros(0), np.zeros(0), float("nan")
    ref = float(np.median(np.sort(fwhm[bright])[:MIN_STARS]))
    near = np.abs(fwhm - ref) < 0.15 * ref
    stars = bright & near & _isolated(x, y, 6.0 * ref)
    return x[stars], y[stars], ref


def _centroids(cat) -> tuple[np.ndarray, np.ndarray]:
    """x, y centroids of a photutils SourceCatalog (``x_centroid`` since photutils 3)."""
    if hasattr(type(cat), "x_centroid"):
        return cat.x_centroid, cat.y_centroid
    return cat.xcentroid, cat.ycentroid


def _isolated(x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    from scipy.spatial import cKDTree

    if x.size < 2:
        return np.ones(x.size, bool)
    d, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([x, y]), k=2)
    return d[:, 1] > radius


def build_epsf(sci: np.ndarray, x: np.ndarray, y: np.ndarray, fwhm_pix: float,
               oversampling: int) -> np.ndarray:
    """An effective PSF (odd square, flux 1, ``oversampling`` x finer than the mosaic)."""
    from astropy.nddata import NDData
    from astropy.table import Table
    from photutils.psf import EPSFBuilder, extract_stars

    size = int(min(101, max(15, 2 * int(4 * fwhm_pix) + 1)))
    data = np.where(np.isfinite(sci), sci, 0.0)
    stars = extract_stars(NDData(data), Table({"x": x, "y": y}), size=(size, size))
    builder = EPSFBuilder(oversampling=oversampling, maxiters=10, progress_bar=False)
    epsf, _ = builder(stars)
    image = np.asarray(epsf.data, float)
    n = min(image.shape) - (1 - min(image.shape) % 2)
    oy, ox = (image.shape[0] - n) // 2, (image.shape[1] - n) // 2
    image = image[oy:oy + n, ox:ox + n]
    return image / image.sum()


def noise_equivalent_radius(psf: dict[str, Any], pixel_scale: float) -> float:
    """Radius (arcsec) of the circle whose area is the PSF's noise-equivalent area."""
    from rail.deepdisc.sim.psf import make_psf

    image = make_psf({"bands": {"b": psf}, "wavelength_nm": {}}, "b").drawImage(
        nx=81, ny=81, scale=pixel_scale).array
    p = image / image.sum()
    return float(np.sqrt(1.0 / np.sum(p**2) / np.pi) * pixel_scale)


# --- one band -----------------------------------------------------------------------------
def measure_band(opts: MosaicSurveyOptions, band: str, scale: float, stem: Path
                 ) -> BandMeasurement:
    """Noise, its correlation and the PSF of one band."""
    image = MosaicImage.open(opts.images[band], f"band {band} mosaic")
    factor = flux_factor(opts.units.get(band) or image.header.get("BUNIT"), image.header,
                         image.wcs, f"band {band} mosaic {image.spec}")
    kind, noise = _noise_map(opts, band, image)
    y0, y1, x0, x1 = _window(image, opts.window)
    sci = image.read(y0, y1, x0, x1).astype(float) * factor
    if noise is None:  # no map: the robust spread of the empty sky
        sky = sky_mask(sci / robust_std(sci))
        sigma_map = np.full(sci.shape, robust_std(sci[sky]))
        samples = sigma_map[:1, 0]
    else:
        sigma_map = _to_sigma(noise.read(y0, y1, x0, x1).astype(float), kind, factor)
        samples = _sample_sigma(image, noise, kind, factor)
        sky = sky_mask(sci / sigma_map)
    if samples.size == 0 or sky.sum() < 1000:
        where = image.spec if noise is None else f"{image.spec} and {noise.spec}"
        raise InputError(f"band {band}: too few pixels with data and a positive noise in "
                         f"{where} to measure the noise ({int(sky.sum())} of empty sky; an "
                         "all-NaN or all-zero image or error map?)")
    snr = sci / sigma_map
    if not np.ptp(snr[sky]) > 0:  # one value everywhere: no noise to measure, no sources
        raise InputError(f"band {band}: every pixel with data in {image.spec} holds the same "
                         f"value ({float(sci[sky][0]):g}): an all-zero or constant image")
    kernel = kernel_from_autocorrelation(sky_autocorrelation(snr, sky), int(sky.sum()))
    psf, source, extra = _band_psf(opts, band, sci, float(np.nanmedian(sigma_map)), scale,
                                   stem)
    if kernel is not None:
        extra[f"noise_{band}"] = kernel
    return BandMeasurement(
        band=band, sigma=float(np.median(samples)), sigma_p16=float(np.percentile(samples, 16)),
        sigma_p84=float(np.percentile(samples, 84)), n_pixels=int(samples.size),
        sky_over_error=robust_std(snr[sky]), kernel=kernel, psf=psf, psf_source=source,
        extra_files=extra)


def _noise_map(opts: MosaicSurveyOptions, band: str, image: MosaicImage
               ) -> tuple[str, MosaicImage | None]:
    for kind, maps in (("error", opts.errors), ("weight", opts.weights)):
        if band in maps:
            aux = MosaicImage.open(maps[band], f"band {band} {kind} map")
            check_same_grid(image, aux, f"band {band} {kind} map", f"band {band} mosaic")
            return kind, aux
    return "sky", None


def _band_psf(opts: MosaicSurveyOptions, band: str, sci: np.ndarray, sigma: float,
              scale: float, stem: Path) -> tuple[dict[str, Any], str, dict[str, np.ndarray]]:
    if band in opts.psfs:
        path = str(Path(split_spec(opts.psfs[band])[0]).resolve())
        return psf_from_file(path, scale), f"file {path}", {}
    x, y, fwhm = find_stars(sci, sigma)
    if x.size < MIN_STARS:
        raise InputError(f"band {band}: found {x.size} isolated point sources in the central "
                         f"{sci.shape[1]} x {sci.shape[0]} pixels of {opts.images[band]} "
                         f"(need {MIN_STARS}) to build its PSF; give --psf {band}=PSF.fits")
    over = opts.psf_oversampling or (1 if x.size < 25 else 2 if x.size < 100 else 4)
    image = build_epsf(sci, x, y, fwhm, over)
    spec = {"kind": "image", "file": str(companion_path(stem, f"psf_{band}")),
            "pixel_scale": scale / over, "effective": True}
    return spec, f"{x.size} stars (photutils EPSFBuilder)", {f"psf_{band}": image}


# --- the survey file ----------------------------------------------------------------------
@dataclass
class MosaicSurvey:
    """A survey file written from mosaics, and what was measured."""

    output: str
    preset: Any
    bands: list[BandMeasurement]


def companion_path(stem: Path, key: str) -> Path:
    """Path of a file written beside the survey file (``<stem>_psf_<band>.fits``, ...)."""
    return stem.parent / f"{stem.name}_{key}.fits"


def survey_from_mosaics(opts: MosaicSurveyOptions, output: str | os.PathLike,
                        companion_stem: str | os.PathLike | None = None) -> MosaicSurvey:
    """Measure a survey from mosaics and write its survey file at ``output``.

    Companion FITS files (empirical PSFs, noise kernels) are written beside it as
    ``<stem>_psf_<band>.fits`` and ``<stem>_noise_<band>.fits``, where the stem is
    ``companion_stem`` (a path without suffix, in the output's directory) or the output's
    (a pipeline stage writes the survey file under a temporary name and gives its final
    stem here, so the companions are not taken for a dead run's leftovers).

    Raises
    ------
    OptionError, InputError, OutputPathError
        Bad options, unreadable or inconsistent inputs, too few stars for a PSF, or an
        output naming an input (before any work).
    """
    from rail.deepdisc.sim.survey_file import read_survey_file, write_survey_file

    opts.validate()
    inputs = opts.input_paths()
    out = Path(os.path.expanduser(os.fspath(output)))
    stem = out.with_suffix("") if companion_stem is None else Path(companion_stem)
    if stem.parent.resolve() != out.parent.resolve():
        raise OptionError(f"companion files {stem}_*.fits must be beside the survey file "
                          f"{out}")
    companions = {f"companion file {companion_path(stem, key).name}": companion_path(stem, key)
                  for band in opts.images for key in (f"psf_{band}", f"noise_{band}")}
    guard = WriteGuard(reads={"mosaics, maps and PSFs": inputs},
                       writes={**companions, "survey file (--output)": out})
    with guard:  # every output checked before any work; published together
        scale = _common_scale(opts)
        measured = [measure_band(opts, band, scale, stem) for band in opts.images]
        for m in measured:
            for key, array in m.extra_files.items():
                if not np.all(np.isfinite(array)):
                    kind = "PSF" if key.startswith("psf_") else "noise kernel"
                    raise InputError(f"band {m.band}: the measured {kind} is not finite "
                                     f"(mosaic {opts.images[m.band]}); nothing written")
        with file_set() as files:  # companions replaced only if the survey file is good
            for m in measured:
                for key, array in m.extra_files.items():
                    _write_fits(array, files.stage(companion_path(stem, key)))
            files.publish()
            aperture = opts.depth_aperture_arcsec or round(  # reads the PSF companions
                max(noise_equivalent_radius(m.psf, scale) for m in measured), 3)
            data = _survey_data(opts, out, stem, measured, scale, aperture)
            write_survey_file(data, out, tuple(inputs))
    return MosaicSurvey(output=os.fspath(out), preset=read_survey_file(out), bands=measured)


def _common_scale(opts: MosaicSurveyOptions) -> float:
    scales = {b: pixel_scale_arcsec(MosaicImage.open(spec, f"band {b} mosaic"))
              for b, spec in opts.images.items()}
    ref = next(iter(scales.values()))
    odd = {b: s for b, s in scales.items() if abs(s - ref) > 1e-6 * ref}
    if odd:
        raise InputError(f"the mosaics have different pixel scales {scales} (arcsec); a "
                         "survey has one: reproject them onto one pixel grid")
    return ref


def _write_fits(array: np.ndarray, path: Path) -> None:
    from astropy.io import fits

    with atomic_output(path, "companion file") as tmp:
        fits.PrimaryHDU(np.asarray(array, np.float32)).writeto(tmp)


def _field_center(opts: MosaicSurveyOptions) -> list[float]:
    image = MosaicImage.open(opts.images[opts.detection], "detection band mosaic")
    ny, nx = image.shape
    ra, dec = image.wcs.celestial.all_pix2world([(nx - 1) / 2], [(ny - 1) / 2], 0)
    return [round(float(ra[0]) % 360.0, 7), round(float(dec[0]), 7)]


def _survey_data(opts: MosaicSurveyOptions, out: Path, stem: Path,
                 measured: list[BandMeasurement], scale: float, aperture: float
                 ) -> dict[str, Any]:
    """The survey file's content (paths relative to the survey file)."""
    def rel(path: str | Path) -> str:
        return os.path.relpath(path, out.parent)

    bands: dict[str, Any] = {}
    for m in measured:
        name = opts.filters.get(m.band, m.band)
        psf = {**m.psf, "file": rel(m.psf["file"])} if "file" in m.psf else m.psf
        entry = {"filter": rel(name) if os.path.isfile(name) else name,
                 "pixel_noise": float(f"{m.sigma:.6g}"), "psf": psf}
        if m.kernel is not None:
            entry["noise_correlation"] = {
                "kind": "image", "file": rel(companion_path(stem, f"noise_{m.band}"))}
        bands[m.band] = entry
    population: dict[str, float] = {"zmax": opts.zmax}
    if opts.mag_limit is not None:
        population["mag_limit"] = opts.mag_limit
    return {
        "name": opts.survey_name or stem.name,
        "description": f"measured by rail-deepdisc survey from {len(measured)} mosaics",
        "reference": "; ".join(f"{b}: {spec}" for b, spec in opts.images.items()),
        "pixel_scale": scale, "flux_unit": "nJy", "depth_aperture_arcsec": aperture,
        "seeing_fwhm_arcsec": 0.0, "detection_band": opts.detection,
        "population": population, "field_center": _field_center(opts), "bands": bands,
        "measured": {m.band: _measured(m) for m in measured}}


def _measured(m: BandMeasurement) -> dict[str, Any]:
    return {"pixel_noise_median": float(f"{m.sigma:.6g}"),
            "pixel_noise_p16": float(f"{m.sigma_p16:.6g}"),
            "pixel_noise_p84": float(f"{m.sigma_p84:.6g}"), "pixels_sampled": m.n_pixels,
            "sky_std_over_error": float(f"{m.sky_over_error:.4g}"),
            "noise_correlated": m.kernel is not None, "psf_from": m.psf_source}
