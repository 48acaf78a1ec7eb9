"""Render mock catalogs into multi-band scenes with GalSim, with truth maps.

Each galaxy is a Sersic disk (plus an optional de Vaucouleurs bulge) drawn in every band
from its per-band flux, convolved with that band's PSF (monochromatic drawing: GalSim's
chromatic drawing is ~40x slower). Stamps are sized by GalSim to the galaxy so nothing is
clipped; sources overlap freely. Gaussian noise gives the survey depths: white, or
correlated where the survey gives a noise-correlation kernel (:mod:`rail.deepdisc.sim.noise`).

Truth: every pixel is owned by the object whose noiseless light, in units of the noise of a
chi-mean detection image (``sum_b (m_b / sigma_b) / sqrt(C)``), is largest there, if that
exceeds ``segmap_threshold``. ``/objects`` is the scene's catalog, like a cut-out of a field
catalog: the galaxies centred in the scene that own at least ``min_footprint_pixels``
pixels. Galaxies centred in the margin around the scene are rendered too (their light
reaches in, as in any cut-out) but are not listed, and the pixels they own are background
(0) in ``/segmap``. Boxes are the bounding boxes of the owned pixels; ``edge_distance`` is
the distance (pixels) from the centre to the nearest scene edge. Per band,
``flux_<band>`` is the catalog (noiseless total) flux and ``snr_<band>`` the object's own
noiseless flux in a 0.2"-radius aperture over the noise in that aperture.

Scenes are rendered in parallel processes (:mod:`rail.deepdisc.workers`, which exit
with their parent); scene ``k`` only depends on ``seed`` and ``k``, so results do not depend
on the number of workers.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.magnitudes import NJY_ZEROPOINT, flux_to_mag
from rail.deepdisc.options import option
from rail.deepdisc.sim import lowz, morphology, stars
from rail.deepdisc.sim.morphology import band_profiles, galaxy_profile
from rail.deepdisc.sim.noise import draw_noise
from rail.deepdisc.sim.population import MAX_GALAXIES
from rail.deepdisc.sim.psf import PSF_KINDS, draw_method, make_psf, psf_description
from rail.deepdisc.sim.randomise import (
    ImageRandomisation,
    SceneConditions,
    finish_scene,
    scene_conditions,
)
from rail.deepdisc.sim.survey_preset import SurveyPreset
from rail.deepdisc.sim.surveys import SurveyChoice, get_survey
from rail.deepdisc.spectra import sed_distortion
from rail.deepdisc.spectra.bands import filters_attr
from rail.deepdisc.store.scenes import SceneWriter
from rail.deepdisc.workers import ordered_parallel_map, usable_cores

log = logging.getLogger(__name__)

__all__ = ["RenderConfig", "ScenePlan", "check_catalog", "plan_scenes",
           "render_catalog", "render_scene"]

#: catalog columns the renderer needs (plus ``<band>_fnu`` for every band)
REQUIRED_CATALOG_COLUMNS = ("id", "redshift", "Re_maj", "sersic_n", "axis_ratio",
                            "position_angle")
#: optional bulge columns (a pure Sersic profile when absent)
BULGE_COLUMNS = ("bulge_fraction", "Re_bulge", "bulge_axis_ratio")
#: catalog columns copied into /objects when present
PASSTHROUGH_COLUMNS = ("sed_index", "is_quiescent", "ebv", "abs_mag", "log_mass", "Re_maj",
                       "sersic_n", "axis_ratio", "position_angle", "bulge_fraction",
                       *morphology.STORE_COLUMNS, *stars.STORE_COLUMNS,
                       *sed_distortion.COLUMNS, *lowz.STORE_COLUMNS)
_MAG_ERR_COEFF = 2.5 / np.log(10.0)


@dataclass(frozen=True, kw_only=True)
class RenderConfig(ImageRandomisation, SurveyChoice):
    """How scenes are rendered; :attr:`preset` is the survey preset with ``depths`` and
    ``pixel_scale`` in place of its own. PSF jitter, depth variation and masks:
    :mod:`rail.deepdisc.sim.randomise`."""

    n_scenes: int = option(help="number of scenes", gt=0, flag="scenes", metavar="N")
    scene_size: int = option(128, "scene side in pixels", ge=8, le=4096, flag="size",
                             metavar="PIXELS")
    objects_per_scene: float = option(
        10.0, "mean number of galaxies centred in a scene (Poisson)", gt=0, le=100_000)
    psf: str | None = option(None, "PSF model of every band, from the telescope (default: "
                             "the survey's PSFs)", choices=PSF_KINDS)
    seed: int = option(0, "random seed (population, placement and noise)", ge=0)
    depths: dict[str, float] = option(
        {}, "5-sigma AB depth of a band, instead of the survey's", flag="depth",
        metavar="BAND=MAG")
    pixel_scale: float | None = option(None, "arcsec per pixel (default: the survey's)", gt=0)
    segmap_threshold: float = option(
        1.0, "detection-image S/N per pixel that makes a footprint", gt=0)
    min_footprint_pixels: int = option(3, "smallest footprint (pixels) listed in /objects",
                                       ge=1)
    margin_fraction: float = option(
        0.1, "galaxies are also centred this fraction of the scene beyond its edges", ge=0,
        le=1)
    snr_aperture_arcsec: float = option(
        0.2, "radius (arcsec) of the aperture of snr_<band>", gt=0)

    @cached_property
    def preset(self) -> SurveyPreset:
        """The survey preset with this config's depths and pixel scale."""
        preset = get_survey(self.survey)
        changes: dict[str, Any] = {}
        if self.depths:
            changes["depths"] = {**preset.depths, **self.depths}
        if self.pixel_scale is not None:
            changes["pixel_scale"] = self.pixel_scale
        return preset.with_overrides(**changes) if changes else preset

    def _check(self) -> None:
        self.preset  # noqa: B018  (unknown depth bands)
        if self.psf is not None and not self.preset.diameter_m > 0:
            raise OptionError(f"psf={self.psf} needs a telescope, and survey "
                              f"{self.survey} gives none (telescope.diameter_m)")
        expected = self.n_scenes * self.objects_per_scene * self.area_ratio
        if expected > MAX_GALAXIES:
            raise OptionError(
                f"n_scenes x objects_per_scene needs ~{expected:.3g} galaxies (margins "
                f"included), more than the {MAX_GALAXIES:,} one run renders; simulate the "
                "field in parts")

    @property
    def margin(self) -> float:
        return self.margin_fraction * self.scene_size

    @property
    def area_ratio(self) -> float:
        """Area with margins over the scene's."""
        return ((self.scene_size + 2 * self.margin) / self.scene_size) ** 2

    @property
    def noise_sigma(self) -> np.ndarray:
        """Pixel noise (nJy) per band."""
        return self.preset.pixel_noise_njy()

    @cached_property
    def noise_kernels(self) -> list[np.ndarray | None]:
        """Per band, the noise-correlation kernel (None: white noise)."""
        return self.preset.noise_kernels()

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (for provenance), with the resolved survey preset."""
        return {**super().as_dict(), "survey_preset": asdict(self.preset)}


def check_catalog(catalog: Mapping[str, np.ndarray], bands: Sequence[str],
                  source: str = "catalog") -> int:
    """Check the catalog has every column the renderer needs; return its length.

    Raises
    ------
    InputError
        Naming the catalog and the missing columns or bad ids.
    """
    needed = list(REQUIRED_CATALOG_COLUMNS) + [f"{b}_fnu" for b in bands]
    missing = [c for c in needed if c not in catalog]
    if missing:
        raise InputError(f"{source} lacks columns {missing} needed to render "
                         f"{list(bands)}; it has {sorted(catalog)}")
    lengths = {len(np.asarray(catalog[c])) for c in needed}
    if len(lengths) != 1:
        raise InputError(f"{source}: columns have different lengths {sorted(lengths)}")
    n = lengths.pop()
    if n == 0:
        raise InputError(f"{source} is empty")
    ids = np.asarray(catalog["id"])
    if ids.dtype.kind not in "iu" or np.any(ids <= 0):
        raise InputError(f"{source}: column 'id' must hold positive integers "
                         "(0 marks background in /segmap)")
    if np.unique(ids).size != ids.size:
        raise InputError(f"{source}: column 'id' has duplicated values")
    return n


@dataclass
class ScenePlan:
    """Which catalog rows go to which scene, and where.

    ``rows[start[k]:start[k+1]]`` are the catalog rows of scene ``k``, centred at
    ``x``/``y`` (same slice).
    """

    start: np.ndarray
    x: np.ndarray
    y: np.ndarray

    @property
    def n_needed(self) -> int:
        return int(self.start[-1])


def plan_scenes(config: RenderConfig) -> ScenePlan:
    """Draw the number and positions of galaxies of every scene (deterministic in seed)."""
    rng = np.random.default_rng([config.seed, 0])
    size, m = config.scene_size, config.margin
    counts = rng.poisson(config.objects_per_scene * config.area_ratio, config.n_scenes)
    xy = rng.uniform(-0.5 - m, size - 0.5 + m, (int(counts.sum()), 2))
    return ScenePlan(start=np.concatenate([[0], np.cumsum(counts)]), x=xy[:, 0], y=xy[:, 1])


def scene_wcs_header(config: RenderConfig, scene: int) -> tuple[str, int, int]:
    """TAN WCS header text and offset of a scene laid out on a virtual mosaic grid."""
    from astropy.wcs import WCS

    size = config.scene_size
    ncol = int(np.ceil(np.sqrt(config.n_scenes)))
    nrow = int(np.ceil(config.n_scenes / ncol))
    x0, y0 = (scene % ncol) * size, (scene // ncol) * size
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = list(config.preset.field_center)
    # FITS crpix is 1-based: mosaic centre, shifted into this scene's pixel frame
    w.wcs.crpix = [0.5 * ncol * size + 0.5 - x0, 0.5 * nrow * size + 0.5 - y0]
    scale = config.preset.pixel_scale / 3600.0
    w.wcs.cdelt = [-scale, scale]
    header = w.to_header()
    header["NAXIS1"], header["NAXIS2"] = size, size
    return header.tostring(), x0, y0


# --- per-process GalSim state --------------------------------------------------------
_PSF_CACHE: dict[tuple[str, str], Any] = {}
#: detection S/N, as a fraction of ``segmap_threshold``, below which an object's detection
#: map is cropped away (its share of the blendedness sums is negligible)
DETECTION_MAP_FLOOR = 1.0e-3


def _psf(description: dict[str, Any], band: str):
    key = (json.dumps(description, sort_keys=True), band)
    if key not in _PSF_CACHE:
        _PSF_CACHE[key] = make_psf(description, band)
    return _PSF_CACHE[key]


@dataclass
class _Drawn:
    """The noiseless light of one scene: the image and, per galaxy, what truth needs."""

    image: np.ndarray  # (C, H, W) nJy
    det_maps: list[tuple[int, int, np.ndarray] | None]  # detection S/N on a scene region
    ap_flux: np.ndarray  # (n_galaxies, C) flux in the S/N aperture


def render_scene(task: dict[str, Any]) -> dict[str, Any]:
    """Render one scene (runs in a worker process).

    ``task`` holds ``scene``, ``config`` (:class:`RenderConfig`), ``psf`` (description),
    ``catalog`` (column dict of this scene's galaxies), ``x``, ``y`` (positions), and
    optionally ``keep_noiseless``.

    Returns
    -------
    dict
        ``images``, ``ivar`` (C, H, W), ``segmap`` (H, W), ``objects`` (columns), ``scene``
        (row), and ``noiseless`` when asked.
    """
    cfg: RenderConfig = task["config"]
    cat = task["catalog"]
    xs, ys = np.asarray(task["x"], float), np.asarray(task["y"], float)
    scene = int(task["scene"])
    cond = scene_conditions(cfg, cfg.noise_sigma, scene, cfg.seed) \
        if cfg.randomises_images else None
    sigma = cfg.noise_sigma if cond is None else cond.sigma
    drawn = _draw_scene(cfg, task["psf"], cat, xs, ys, sigma, cond)
    owner, area, keep = _segment(cfg, drawn.det_maps, xs, ys)
    ids = np.asarray(cat["id"], dtype=np.int64)
    segmap = np.append(ids, 0)[owner].astype(np.int32)  # owner -1 (background) -> 0
    blend = _blendedness(drawn.det_maps, keep, cfg.scene_size)
    rng = np.random.default_rng([cfg.seed, 1, scene])
    noisy = drawn.image + draw_noise(rng, drawn.image.shape, sigma, cfg.noise_kernels)
    ivar = np.broadcast_to((1.0 / sigma**2)[:, None, None], noisy.shape).astype(np.float32)
    header, x0, y0 = scene_wcs_header(cfg, scene)
    ap_noise = sigma * np.sqrt(np.pi * (cfg.snr_aperture_arcsec / cfg.preset.pixel_scale) ** 2)
    objects = _object_table(cfg, cat, keep, owner, xs, ys, drawn.ap_flux / ap_noise, area,
                            blend, header)
    row = {"wcs": header, "x0": x0, "y0": y0, "tile": scene}
    if cond is not None:  # masks (ivar 0) and what the scene drew
        row.update(finish_scene(cfg, cond, noisy, ivar, scene, cfg.seed, task["psf"],
                                cfg.preset.bands, cfg.preset.pixel_scale))
    out = {"images": noisy.astype(np.float32), "ivar": ivar, "segmap": segmap,
           "objects": objects, "scene": row}
    if task.get("keep_noiseless"):
        out["noiseless"] = drawn.image
    return out


def _draw_scene(cfg: RenderConfig, psf: dict[str, Any], cat: Mapping[str, np.ndarray],
                xs: np.ndarray, ys: np.ndarray, sigma: np.ndarray,
                cond: SceneConditions | None = None) -> _Drawn:
    """Draw every object in every band (PSF-convolved), with its detection map."""
    import galsim
    from photutils.aperture import CircularAperture

    bands, size, scale = cfg.preset.bands, cfg.scene_size, cfg.preset.pixel_scale
    psfs = [_psf(psf, b) for b in bands]
    psfs = psfs if cond is None else cond.apply(psfs)
    methods = [draw_method(psf, b) for b in bands]
    drawn = _Drawn(np.zeros((len(bands), size, size)), [], np.zeros((xs.size, len(bands))))
    scene_bounds = galsim.BoundsI(0, size - 1, 0, size - 1)
    has_bulge = all(c in cat for c in BULGE_COLUMNS)
    for j in range(xs.size):
        profs = [galsim.DeltaFunction()] * len(bands) if stars.is_star(cat, j) else \
            band_profiles(cat, j, bands) or [galaxy_profile(
                cat["Re_maj"][j], cat["sersic_n"][j], cat["axis_ratio"][j],
                cat["position_angle"][j],
                *(cat[c][j] for c in BULGE_COLUMNS) if has_bulge else ())] * len(bands)
        center = galsim.PositionD(xs[j], ys[j])
        aperture = CircularAperture((xs[j], ys[j]), cfg.snr_aperture_arcsec / scale)
        mask = aperture.to_mask(method="exact")
        stamps = []
        for b, band in enumerate(bands):
            flux = float(cat[f"{band}_fnu"][j])
            if not flux > 0:
                continue
            st = galsim.Convolve(profs[b], psfs[b]).withFlux(flux).drawImage(
                scale=scale, center=center, method=methods[b])
            ov = st.bounds & scene_bounds
            if ov.isDefined():
                drawn.image[b, ov.ymin:ov.ymax + 1, ov.xmin:ov.xmax + 1] += st[ov].array
            drawn.ap_flux[j, b] = _sum_in_mask(st, mask)
            stamps.append((b, st))
        drawn.det_maps.append(_detection_map(stamps, sigma, len(bands), scene_bounds,
                                              DETECTION_MAP_FLOOR * cfg.segmap_threshold))
    return drawn


def _segment(cfg: RenderConfig, det_maps, xs: np.ndarray, ys: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Owner (galaxy index, -1 none) of each pixel, footprint areas, galaxies listed.

    A pixel belongs to the galaxy with the largest detection S/N there, if above
    ``segmap_threshold``; listed are the galaxies centred in the scene owning at least
    ``min_footprint_pixels`` pixels, and only their pixels keep an owner.
    """
    size = cfg.scene_size
    best = np.zeros((size, size))
    owner = np.full((size, size), -1, dtype=np.int64)
    for j, dm in enumerate(det_maps):
        if dm is None:
            continue
        x0, y0, d = dm
        reg = (slice(y0, y0 + d.shape[0]), slice(x0, x0 + d.shape[1]))
        better = d > best[reg]
        best[reg][better] = d[better]
        owner[reg][better] = j
    owner[best < cfg.segmap_threshold] = -1
    area = np.bincount(owner[owner >= 0], minlength=xs.size)
    # the scene's catalog: galaxies centred in it; neighbours centred outside still shine in
    inside = (xs >= -0.5) & (xs < size - 0.5) & (ys >= -0.5) & (ys < size - 0.5)
    keep = np.flatnonzero((area >= cfg.min_footprint_pixels) & inside)
    owner[~np.isin(owner, keep)] = -1
    return owner, area, keep


def _blendedness(det_maps, keep: np.ndarray, size: int) -> np.ndarray:
    """``1 - <d_j, d_j> / <d_j, d_total>`` over the scene (HSC's definition)."""
    total = np.zeros((size, size))
    for dm in det_maps:
        if dm is not None:
            x0, y0, d = dm
            total[y0:y0 + d.shape[0], x0:x0 + d.shape[1]] += d
    blend = np.zeros(len(det_maps))
    for j in keep:
        x0, y0, d = det_maps[j]
        tot = total[y0:y0 + d.shape[0], x0:x0 + d.shape[1]]
        blend[j] = 1.0 - float(np.sum(d * d, dtype=np.float64)) / max(
            float(np.sum(d * tot, dtype=np.float64)), 1e-30)
    return blend


def _sum_in_mask(stamp, mask) -> float:
    """Sum of a GalSim stamp (0-based scene coordinates) weighted by a photutils mask."""
    b = stamp.bounds
    bb = mask.bbox
    x0, x1 = max(b.xmin, bb.ixmin), min(b.xmax + 1, bb.ixmax)
    y0, y1 = max(b.ymin, bb.iymin), min(b.ymax + 1, bb.iymax)
    if x0 >= x1 or y0 >= y1:
        return 0.0
    arr = stamp.array[y0 - b.ymin:y1 - b.ymin, x0 - b.xmin:x1 - b.xmin]
    w = mask.data[y0 - bb.iymin:y1 - bb.iymin, x0 - bb.ixmin:x1 - bb.ixmin]
    return float(np.sum(arr * w))


def _detection_map(stamps, sigma, nbands, scene_bounds, floor):
    """Chi-mean detection-image S/N of one object (float32), on the scene region its stamps
    cover, cropped to the pixels above ``floor`` (None if none)."""
    region = None
    for _, st in stamps:
        ov = st.bounds & scene_bounds
        if ov.isDefined():
            region = ov if region is None else region + ov
    if region is None:
        return None
    d = np.zeros((region.ymax - region.ymin + 1, region.xmax - region.xmin + 1), np.float32)
    for b, st in stamps:
        ov = st.bounds & region
        if ov.isDefined():
            d[ov.ymin - region.ymin:ov.ymax - region.ymin + 1,
              ov.xmin - region.xmin:ov.xmax - region.xmin + 1] += st[ov].array / sigma[b]
    d /= np.sqrt(nbands)
    # kept until the end of the scene for every object: crop the stamp's faint wings
    above = d >= floor
    rows, cols = np.flatnonzero(above.any(axis=1)), np.flatnonzero(above.any(axis=0))
    if rows.size == 0:
        return None
    d = d[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return region.xmin + int(cols[0]), region.ymin + int(rows[0]), np.ascontiguousarray(d)


def _object_table(cfg, cat, keep, owner, xs, ys, snr, area, blend, header):
    """The scene's /objects columns (truth, boxes, per-band catalog flux and S/N)."""
    from astropy.io import fits
    from astropy.wcs import WCS
    from scipy import ndimage

    size = cfg.scene_size
    n = keep.size
    boxes = ndimage.find_objects(owner + 1, max_label=xs.size)
    bbox = np.zeros((n, 4), dtype=np.int32)
    for i, j in enumerate(keep):
        sy, sx = boxes[j]
        bbox[i] = (sx.start, sy.start, sx.stop, sy.stop)
    wcs = WCS(fits.Header.fromstring(header))
    ra, dec = wcs.all_pix2world(xs[keep], ys[keep], 0) if n else (np.zeros(0), np.zeros(0))
    x, y = xs[keep], ys[keep]
    edge = np.minimum.reduce([x + 0.5, y + 0.5, size - 0.5 - x, size - 0.5 - y]) if n \
        else np.zeros(0)
    out: dict[str, np.ndarray] = {
        "object_id": np.asarray(cat["id"], dtype=np.int64)[keep], "x": x, "y": y,
        "bbox_x0": bbox[:, 0], "bbox_y0": bbox[:, 1], "bbox_x1": bbox[:, 2],
        "bbox_y1": bbox[:, 3], "ra": np.asarray(ra, float), "dec": np.asarray(dec, float),
        "redshift": np.asarray(cat["redshift"], float)[keep],
        "redshift_kind": stars.redshift_kinds(cat, keep),
        "footprint_area": area[keep].astype(np.int32),
        "blendedness": blend[keep].astype(np.float32),
        "edge_distance": edge.astype(np.float32),
    }
    for b, band in enumerate(cfg.preset.bands):
        flux = np.asarray(cat[f"{band}_fnu"], float)[keep]
        out[f"mag_{band}"] = flux_to_mag(flux, fill=np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"mag_err_{band}"] = np.where(snr[keep, b] > 0, _MAG_ERR_COEFF / snr[keep, b],
                                              np.inf)
        out[f"flux_{band}"] = flux
        out[f"snr_{band}"] = snr[keep, b]
    for col in PASSTHROUGH_COLUMNS:
        if col in cat:
            out[col] = np.asarray(cat[col])[keep]
    return out


def render_catalog(catalog: Mapping[str, np.ndarray], config: RenderConfig,
                   output: str | os.PathLike, *, n_workers: int | None = None,
                   provenance: str = "{}", progress: bool = True,
                   inputs: Sequence[str | os.PathLike | None] = ()) -> str:
    """Render ``config.n_scenes`` scenes from a catalog into a scene store at ``output``.

    Catalog rows are used in order, each galaxy once. Everything is checked before the
    first scene is drawn (``output`` may not be a directory or one of ``inputs``); the
    store appears at ``output`` only when complete.

    Returns
    -------
    str
        The output path.
    """
    from tqdm.auto import tqdm

    config.validate()
    bands = config.preset.bands
    n_rows = check_catalog(catalog, bands)
    plan = plan_scenes(config)
    if plan.n_needed > n_rows:
        raise InputError(
            f"catalog has {n_rows} galaxies but {config.n_scenes} scenes of "
            f"{config.scene_size}^2 pixels at {config.objects_per_scene} objects per scene "
            f"need {plan.n_needed} (margins included); give a larger catalog or fewer scenes")
    n_workers = usable_cores() if not n_workers else int(n_workers)
    psf = psf_description(config.preset, config.psf)
    log.info("rendering %d %s scenes of %dx%dx%d on %d process(es)", config.n_scenes,
             config.survey, config.scene_size, config.scene_size, len(bands), n_workers)
    with SceneWriter(output, bands, config.scene_size, config.scene_size,
                     pixel_scale_arcsec=config.preset.pixel_scale, zeropoint_ab=NJY_ZEROPOINT,
                     flux_unit="nJy", survey=config.preset.name, provenance=provenance,
                     attrs=_store_attrs(config, psf),
                     inputs=inputs) as writer:
        tasks = _tasks(catalog, config, plan, psf)
        results = ordered_parallel_map(render_scene, tasks, n_workers, 4 * n_workers)
        for res in tqdm(results, total=config.n_scenes, desc="render", unit="scene",
                        disable=not progress):
            writer.add_scenes(res["images"][None], [res["objects"]], [res["scene"]],
                              ivar=res["ivar"][None], segmap=res["segmap"][None])
    return os.fspath(output)


def _store_attrs(config: RenderConfig, psf: dict[str, Any]) -> dict[str, Any]:
    """Root attributes of a simulated store: PSF model, noise, filters, detection band."""
    kernels = {b: k.tolist() for b, k in zip(config.preset.bands, config.noise_kernels,
                                               strict=True) if k is not None}
    attrs = {"psf": json.dumps(psf, sort_keys=True),
             "noise_sigma": config.noise_sigma.tolist(),
             "filters": filters_attr(config.preset.bands, config.preset.filters),
             "detection_band": config.preset.detection_band}
    if kernels:
        attrs["noise_correlation"] = json.dumps(kernels)
    return attrs


def _tasks(catalog: Mapping[str, np.ndarray], config: RenderConfig, plan: ScenePlan,
           psf: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One task per scene: its galaxies' catalog rows and positions."""
    cols = [c for c in (*REQUIRED_CATALOG_COLUMNS, *BULGE_COLUMNS, *PASSTHROUGH_COLUMNS,
                        *morphology.catalog_columns(config.preset.bands),
                        *(f"{b}_fnu" for b in config.preset.bands)) if c in catalog]
    columns = {c: np.asarray(catalog[c]) for c in dict.fromkeys(cols)}
    for k in range(config.n_scenes):
        sl = slice(int(plan.start[k]), int(plan.start[k + 1]))
        yield {"scene": k, "config": config, "psf": psf,
               "catalog": {c: v[sl] for c, v in columns.items()}, "x": plan.x[sl],
               "y": plan.y[sl]}
