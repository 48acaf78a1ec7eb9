"""Render mock catalogs into multi-band scenes with GalSim, with truth maps.

Each galaxy is a Sersic disk (plus an optional de Vaucouleurs bulge) drawn in every band
from its per-band flux, convolved with that band's PSF (monochromatic drawing: GalSim's
chromatic drawing is ~40x slower). Stamps are sized by GalSim to the galaxy so nothing is
clipped; sources overlap freely. White Gaussian noise gives the survey depths.

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

Scenes are rendered in parallel processes; scene ``k`` only depends on ``seed`` and ``k``,
so results do not depend on the number of workers.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from typing import Any

import numpy as np

from rail.deepdisc.sim.psf import PSF_KINDS, make_psf, psf_description
from rail.deepdisc.sim.sed import NJY_ZEROPOINT
from rail.deepdisc.sim.surveys import SurveyPreset
from rail.deepdisc.store.scenes import SceneWriter

log = logging.getLogger(__name__)

#: catalog columns the renderer needs (plus ``<band>_fnu`` for every band)
REQUIRED_CATALOG_COLUMNS = ("id", "redshift", "Re_maj", "sersic_n", "axis_ratio",
                            "position_angle")
#: optional bulge columns (a pure Sersic profile when absent)
BULGE_COLUMNS = ("bulge_fraction", "Re_bulge", "bulge_axis_ratio")
#: catalog columns copied into /objects when present
PASSTHROUGH_COLUMNS = ("sed_index", "is_quiescent", "ebv", "abs_mag", "log_mass", "Re_maj",
                       "sersic_n", "axis_ratio", "position_angle", "bulge_fraction")
_MAG_ERR_COEFF = 2.5 / np.log(10.0)


@dataclass(frozen=True)
class RenderConfig:
    """How scenes are rendered.

    Attributes
    ----------
    survey
        Survey preset (bands, pixel scale, depths, telescope).
    scene_size
        Scene side in pixels (square scenes).
    objects_per_scene
        Mean number of galaxies centred inside a scene (Poisson).
    psf
        ``airy`` or ``optical``.
    seed
        Seed for placement and noise.
    segmap_threshold
        Detection-image S/N (per pixel) above which a pixel is owned by an object.
    min_footprint_pixels
        Objects owning fewer pixels are rendered but not listed in /objects.
    margin_fraction
        Galaxies are also centred up to this fraction of the scene beyond its edges (at the
        same density), so edges look like a cut-out of a larger field.
    snr_aperture_arcsec
        Radius of the aperture of ``snr_<band>``.
    """

    survey: SurveyPreset
    scene_size: int = 128
    objects_per_scene: float = 10.0
    psf: str = "airy"
    seed: int = 0
    segmap_threshold: float = 1.0
    min_footprint_pixels: int = 3
    margin_fraction: float = 0.1
    snr_aperture_arcsec: float = 0.2

    def validate(self) -> None:
        """Raise ValueError naming the first bad option."""
        if int(self.scene_size) != self.scene_size or self.scene_size < 8:
            raise ValueError(f"scene_size must be an integer >= 8 pixels, got {self.scene_size}")
        if not self.objects_per_scene > 0:
            raise ValueError(f"objects_per_scene must be > 0, got {self.objects_per_scene}")
        if self.psf not in PSF_KINDS:
            raise ValueError(f"psf must be one of {PSF_KINDS}, got {self.psf!r}")
        if not self.segmap_threshold > 0:
            raise ValueError(f"segmap_threshold must be > 0, got {self.segmap_threshold}")
        if self.min_footprint_pixels < 1:
            raise ValueError("min_footprint_pixels must be >= 1")
        if not 0 <= self.margin_fraction <= 1:
            raise ValueError(f"margin_fraction must be in [0, 1], got {self.margin_fraction}")
        if not self.survey.pixel_scale > 0:
            raise ValueError(f"pixel_scale must be > 0, got {self.survey.pixel_scale}")
        for band in self.survey.bands:
            if band not in self.survey.depths:
                raise ValueError(f"no depth given for band {band}")

    @property
    def margin(self) -> float:
        return self.margin_fraction * self.scene_size

    @property
    def noise_sigma(self) -> np.ndarray:
        """Pixel noise (nJy) per band."""
        return self.survey.pixel_noise_njy()

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (for provenance)."""
        d = asdict(self)
        d["survey"] = asdict(self.survey)
        return d


def check_catalog(catalog: Mapping[str, np.ndarray], bands: tuple[str, ...],
                  source: str = "catalog") -> int:
    """Check the catalog has every column the renderer needs; return its length.

    Raises
    ------
    ValueError
        Naming the missing columns (and the catalog).
    """
    needed = list(REQUIRED_CATALOG_COLUMNS) + [f"{b}_fnu" for b in bands]
    missing = [c for c in needed if c not in catalog]
    if missing:
        raise ValueError(f"{source} lacks columns {missing} needed to render "
                         f"{list(bands)}; it has {sorted(catalog)}")
    lengths = {len(np.asarray(catalog[c])) for c in needed}
    if len(lengths) != 1:
        raise ValueError(f"{source}: columns have different lengths {sorted(lengths)}")
    n = lengths.pop()
    if n == 0:
        raise ValueError(f"{source} is empty")
    ids = np.asarray(catalog["id"])
    if ids.dtype.kind not in "iu" or np.any(ids <= 0):
        raise ValueError(f"{source}: column 'id' must hold positive integers "
                         "(0 marks background in /segmap)")
    if np.unique(ids).size != ids.size:
        raise ValueError(f"{source}: column 'id' has duplicated values")
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


def plan_scenes(n_scenes: int, config: RenderConfig) -> ScenePlan:
    """Draw the number and positions of galaxies of every scene (deterministic in seed)."""
    if int(n_scenes) != n_scenes or n_scenes < 1:
        raise ValueError(f"the number of scenes must be a positive integer, got {n_scenes}")
    rng = np.random.default_rng([config.seed, 0])
    size, m = config.scene_size, config.margin
    area_ratio = ((size + 2 * m) / size) ** 2
    counts = rng.poisson(config.objects_per_scene * area_ratio, int(n_scenes))
    total = int(counts.sum())
    xy = rng.uniform(-0.5 - m, size - 0.5 + m, (total, 2))
    return ScenePlan(start=np.concatenate([[0], np.cumsum(counts)]), x=xy[:, 0], y=xy[:, 1])


def scene_wcs_header(config: RenderConfig, scene: int, n_scenes: int
                     ) -> tuple[str, int, int]:
    """TAN WCS header text and offset of a scene laid out on a virtual mosaic grid."""
    from astropy.wcs import WCS

    size = config.scene_size
    ncol = int(np.ceil(np.sqrt(n_scenes)))
    nrow = int(np.ceil(n_scenes / ncol))
    x0, y0 = (scene % ncol) * size, (scene // ncol) * size
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = list(config.survey.field_center)
    # FITS crpix is 1-based: mosaic centre, shifted into this scene's pixel frame
    w.wcs.crpix = [0.5 * ncol * size + 0.5 - x0, 0.5 * nrow * size + 0.5 - y0]
    scale = config.survey.pixel_scale / 3600.0
    w.wcs.cdelt = [-scale, scale]
    header = w.to_header()
    header["NAXIS1"], header["NAXIS2"] = size, size
    return header.tostring(), x0, y0


# --- per-process GalSim state --------------------------------------------------------
_PSF_CACHE: dict[tuple[str, str], Any] = {}


def _psf(description: dict[str, Any], band: str):
    key = (json.dumps(description, sort_keys=True), band)
    if key not in _PSF_CACHE:
        _PSF_CACHE[key] = make_psf(description, band)
    return _PSF_CACHE[key]


def galaxy_profile(re_maj: float, sersic_n: float, q: float, pa_deg: float,
                   bulge_fraction: float = 0.0, re_bulge: float = 0.0,
                   q_bulge: float = 1.0):
    """Unit-flux GalSim profile: Sersic disk (+ de Vaucouleurs bulge).

    Half-light radii are along the major axis (arcsec); profiles are truncated at 8
    half-light radii and renormalised, so the drawn flux is the catalog flux.
    """
    import galsim

    beta = float(pa_deg) * galsim.degrees
    q = float(np.clip(q, 0.05, 1.0))
    hlr = max(float(re_maj) * np.sqrt(q), 1.0e-4)
    n = float(np.clip(sersic_n, 0.3, 6.2))
    disk = galsim.Sersic(n=n, half_light_radius=hlr, trunc=8.0 * hlr, flux_untruncated=True)
    disk = disk.withFlux(1.0).shear(q=q, beta=beta)
    if bulge_fraction > 0 and re_bulge > 0:
        qb = float(np.clip(q_bulge, 0.05, 1.0))
        hlr_b = max(float(re_bulge) * np.sqrt(qb), 1.0e-4)
        bulge = galsim.DeVaucouleurs(half_light_radius=hlr_b, trunc=8.0 * hlr_b,
                                     flux_untruncated=True)
        bulge = bulge.withFlux(1.0).shear(q=qb, beta=beta)
        return galsim.Add([disk * (1.0 - bulge_fraction), bulge * bulge_fraction])
    return disk


def render_scene(task: dict[str, Any]) -> dict[str, Any]:
    """Render one scene (runs in a worker process).

    ``task`` holds ``scene``, ``n_scenes``, ``config`` (:class:`RenderConfig`), ``psf``
    (description), ``catalog`` (column dict of this scene's galaxies), ``x``, ``y``
    (positions), and optionally ``keep_noiseless``.

    Returns
    -------
    dict
        ``images``, ``ivar`` (C, H, W), ``segmap`` (H, W), ``objects`` (columns), ``scene``
        (row), and ``noiseless`` when asked.
    """
    import galsim
    from photutils.aperture import CircularAperture

    cfg: RenderConfig = task["config"]
    bands = cfg.survey.bands
    cat = task["catalog"]
    xs, ys = np.asarray(task["x"], float), np.asarray(task["y"], float)
    size, scale = cfg.scene_size, cfg.survey.pixel_scale
    sigma = cfg.noise_sigma
    nb, ngal = len(bands), xs.size
    psfs = [_psf(task["psf"], b) for b in bands]
    image = np.zeros((nb, size, size))
    ap_radius = cfg.snr_aperture_arcsec / scale
    ap_noise = sigma * np.sqrt(np.pi * ap_radius**2)
    det_maps: list[tuple[int, int, np.ndarray] | None] = []
    ap_flux = np.zeros((ngal, nb))
    scene_bounds = galsim.BoundsI(0, size - 1, 0, size - 1)
    has_bulge = all(c in cat for c in BULGE_COLUMNS)
    for j in range(ngal):
        prof = galaxy_profile(
            cat["Re_maj"][j], cat["sersic_n"][j], cat["axis_ratio"][j],
            cat["position_angle"][j],
            *(cat[c][j] for c in BULGE_COLUMNS) if has_bulge else (),
        )
        center = galsim.PositionD(xs[j], ys[j])
        aperture = CircularAperture((xs[j], ys[j]), ap_radius).to_mask(method="exact")
        stamps = []
        for b in range(nb):
            flux = float(cat[f"{bands[b]}_fnu"][j])
            if not flux > 0:
                continue
            st = galsim.Convolve(prof, psfs[b]).withFlux(flux).drawImage(
                scale=scale, center=center)
            ov = st.bounds & scene_bounds
            if ov.isDefined():
                image[b, ov.ymin:ov.ymax + 1, ov.xmin:ov.xmax + 1] += st[ov].array
            ap_flux[j, b] = _sum_in_mask(st, aperture)
            stamps.append((b, st))
        det_maps.append(_detection_map(stamps, sigma, nb, scene_bounds))

    # segmentation: owner of each pixel = object with the largest detection S/N there
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
    area = np.bincount(owner[owner >= 0], minlength=ngal)
    # the scene's catalog: galaxies centred in it; neighbours centred outside still shine in
    inside = (xs >= -0.5) & (xs < size - 0.5) & (ys >= -0.5) & (ys < size - 0.5)
    keep = np.flatnonzero((area >= cfg.min_footprint_pixels) & inside)
    owner[~np.isin(owner, keep)] = -1
    ids = np.asarray(cat["id"], dtype=np.int64)
    segmap = np.where(owner >= 0, ids[np.maximum(owner, 0)], 0).astype(np.int32)

    # blendedness: 1 - <d_j, d_j> / <d_j, d_total> over the scene (HSC definition)
    total = np.zeros((size, size))
    for dm in det_maps:
        if dm is not None:
            x0, y0, d = dm
            total[y0:y0 + d.shape[0], x0:x0 + d.shape[1]] += d
    blend = np.zeros(ngal)
    for j in keep:
        x0, y0, d = det_maps[j]
        tot = total[y0:y0 + d.shape[0], x0:x0 + d.shape[1]]
        blend[j] = 1.0 - float(np.sum(d * d)) / max(float(np.sum(d * tot)), 1e-30)

    rng = np.random.default_rng([cfg.seed, 1, int(task["scene"])])
    noisy = image + rng.standard_normal(image.shape) * sigma[:, None, None]
    ivar = np.broadcast_to((1.0 / sigma**2)[:, None, None], image.shape).astype(np.float32)
    header, x0, y0 = scene_wcs_header(cfg, int(task["scene"]), int(task["n_scenes"]))
    objects = _object_table(cfg, cat, keep, owner, xs, ys, ap_flux, ap_noise, area, blend,
                            header)
    out = {
        "images": noisy.astype(np.float32),
        "ivar": ivar,
        "segmap": segmap,
        "objects": objects,
        "scene": {"wcs": header, "x0": x0, "y0": y0, "tile": int(task["scene"])},
    }
    if task.get("keep_noiseless"):
        out["noiseless"] = image
    return out


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


def _detection_map(stamps, sigma, nbands, scene_bounds):
    """Chi-mean detection-image S/N of one object, on the scene region its stamps cover."""
    region = None
    for _, st in stamps:
        ov = st.bounds & scene_bounds
        if ov.isDefined():
            region = ov if region is None else region + ov
    if region is None:
        return None
    d = np.zeros((region.ymax - region.ymin + 1, region.xmax - region.xmin + 1))
    for b, st in stamps:
        ov = st.bounds & region
        if ov.isDefined():
            d[ov.ymin - region.ymin:ov.ymax - region.ymin + 1,
              ov.xmin - region.xmin:ov.xmax - region.xmin + 1] += st[ov].array / sigma[b]
    return region.xmin, region.ymin, d / np.sqrt(nbands)


def _object_table(cfg, cat, keep, owner, xs, ys, ap_flux, ap_noise, area, blend, header):
    from astropy.io import fits
    from astropy.wcs import WCS
    from scipy import ndimage

    bands = cfg.survey.bands
    size = cfg.scene_size
    n = keep.size
    boxes = ndimage.find_objects(owner + 1, max_label=xs.size)
    bbox = np.zeros((n, 4), dtype=np.int32)
    for i, j in enumerate(keep):
        sy, sx = boxes[j]
        bbox[i] = (sx.start, sy.start, sx.stop, sy.stop)
    wcs = WCS(fits.Header.fromstring(header))
    ra, dec = wcs.all_pix2world(xs[keep], ys[keep], 0) if n else (np.zeros(0), np.zeros(0))
    edge = np.minimum.reduce([xs[keep] + 0.5, ys[keep] + 0.5, size - 0.5 - xs[keep],
                              size - 0.5 - ys[keep]]) if n else np.zeros(0)
    out: dict[str, np.ndarray] = {
        "object_id": np.asarray(cat["id"], dtype=np.int64)[keep],
        "x": xs[keep], "y": ys[keep],
        "bbox_x0": bbox[:, 0], "bbox_y0": bbox[:, 1],
        "bbox_x1": bbox[:, 2], "bbox_y1": bbox[:, 3],
        "ra": np.asarray(ra, float), "dec": np.asarray(dec, float),
        "redshift": np.asarray(cat["redshift"], float)[keep],
        "redshift_kind": np.full(n, b"true", dtype="S4"),
        "footprint_area": area[keep].astype(np.int32),
        "blendedness": blend[keep].astype(np.float32),
        "edge_distance": edge.astype(np.float32),
    }
    for b, band in enumerate(bands):
        flux = np.asarray(cat[f"{band}_fnu"], float)[keep]
        snr = ap_flux[keep, b] / ap_noise[b]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"mag_{band}"] = np.where(flux > 0, NJY_ZEROPOINT - 2.5 * np.log10(
                np.where(flux > 0, flux, 1.0)), np.inf)
            out[f"mag_err_{band}"] = np.where(snr > 0, _MAG_ERR_COEFF / snr, np.inf)
        out[f"flux_{band}"] = flux
        out[f"snr_{band}"] = snr
    for col in PASSTHROUGH_COLUMNS:
        if col in cat:
            out[col] = np.asarray(cat[col])[keep]
    return out


def _ordered_parallel_map(func: Callable, tasks: Iterator, n_workers: int,
                          window: int) -> Iterator:
    """``map`` over processes, in order, with at most ``window`` tasks in flight."""
    if n_workers <= 1:
        yield from map(func, tasks)
        return
    with ProcessPoolExecutor(n_workers, mp_context=get_context("spawn")) as pool:
        pending: deque = deque()
        for task in tasks:
            pending.append(pool.submit(func, task))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def render_catalog(catalog: Mapping[str, np.ndarray], n_scenes: int, config: RenderConfig,
                   output: str | os.PathLike, *, n_workers: int | None = None,
                   provenance: str = "{}", progress: bool = True) -> str:
    """Render ``n_scenes`` scenes from a catalog into a scene store at ``output``.

    Catalog rows are used in order, each galaxy once. Everything is checked before the
    first scene is drawn; the store appears at ``output`` only when complete.

    Returns
    -------
    str
        The output path.
    """
    from tqdm.auto import tqdm

    config.validate()
    bands = config.survey.bands
    n_rows = check_catalog(catalog, bands)
    plan = plan_scenes(n_scenes, config)
    if plan.n_needed > n_rows:
        raise ValueError(
            f"catalog has {n_rows} galaxies but {n_scenes} scenes of {config.scene_size}^2 "
            f"pixels at {config.objects_per_scene} objects per scene need {plan.n_needed} "
            "(margins included); give a larger catalog or fewer scenes")
    n_workers = default_workers() if not n_workers else int(n_workers)
    psf = psf_description(config.survey, config.psf)
    cols = [c for c in (*REQUIRED_CATALOG_COLUMNS, *BULGE_COLUMNS, *PASSTHROUGH_COLUMNS,
                        *(f"{b}_fnu" for b in bands)) if c in catalog]
    columns = {c: np.asarray(catalog[c]) for c in dict.fromkeys(cols)}

    def tasks() -> Iterator[dict[str, Any]]:
        for k in range(int(n_scenes)):
            sl = slice(int(plan.start[k]), int(plan.start[k + 1]))
            yield {"scene": k, "n_scenes": int(n_scenes), "config": config, "psf": psf,
                   "catalog": {c: v[sl] for c, v in columns.items()},
                   "x": plan.x[sl], "y": plan.y[sl]}

    log.info("rendering %d %s scenes of %dx%dx%d on %d process(es)", n_scenes,
             config.survey.name, config.scene_size, config.scene_size, len(bands), n_workers)
    with SceneWriter(output, bands, config.scene_size, config.scene_size,
                     pixel_scale_arcsec=config.survey.pixel_scale, zeropoint_ab=NJY_ZEROPOINT,
                     flux_unit="nJy", survey=config.survey.name, provenance=provenance,
                     attrs={"psf": json.dumps(psf, sort_keys=True),
                            "noise_sigma": config.noise_sigma.tolist()}) as writer:
        results = _ordered_parallel_map(render_scene, tasks(), n_workers, 4 * n_workers)
        for res in tqdm(results, total=int(n_scenes), desc="render", unit="scene",
                        disable=not progress):
            writer.add_scenes(res["images"][None], [res["objects"]], [res["scene"]],
                              ivar=res["ivar"][None], segmap=res["segmap"][None])
    return os.fspath(output)
