"""Survey description files (YAML): read, check and write.

The schema is documented in ``docs/surveys.md``; in short::

    name: decam_grz
    reference: where the depths and PSFs come from
    pixel_scale: 0.263              # arcsec per pixel
    depth_aperture_arcsec: 1.0      # radius of the aperture of the depths
    telescope: {diameter_m: 4.0, obscuration: 0.4}   # for airy/optical PSFs
    seeing_fwhm_arcsec: 0.9         # atmosphere of airy/optical PSFs
    psf: {kind: airy}               # default PSF of the bands that give none
    detection_band: decam_r
    population: {mag_limit: 24.5, zmax: 4.0, model: deep}   # model: deep or lowz
    field_center: [36.0, -4.5]
    noise_correlation: {kind: gaussian, fwhm_pixels: 1.2}    # optional, default of bands
    measured: {...}                 # free-form record of rail-deepdisc survey (not used)
    bands:
      decam_g: {filter: decam_g, depth: 24.8, psf: {kind: moffat, fwhm: 1.1, beta: 3.5}}
      decam_r: {filter: curves/r.dat, pixel_noise: 0.3, psf: {kind: image, file: psf_r.fits,
                pixel_scale: 0.0657}}

Every problem is an :class:`~rail.deepdisc.errors.InputError` naming the file and the key
(``bands.decam_r.psf.file``); paths inside a file are relative to the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rail.deepdisc.errors import DeepDiscError, InputError
from rail.deepdisc.magnitudes import NJY_ZEROPOINT
from rail.deepdisc.sim.noise import KERNEL_KINDS, read_fits_image, read_kernel_file
from rail.deepdisc.sim.psf import FILE_PSF_KINDS, TELESCOPE_PSF_KINDS, default_aberrations
from rail.deepdisc.sim.survey_preset import POPULATION_MODEL_NAMES, SurveyPreset
from rail.deepdisc.spectra.bands import BandFilter, band_filter, check_filters

_TOP_KEYS = ("name", "description", "reference", "pixel_scale", "flux_unit", "zeropoint",
             "depth_aperture_arcsec", "telescope", "seeing_fwhm_arcsec", "psf",
             "detection_band", "population", "field_center", "noise_correlation", "bands",
             "measured")
_REQUIRED = ("name", "pixel_scale", "depth_aperture_arcsec", "detection_band", "bands")
_BAND_KEYS = ("filter", "depth", "pixel_noise", "psf", "noise_correlation")
_TELESCOPE_KEYS = ("diameter_m", "obscuration", "struts", "strut_thickness")
_PSF_KEYS = {"airy": (), "optical": tuple(default_aberrations()), "moffat": ("fwhm", "beta"),
             "gaussian": ("fwhm",), "image": ("file", "pixel_scale", "oversampling", "effective")}
_KERNEL_KEYS = {"gaussian": ("fwhm_pixels",), "image": ("file",)}
#: AB magnitude of one unit of the flux units known by name
UNIT_ZEROPOINTS = {"nJy": NJY_ZEROPOINT, "uJy": 23.9, "mJy": 16.4, "Jy": 8.9}
_ARCSEC_PER_RAD = 206264.80624709636
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def unit_zeropoint(unit: str, pixel_scale: float) -> float | None:
    """AB magnitude of one ``unit`` per pixel (``nJy``, ``uJy``, ``mJy``, ``Jy``, ``MJy/sr``)."""
    if unit in UNIT_ZEROPOINTS:
        return UNIT_ZEROPOINTS[unit]
    if unit.replace(" ", "") in ("MJy/sr", "MJy sr-1"):
        pixel_sr = (pixel_scale / _ARCSEC_PER_RAD) ** 2
        return float(-2.5 * np.log10(1.0e6 * pixel_sr / 3631.0))
    return None


class _Reader:
    """Checks of one survey file's values; every failure names the file and the key."""

    def __init__(self, path: str):
        self.path = path
        self.folder = Path(path).parent

    def fail(self, key: str, message: str) -> InputError:
        return InputError(f"survey file {self.path}: {key}: {message}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...],
                required: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a mapping (KEY: VALUE), got {value!r}")
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}" if key else str(unknown[0]),
                            f"unknown key (allowed here: {', '.join(allowed)})")
        missing = [k for k in required if k not in value]
        if missing:
            raise self.fail(f"{key}.{missing[0]}" if key else missing[0], "missing")
        return dict(value)

    def number(self, value: Any, key: str, *, gt: float | None = None,
               ge: float | None = None, lt: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not np.isfinite(value):
            raise self.fail(key, f"must be a finite number, got {value!r}")
        if (gt is not None and not value > gt) or (ge is not None and not value >= ge) or \
                (lt is not None and not value < lt):
            bounds = [f"> {gt:g}" if gt is not None else "", f">= {ge:g}" if ge is not None
                      else "", f"< {lt:g}" if lt is not None else ""]
            raise self.fail(key, f"must be {' and '.join(b for b in bounds if b)}, "
                                 f"got {value!r}")
        return float(value)

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be a non-empty text, got {value!r}")
        return value.strip()

    def file(self, value: Any, key: str) -> str:
        path = Path(os.path.expandvars(self.text(value, key))).expanduser()
        path = path if path.is_absolute() else self.folder / path
        if not path.is_file():
            raise self.fail(key, f"no file {path}")
        return str(path.resolve())

    def guarded(self, key: str, check, *args):
        """Run a check that raises DeepDiscError; re-raise it naming the file and key."""
        try:
            return check(*args)
        except DeepDiscError as err:
            raise self.fail(key, str(err)) from None


def read_survey_file(path: str | os.PathLike) -> SurveyPreset:
    """Read and check a survey file; the survey carries its bands' filters
    (:attr:`~rail.deepdisc.sim.survey_preset.SurveyPreset.filters`) and detection band.

    Raises
    ------
    InputError
        If the file cannot be read or a value is missing, unknown or out of range, naming
        the file and the key.
    """
    import yaml

    path = str(path)
    reader = _Reader(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as err:
        raise InputError(f"cannot read survey file {path}: {err}") from err
    except yaml.YAMLError as err:
        raise InputError(f"survey file {path} is not valid YAML: {err}") from None
    data = reader.mapping(data, "", _TOP_KEYS, _REQUIRED)
    return _build(reader, data)


def _build(r: _Reader, d: dict[str, Any]) -> SurveyPreset:
    if not isinstance(d.get("measured", {}), Mapping):
        raise r.fail("measured", "must be a mapping (what rail-deepdisc survey measured)")
    name = r.text(d["name"], "name")
    if not _NAME.match(name):
        raise r.fail("name", f"{name!r} may hold only letters, digits, '_', '.' and '-'")
    scale = r.number(d["pixel_scale"], "pixel_scale", gt=0)
    unit, zeropoint = _flux_unit(r, d, scale)
    bands = d["bands"]
    if not isinstance(bands, Mapping) or not bands:
        raise r.fail("bands", f"must map band names to their filter, depth and PSF, got "
                              f"{bands!r}")
    specs = {_band_name(r, b): r.mapping(v, f"bands.{b}", _BAND_KEYS) for b, v in bands.items()}
    filters = {b: _filter(r, b, s.get("filter")) for b, s in specs.items()}
    for band, filt in filters.items():
        r.guarded(f"bands.{band}.filter", check_filters, {band: filt}, "")
    default_psf = _psf(r, d.get("psf", {"kind": "airy"}), "psf", scale)
    psfs = {b: _psf(r, s["psf"], f"bands.{b}.psf", scale) for b, s in specs.items()
            if "psf" in s}
    telescope = _telescope(r, d, [psfs.get(b, default_psf) for b in specs])
    default_kernel = _kernel(r, d.get("noise_correlation"), "noise_correlation")
    kernels = {b: _kernel(r, s["noise_correlation"], f"bands.{b}.noise_correlation")
               if "noise_correlation" in s else default_kernel for b, s in specs.items()}
    depths, noise = _noise(r, specs, zeropoint)
    detection = r.text(d["detection_band"], "detection_band")
    if detection not in specs:
        raise r.fail("detection_band", f"{detection!r} is not among the bands {list(specs)}")
    preset = SurveyPreset(
        name=name, bands=tuple(specs), pixel_scale=scale, depths=depths,
        depth_aperture_arcsec=r.number(d["depth_aperture_arcsec"], "depth_aperture_arcsec",
                                       gt=0),
        **telescope,
        seeing_fwhm_arcsec=r.number(d.get("seeing_fwhm_arcsec", 0.0), "seeing_fwhm_arcsec",
                                    ge=0),
        detection_band=detection, mag_limit=0.0, zmax=0.0,
        field_center=_field_center(r, d.get("field_center", [0.0, 0.0])),
        pixel_noise=noise, psf_default=default_psf, psfs=psfs,
        noise_correlation={b: k for b, k in kernels.items() if k},
        flux_unit=unit, zeropoint=zeropoint,
        description=str(d.get("description", "")).strip(),
        reference=str(d.get("reference", "")).strip(), source=r.path, filters=filters)
    preset = _fill_noise_depths(preset)
    mag_limit, zmax, model = _population(r, d.get("population", {}), preset)
    return replace(preset, mag_limit=mag_limit, zmax=zmax, population_model=model)


def _flux_unit(r: _Reader, d: dict[str, Any], scale: float) -> tuple[str, float]:
    unit = r.text(d.get("flux_unit", "nJy"), "flux_unit")
    known = unit_zeropoint(unit, scale)
    if "zeropoint" not in d:
        if known is None:
            raise r.fail("zeropoint", f"missing: flux_unit {unit!r} is not one of "
                                      f"{[*UNIT_ZEROPOINTS, 'MJy/sr']}, so give its AB "
                                      "zero point")
        return unit, known
    zp = r.number(d["zeropoint"], "zeropoint", gt=-50, lt=60)
    if known is not None and abs(zp - known) > 1e-3:
        raise r.fail("zeropoint", f"{zp} disagrees with flux_unit {unit} ({known:.4f})")
    return unit, zp


def _band_name(r: _Reader, band: Any) -> str:
    if not isinstance(band, str) or not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", band):
        raise r.fail(f"bands.{band}", "a band name must start with a letter and hold only "
                                      "letters, digits and '_' (it names catalog columns)")
    return band


def _filter(r: _Reader, band: str, value: Any) -> BandFilter:
    key = f"bands.{band}.filter"
    if value is None:
        known = band_filter(band)
        if known is None:
            raise r.fail(key, f"missing: {band!r} is not a known band or astro-sedpy filter "
                              "name, so give its filter (an astro-sedpy name or a curve file)")
        return known
    name = r.text(value, key)
    known = band_filter(name)
    if known is not None:
        return known
    candidate = Path(name) if Path(name).is_absolute() else r.folder / name
    if not candidate.is_file():
        raise r.fail(key, f"{name!r} is neither an astro-sedpy filter name (see "
                          "sedpy.observate.list_available_filters()) nor a file")
    from rail.deepdisc.spectra.filters import read_filter_file

    curve = r.guarded(key, read_filter_file, str(candidate.resolve()))
    return BandFilter(wave=tuple(curve.wave.tolist()),
                      transmission=tuple(curve.throughput.tolist()), source=curve.source)


def _psf(r: _Reader, value: Any, key: str, scale: float) -> dict[str, Any]:
    if not isinstance(value, Mapping) or value.get("kind") not in FILE_PSF_KINDS:
        kind = value.get("kind") if isinstance(value, Mapping) else value
        raise r.fail(f"{key}.kind", f"must be one of {list(FILE_PSF_KINDS)}, got {kind!r}")
    kind = value["kind"]
    spec = r.mapping(value, key, ("kind", *_PSF_KEYS[kind]),
                     ("kind", *{"moffat": ("fwhm", "beta"), "gaussian": ("fwhm",),
                                "image": ("file",)}.get(kind, ())))
    if kind == "optical":
        ab = default_aberrations()
        ab.update({k: r.number(v, f"{key}.{k}", gt=-1, lt=1) for k, v in spec.items()
                   if k != "kind"})
        return {"kind": kind, **ab}
    if kind in ("moffat", "gaussian"):
        out = {"kind": kind, "fwhm": r.number(spec["fwhm"], f"{key}.fwhm", gt=0, lt=100)}
        if kind == "moffat":
            out["beta"] = r.number(spec["beta"], f"{key}.beta", gt=1.1, lt=100)
        return out
    if kind == "image":
        return _image_psf(r, spec, key, scale)
    return {"kind": kind}


def _image_psf(r: _Reader, spec: dict[str, Any], key: str, scale: float) -> dict[str, Any]:
    path = r.file(spec["file"], f"{key}.file")
    image = r.guarded(f"{key}.file", read_fits_image, path, "PSF image")
    ny, nx = image.shape
    if nx != ny or nx % 2 == 0 or nx < 5:
        raise r.fail(f"{key}.file", f"PSF image {path} is {nx} x {ny} pixels; it must be "
                                    "square with an odd side of at least 5 pixels")
    if not image.sum() > 0:
        raise r.fail(f"{key}.file", f"PSF image {path} has no positive total flux")
    if ("pixel_scale" in spec) == ("oversampling" in spec):
        raise r.fail(key, "give one of pixel_scale (arcsec) or oversampling (survey pixels "
                          "per PSF pixel)")
    psf_scale = r.number(spec["pixel_scale"], f"{key}.pixel_scale", gt=0) \
        if "pixel_scale" in spec else \
        scale / r.number(spec["oversampling"], f"{key}.oversampling", gt=0)
    out = {"kind": "image", "file": path, "pixel_scale": psf_scale}
    if spec.get("effective", False):
        if not isinstance(spec["effective"], bool):
            raise r.fail(f"{key}.effective", "must be true or false")
        out["effective"] = True  # already pixel-convolved: drawn without another pixel
    return out


def _telescope(r: _Reader, d: dict[str, Any], psfs: list[dict[str, Any]]) -> dict[str, Any]:
    needs = any(p["kind"] in TELESCOPE_PSF_KINDS for p in psfs)
    if "telescope" not in d:
        if needs:
            raise r.fail("telescope", "missing: airy and optical PSFs need the telescope's "
                                      "diameter_m and obscuration")
        return {"diameter_m": 0.0, "obscuration": 0.0}
    t = r.mapping(d["telescope"], "telescope", _TELESCOPE_KEYS, ("diameter_m", "obscuration"))
    out: dict[str, Any] = {
        "diameter_m": r.number(t["diameter_m"], "telescope.diameter_m", gt=0, lt=100),
        "obscuration": r.number(t["obscuration"], "telescope.obscuration", ge=0, lt=1)}
    if "struts" in t or "strut_thickness" in t:
        n = r.number(t.get("struts", 0), "telescope.struts", ge=0, lt=13)
        if n != int(n):
            raise r.fail("telescope.struts", f"must be a whole number, got {n}")
        thick = r.number(t.get("strut_thickness", 0.05), "telescope.strut_thickness", ge=0,
                         lt=0.5)
        out["struts"] = (int(n), thick)
    return out


def _kernel(r: _Reader, value: Any, key: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or value.get("kind") not in KERNEL_KINDS:
        kind = value.get("kind") if isinstance(value, Mapping) else value
        raise r.fail(f"{key}.kind", f"must be one of {list(KERNEL_KINDS)}, got {kind!r}")
    kind = value["kind"]
    spec = r.mapping(value, key, ("kind", *_KERNEL_KEYS[kind]), ("kind", *_KERNEL_KEYS[kind]))
    if kind == "gaussian":
        return {"kind": kind, "fwhm_pixels": r.number(spec["fwhm_pixels"],
                                                      f"{key}.fwhm_pixels", gt=0, lt=20)}
    path = r.file(spec["file"], f"{key}.file")
    r.guarded(f"{key}.file", read_kernel_file, path)
    return {"kind": kind, "file": path}


def _noise(r: _Reader, specs: dict[str, dict[str, Any]], zeropoint: float
           ) -> tuple[dict[str, float], dict[str, float]]:
    """Depths of the bands given by depth; pixel noise (nJy) of the others."""
    depths, noise = {}, {}
    to_njy = 10.0 ** (0.4 * (NJY_ZEROPOINT - zeropoint))
    for band, s in specs.items():
        if ("depth" in s) == ("pixel_noise" in s):
            raise r.fail(f"bands.{band}.depth", "give exactly one of depth (5-sigma AB "
                                                "magnitude) or pixel_noise")
        if "depth" in s:
            depths[band] = r.number(s["depth"], f"bands.{band}.depth", gt=10, lt=40)
        else:
            noise[band] = r.number(s["pixel_noise"], f"bands.{band}.pixel_noise",
                                   gt=0) * to_njy
    return depths, noise


def _fill_noise_depths(preset: SurveyPreset) -> SurveyPreset:
    """Put the depths that the bands given by pixel noise reach into ``depths``."""
    if not preset.pixel_noise:
        return preset
    sigma = np.array([preset.pixel_noise.get(b, np.nan) for b in preset.bands])
    made = preset.depths_of_noise(sigma)
    depths = {b: preset.depths.get(b, float(np.round(made[i], 4)))
              for i, b in enumerate(preset.bands)}
    return replace(preset, depths=depths)


def _population(r: _Reader, value: Any, preset: SurveyPreset) -> tuple[float, float, str]:
    from rail.deepdisc.sim.lowz import LOWZ_ZMAX

    p = r.mapping(value, "population", ("mag_limit", "zmax", "model"))
    mag_limit = r.number(p.get("mag_limit", preset.depths[preset.detection_band]),
                         "population.mag_limit", gt=10, lt=40)
    model = p.get("model", "deep")
    if model not in POPULATION_MODEL_NAMES:
        raise r.fail("population.model", f"must be one of {list(POPULATION_MODEL_NAMES)}, "
                                         f"got {model!r}")
    zmax = r.number(p.get("zmax", LOWZ_ZMAX if model == "lowz" else 6.0), "population.zmax",
                    gt=0, lt=(LOWZ_ZMAX if model == "lowz" else 16.0) + 1e-4)
    return mag_limit, zmax, model


def _field_center(r: _Reader, value: Any) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise r.fail("field_center", f"must be [ra, dec] in degrees, got {value!r}")
    ra = r.number(value[0], "field_center[0]", ge=0, lt=360)
    dec = r.number(value[1], "field_center[1]", ge=-90, lt=90.0001)
    return ra, dec


def write_survey_file(data: Mapping[str, Any], path: str | os.PathLike,
                      inputs: tuple[str | os.PathLike, ...] = ()) -> str:
    """Write a survey description (as :func:`read_survey_file` reads it) atomically.

    The file is read back and checked before it replaces ``path``.
    """
    import yaml

    from rail.deepdisc.store.atomic import atomic_output

    text = yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=None, width=100)
    with atomic_output(path, "survey file", inputs) as tmp:
        tmp.write_text(text, encoding="utf-8")
        read_survey_file(tmp)
    return os.fspath(path)
