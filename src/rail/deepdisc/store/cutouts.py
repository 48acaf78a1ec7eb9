"""Per-object cutouts and a catalog into a scene store: one scene per cutout, forced mode.

What the cutout services deliver (:mod:`rail.deepdisc.store.cutout_formats`: Legacy Surveys
cubes, HSC-SSP files per band, generic arrays) becomes a scene store that every stage reads
(:func:`import_cutouts`, ``rail-deepdisc cutouts``, the ``CutoutImporter`` stage):

* each catalog object (``id_col``, ``ra_col``, ``dec_col``, optional ``redshift_col``; see
  :class:`~rail.deepdisc.store.catalogs.CatalogColumns`) has its cutout: the file the
  template ``cutouts`` names with its id (``ls/{id}.fits``; HSC: ``hsc/{id}_{band}.fits``),
  or in an array file the cutout with its id (``id_key``) or, without ids, in its catalog
  row; a catalog id whose cutout is missing is an error, before any pixel is read;
* one scene per cutout, in catalog order, listing one object, the catalog object: its
  position from the cutout's WCS (arrays: a TAN WCS centred on its catalog position, from
  ``pixel_scale``), its catalog redshift (``redshift_kind`` where known), ``catalog_row``;
  its ``object_id`` is its catalog id, unless the catalog's ids do not fit the int32
  ``/segmap`` (e.g. DESI's 64-bit TARGETID): then objects are numbered by catalog row
  (``catalog_row + 1``) and the ids are kept as ``catalog_id``;
  its neighbours stay in the pixels, unlisted, as background in ``/segmap``;
* pixels in nJy per pixel (units: :func:`~rail.deepdisc.store.cutout_formats.to_njy_factor`),
  inverse variance from the cutout's own planes, else from the depths of ``survey``
  (:meth:`~rail.deepdisc.sim.surveys.SurveyPreset.pixel_noise_njy` at the cutout's pixel
  scale); pixels without data (non-finite, no weight, masked, or zero padding along the
  edge; :func:`~rail.deepdisc.store.cutout_footprints.missing_pixels`) are image 0, ivar 0;
* the object's box from four catalog columns (``box_cols``, cutout pixels) when given,
  else the bounding box of its footprint in a segmentation of the cutout (photutils,
  :func:`~rail.deepdisc.store.cutout_footprints.central_footprint`), else ``size_col``
  times ``size_scale`` on each side, else ``min_box`` pixels (column ``box_origin``: 0
  catalog box, 1 footprint, 2 size column, 3 fixed square). ``/segmap`` holds the footprint;
* all scenes share one size: cutouts smaller than the largest are padded on every side
  evenly (image 0, ivar 0; the WCS and positions shifted with them). The network pads
  every image to a multiple of 32 pixels itself, so cutouts of ~16 pixels and up need
  nothing more.

Bad inputs (a cube whose band count differs from its band list, no WCS and no pixel scale,
a cutout without any pixel with data, catalog ids matching no cutout, pixels whose unit is
missing, ...) raise an :class:`~rail.deepdisc.errors.InputError` naming the file; the store
is written atomically, so nothing is written then.
"""

from __future__ import annotations

import logging
import os
import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.magnitudes import NJY_ZEROPOINT
from rail.deepdisc.options import Options, option
from rail.deepdisc.store.atomic import check_output_path
from rail.deepdisc.store.catalogs import Catalog, CatalogColumns, load_catalog, read_table
from rail.deepdisc.store.cutout_footprints import central_footprint, missing_pixels
from rail.deepdisc.store.cutout_formats import (
    CUTOUT_FORMATS,
    ArrayCutouts,
    Cutout,
    celestial_wcs,
    legacy_band_letters,
    read_hsc,
    read_legacy,
    shifted_wcs_header,
    tangent_header,
    to_njy_factor,
)
from rail.deepdisc.store.mosaic import BoxOptions, object_boxes
from rail.deepdisc.store.provenance import provenance_json
from rail.deepdisc.store.scenes import SceneWriter

log = logging.getLogger(__name__)

#: the survey each format's depths come from when its cutouts have no inverse variance
DEFAULT_SURVEYS = {"legacy": "legacy_dr10", "hsc": "hsc_wide", "array": ""}
#: Legacy Surveys band letters -> store bands (DECam, as DR10 south)
LEGACY_BANDS = {"g": "decam_g", "r": "decam_r", "i": "decam_i", "z": "decam_z"}
#: where an object's box came from (column ``box_origin``)
BOX_ORIGINS = {"catalog": 0, "footprint": 1, "size": 2, "fixed": 3}
#: scenes handed to the store writer at once
_BATCH = 64


@dataclass(frozen=True, kw_only=True)
class CutoutConfig(Options):
    """What cutouts to read and how (the options of ``CutoutImporter`` and ``cutouts``)."""

    format: str = option(help="how the cutouts are delivered: 'legacy' (Legacy Surveys cube "
                         "per object), 'hsc' (HSC-SSP file per band per object), 'array' "
                         "(N x bands x H x W in .npy/.npz/HDF5)", choices=CUTOUT_FORMATS)
    cutouts: str = option(help="legacy: path template with {id} (e.g. ls/{id}.fits); hsc: "
                          "with {id} and {band} (hsc/{id}_{band}.fits); array: the file",
                          metavar="TEMPLATE|FILE")
    bands: tuple[str, ...] = option(
        (), "store band names in channel order (hsc, array: required; legacy: default "
        "from the file headers through header_bands)", metavar="BAND")
    header_bands: dict[str, str] = option(
        dict(LEGACY_BANDS), "legacy: band name in the file headers -> store band",
        flag="header-band", metavar="LETTER=BAND")
    file_bands: dict[str, str] = option(
        {}, "hsc: the text {band} stands for in file names, per store band (default: the "
        "band name)", flag="file-band", metavar="BAND=TEXT")
    unit: str = option("", "unit of the pixels: nJy, uJy, mJy, Jy, nanomaggy, MJy/sr, counts "
                       "(with zeropoint), ... (legacy: default BUNIT, else nanomaggy; hsc: "
                       "default FLUXMAG0; array: required)")
    zeropoint: float | None = option(
        None, "AB magnitude of one count (counts; hsc: instead of FLUXMAG0)", gt=-50, lt=60)
    pixel_scale: float | None = option(
        None, "arcsec per pixel of cutouts without WCS (array: required)", gt=0)
    survey: str | None = option(
        None, "survey preset or file whose depths give the inverse variance of cutouts "
        "without one, and whose name the store records (default: legacy_dr10 for legacy, "
        "hsc_wide for hsc, none for array; '' for none)")
    array_key: str = option("images", "array: name of the cutouts (npz key, HDF5 dataset)")
    ivar_key: str = option("ivar", "array: name of the optional inverse variance")
    id_key: str = option("id", "array: name of the optional ids (else cutout i is catalog "
                         "row i)")
    hsc_mask_planes: tuple[str, ...] = option(
        ("NO_DATA", "BAD", "SAT", "CR", "SUSPECT"), "hsc: MASK planes whose pixels get no "
        "weight", metavar="PLANE")
    columns: CatalogColumns = field(default_factory=CatalogColumns)
    boxes: BoxOptions = field(default_factory=BoxOptions)
    box_cols: tuple[str, ...] = option(
        (), "four catalog columns with the object's box x0 y0 x1 y1 (half-open, 0-based "
        "cutout pixels; default: its footprint)", metavar="COLUMN")
    detect_threshold: float = option(
        1.5, "detection-image S/N per smoothed pixel of the object's footprint", gt=0)
    detect_npixels: int = option(5, "fewest pixels of a footprint", ge=1)
    detect_fwhm: float = option(2.0, "FWHM (pixels) of the Gaussian smoothing the "
                                "detection image", gt=0)

    def _check(self) -> None:
        from rail.deepdisc.spectra.bands import validate_bands

        fields = {name for _, name, _, _ in string.Formatter().parse(self.cutouts) if name}
        need = {"legacy": {"id"}, "hsc": {"id", "band"}, "array": set()}[self.format]
        if fields != need:
            raise OptionError(f"cutouts {self.cutouts!r}: a {self.format} cutouts value "
                              + (f"must hold {sorted('{' + n + '}' for n in need)} and no "
                                 "other {...}" if need else "is a file name, without {...}"))
        if self.format in ("hsc", "array") and not self.bands:
            raise OptionError(f"bands: the {self.format} format needs the store band names "
                              "(e.g. bands: [hsc_g, hsc_r, hsc_i])")
        try:
            validate_bands(self.bands or list(self.header_bands.values()), "bands",
                           self.survey_filters())
        except OptionError as err:
            raise OptionError(str(err)) from None
        unknown = sorted(set(self.file_bands) - set(self.bands))
        if unknown:
            raise OptionError(f"file_bands names bands {unknown} that are not among bands "
                              f"{list(self.bands)}")
        if self.box_cols and len(self.box_cols) != 4:
            raise OptionError(f"box_cols needs four columns (x0 y0 x1 y1), got "
                              f"{list(self.box_cols)}")
        if self.survey:
            from rail.deepdisc.sim.surveys import get_survey

            get_survey(self.survey)

    @property
    def survey_name(self) -> str:
        """The survey preset or file of the depths ('' for none)."""
        return DEFAULT_SURVEYS[self.format] if self.survey is None else self.survey

    def survey_filters(self) -> dict:
        """The filters of the survey's bands (band -> BandFilter; {} without a survey)."""
        if not self.survey_name:
            return {}
        from rail.deepdisc.sim.surveys import get_survey

        return get_survey(self.survey_name).filters

    def input_paths(self) -> list[str]:
        """The files the import reads that are known before the catalog is (the array)."""
        return [self.cutouts] if self.format == "array" else []


@dataclass
class CutoutSummary:
    """What an import did (also stored in the provenance)."""

    output: str
    n_cutouts: int
    n_labelled: int
    height: int
    width: int
    n_padded: int
    boxes: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- planning
@dataclass
class _Plan:
    """Where each catalog object's cutout is, and the store's bands and size."""

    bands: tuple[str, ...]
    files: list[list[str]]           # per object: its file(s) (legacy: 1, hsc: one per band)
    index: np.ndarray | None         # array format: cutout index per object
    shapes: np.ndarray               # (n, 2) height, width per object
    arrays: ArrayCutouts | None = None


def _template_files(cfg: CutoutConfig, cat: Catalog) -> list[list[str]]:
    bands = cfg.bands if cfg.format == "hsc" else (None,)
    files = [[os.path.expandvars(cfg.cutouts.format(id=int(i), band=cfg.file_bands.get(b, b)))
              for b in bands] for i in cat.ids]
    missing = [(int(i), f) for i, fs in zip(cat.ids, files, strict=True) for f in fs
               if not os.path.isfile(f)]
    if missing:
        i, f = missing[0]
        raise InputError(f"catalog {cat.source}: id {i} matches no cutout: {f} does not exist "
                         f"({len(missing)} cutout files of {len(files)} objects are missing)")
    return files


def _legacy_plan(cfg: CutoutConfig, cat: Catalog) -> _Plan:
    from astropy.io import fits

    files = _template_files(cfg, cat)
    bands: tuple[str, ...] | None = tuple(cfg.bands) or None
    shapes = np.zeros((len(files), 2), np.int64)
    for k, (path,) in enumerate(files):
        try:
            header = fits.getheader(path, 0)
        except OSError as err:
            raise InputError(f"Legacy Surveys cutout {path} is not a readable FITS file: "
                             f"{err}") from err
        letters = legacy_band_letters(header, path)
        naxis = int(header.get("NAXIS", 0))
        depth = int(header.get("NAXIS3", 1)) if naxis == 3 else 1
        if naxis not in (2, 3) or depth != len(letters):
            raise InputError(f"Legacy Surveys cutout {path}: its cube holds {depth} bands but "
                             f"its header lists {len(letters)} ({''.join(letters)})")
        unknown = [b for b in letters if b not in cfg.header_bands]
        if unknown:
            raise InputError(f"Legacy Surveys cutout {path}: bands {unknown} of its header "
                             f"have no store band (header_bands maps {cfg.header_bands})")
        mine = tuple(cfg.header_bands[b] for b in letters)
        if bands is None:
            bands = mine
        elif mine != bands:
            raise InputError(f"Legacy Surveys cutout {path} holds bands {list(mine)}, not "
                             f"{list(bands)} (band list {''.join(letters)}); give cutouts of "
                             "one band list")
        shapes[k] = int(header["NAXIS2"]), int(header["NAXIS1"])
    return _Plan(bands, files, None, shapes)


def _hsc_plan(cfg: CutoutConfig, cat: Catalog) -> _Plan:
    from astropy.io import fits

    files = _template_files(cfg, cat)
    shapes = np.zeros((len(files), 2), np.int64)
    for k, paths in enumerate(files):
        try:
            with fits.open(paths[0]) as hdul:
                names = [h.name for h in hdul]
                header = hdul["IMAGE" if "IMAGE" in names else 1].header
                shapes[k] = int(header.get("NAXIS2", 0)), int(header.get("NAXIS1", 0))
        except (OSError, IndexError, KeyError) as err:
            raise InputError(f"HSC cutout {paths[0]} has no readable IMAGE extension: "
                             f"{err}") from err
    return _Plan(tuple(cfg.bands), files, None, shapes)


def _array_plan(cfg: CutoutConfig, cat: Catalog) -> _Plan:
    arrays = ArrayCutouts(cfg.cutouts, cfg.array_key, cfg.ivar_key, cfg.id_key)
    if arrays.n_bands != len(cfg.bands):
        raise InputError(f"cutout array file {cfg.cutouts}: its cutouts hold {arrays.n_bands} "
                         f"bands but the band list has {len(cfg.bands)} ({list(cfg.bands)})")
    if arrays.ids is not None:
        order = np.argsort(arrays.ids)
        pos = np.clip(np.searchsorted(arrays.ids, cat.ids, sorter=order), 0, len(arrays) - 1)
        index = order[pos]
        missing = cat.ids[arrays.ids[index] != cat.ids]
        if missing.size:
            raise InputError(f"catalog {cat.source}: ids {missing[:5].tolist()} match no cutout "
                             f"of {cfg.cutouts} ({missing.size} ids; its {cfg.id_key!r} holds "
                             f"{len(arrays)})")
    else:
        rows = len(cat) + cat.n_dropped
        if rows != len(arrays):
            raise InputError(f"cutout array file {cfg.cutouts} holds {len(arrays)} cutouts but "
                             f"catalog {cat.source} has {rows} rows, and the file has no ids "
                             f"({cfg.id_key!r}) to match them by")
        index = cat.rows
    shapes = np.tile(np.array(arrays.images.shape[2:], np.int64), (len(cat), 1))
    return _Plan(tuple(cfg.bands), [[cfg.cutouts]] * len(cat), np.asarray(index), shapes,
                 arrays)


# --------------------------------------------------------------------------- one cutout
def _read(cfg: CutoutConfig, plan: _Plan, k: int, ra: float, dec: float,
          array_factor: float) -> Cutout:
    if cfg.format == "legacy":
        cutout, _ = read_legacy(plan.files[k][0], cfg.unit, cfg.zeropoint)
    elif cfg.format == "hsc":
        cutout = read_hsc(plan.files[k], cfg.unit, cfg.zeropoint, cfg.hsc_mask_planes)
    else:
        i = int(plan.index[k])
        image, ivar = plan.arrays.read(i, array_factor)
        cutout = Cutout(image, ivar, None, f"{cfg.cutouts}[{i}]")
    if cutout.header is None:
        if cfg.pixel_scale is None:
            raise InputError(f"cutout {cutout.source} has no WCS and no pixel scale is given "
                             "(pixel_scale)")
        h, w = cutout.image.shape[1:]
        cutout.header, cutout.wcs = tangent_header(ra, dec, cfg.pixel_scale, h, w), None
    if cutout.celestial() is None:
        raise InputError(f"cutout {cutout.source}: its header has no celestial WCS")
    return cutout


def _pixel_scale(wcs: Any) -> float:
    """Arcsec per pixel of a celestial WCS (square pixels)."""
    from astropy.wcs.utils import proj_plane_pixel_area

    return float(np.sqrt(proj_plane_pixel_area(wcs)) * 3600.0)


class _SceneMaker:
    """Turns each cutout into a scene of the common size (pixels, ivar, segmap, object)."""

    def __init__(self, cfg: CutoutConfig, cat: Catalog, plan: _Plan, noise: np.ndarray | None,
                 boxes: np.ndarray | None, scale: float):
        self.cfg, self.cat, self.plan = cfg, cat, plan
        self.noise, self.boxes, self.scale = noise, boxes, scale
        self.height, self.width = (int(v) for v in plan.shapes.max(axis=0))
        self.half = cfg.boxes.half_sizes(cat.size, cfg.columns.size_unit, scale)
        self.counts = dict.fromkeys(BOX_ORIGINS, 0)
        # object ids: the catalog's, or row numbers when those do not fit the int32 segmap
        self.renumbered = bool(cat.ids.max() > np.iinfo(np.int32).max)
        self.object_ids = cat.rows + 1 if self.renumbered else cat.ids
        self.n_padded = 0

    def __call__(self, k: int, cutout: Cutout) -> tuple[np.ndarray, ...]:
        cfg, cat = self.cfg, self.cat
        h, w = cutout.image.shape[1:]
        wcs = cutout.celestial()
        scale = _pixel_scale(wcs)
        if abs(scale - self.scale) > 0.01 * self.scale:
            raise InputError(f"cutout {cutout.source} has {scale:.4g}\"/pixel but the first "
                             f"has {self.scale:.4g}\"; give cutouts of one pixel scale")
        image, ivar = cutout.image, cutout.ivar
        if ivar is None:
            ivar = np.broadcast_to((1.0 / self.noise**2).astype(np.float32)[:, None, None],
                                   image.shape)
        bad = missing_pixels(image, cutout.ivar)
        if bad.all():
            raise InputError(f"cutout {cutout.source} holds no pixel with data (all NaN, "
                             "masked or zero padding)")
        image = np.where(bad, np.float32(0), image).astype(np.float32)
        ivar = np.where(bad, np.float32(0), ivar).astype(np.float32)
        x, y = (float(v) for v in wcs.all_world2pix(cat.ra[k], cat.dec[k], 0))
        if not (-0.5 <= x < w - 0.5 and -0.5 <= y < h - 0.5):
            raise InputError(f"cutout {cutout.source}: the catalog position of id "
                             f"{cat.ids[k]} (RA {cat.ra[k]:.6f}, Dec {cat.dec[k]:.6f}) lies "
                             f"outside it, at pixel ({x:.1f}, {y:.1f}) of {w} x {h}")
        px, py = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        if bad[:, py, px].all():
            raise InputError(f"cutout {cutout.source}: no band has data at the position of "
                             f"id {cat.ids[k]}")
        # pad to the common size, evenly on every side
        dy, dx = (self.height - h) // 2, (self.width - w) // 2
        if (h, w) != (self.height, self.width):
            self.n_padded += 1
            pad = ((0, 0), (dy, self.height - h - dy), (dx, self.width - w - dx))
            image, ivar = np.pad(image, pad), np.pad(ivar, pad)
        x, y = x + dx, y + dy
        foot = central_footprint(image, ivar, x, y, cfg.detect_threshold, cfg.detect_npixels,
                                 cfg.detect_fwhm)
        oid = np.array([self.object_ids[k]], np.int64)
        segmap = np.zeros((self.height, self.width), np.int32)
        if foot is not None:
            segmap[foot] = oid[0]
        if self.boxes is not None:
            box = np.clip(self.boxes[k] + [dx, dy, dx, dy], 0,
                          [self.width, self.height, self.width, self.height])
            origin = "catalog"
        else:
            half = None if self.half is None else self.half[k:k + 1]
            box = object_boxes(np.array([x]), np.array([y]), oid,
                               segmap if foot is not None else None, half, cfg.boxes.min_box,
                               (self.height, self.width))[0]
            origin = "footprint" if foot is not None else \
                "size" if half is not None and np.isfinite(half[0]) and half[0] > 0 else "fixed"
        self.counts[origin] += 1
        z = cat.redshift[k]
        obj = {"object_id": oid, "x": np.array([x]), "y": np.array([y]),
               "bbox_x0": np.array([box[0]]), "bbox_y0": np.array([box[1]]),
               "bbox_x1": np.array([box[2]]), "bbox_y1": np.array([box[3]]),
               "ra": cat.ra[k:k + 1], "dec": cat.dec[k:k + 1], "redshift": np.array([z]),
               "redshift_kind": np.array([cfg.columns.redshift_kind if np.isfinite(z)
                                          else "none"], "S4"),
               "catalog_row": cat.rows[k:k + 1],
               **({"catalog_id": cat.ids[k:k + 1]} if self.renumbered else {}),
               "box_origin": np.array([BOX_ORIGINS[origin]], np.int8),
               **{c: v[k:k + 1] for c, v in cat.extra.items()}}
        scene = {"wcs": shifted_wcs_header(wcs, dx, dy, self.height, self.width),
                 "x0": 0, "y0": 0, "tile": k}
        return image, ivar, segmap, obj, scene


def _catalog_boxes(cfg: CutoutConfig, source: Any, cat: Catalog) -> np.ndarray | None:
    if not cfg.box_cols:
        return None
    table, name = read_table(source, cfg.columns.catalog_key)
    missing = [c for c in cfg.box_cols if c not in table]
    if missing:
        raise InputError(f"{name} has no box columns {missing} (box_cols); its columns are "
                         f"{sorted(table)}")
    boxes = np.stack([np.asarray(table[c], float) for c in cfg.box_cols], axis=1)[cat.rows]
    bad = ~np.all(np.isfinite(boxes), axis=1) | (boxes[:, 2] <= boxes[:, 0]) | \
        (boxes[:, 3] <= boxes[:, 1])
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputError(f"{name}: the box {boxes[k].tolist()} of id {cat.ids[k]} "
                         f"(box_cols {list(cfg.box_cols)}) is empty or not finite")
    return np.round(boxes).astype(np.int64)


def _array_factor(cfg: CutoutConfig, cat: Catalog, plan: _Plan) -> float:
    """nJy per pixel of one unit of an array file's pixels (surface brightness: through the
    pixel solid angle of ``pixel_scale``)."""
    where = f"cutout array file {cfg.cutouts}"
    if cfg.pixel_scale is None:
        raise InputError(f"{where}: arrays have no WCS and no pixel scale is given "
                         "(pixel_scale)")
    h, w = (int(v) for v in plan.shapes[0])
    header = tangent_header(cat.ra[0], cat.dec[0], cfg.pixel_scale, h, w)
    return to_njy_factor(cfg.unit, cfg.zeropoint, header, celestial_wcs(header, where), where)


def _survey_noise(cfg: CutoutConfig, bands: tuple[str, ...], scale: float, where: str
                  ) -> np.ndarray:
    """Pixel noise (nJy) per band from the survey's depths, at the cutouts' pixel scale."""
    if not cfg.survey_name:
        raise InputError(f"{where} has no inverse variance; give it (ivar_key) or a survey "
                         "whose depths give it (survey)")
    from rail.deepdisc.sim.surveys import get_survey

    preset = get_survey(cfg.survey_name)
    missing = [b for b in bands if b not in preset.bands]
    if missing:
        raise InputError(f"{where} has no inverse variance and survey {preset.name} has no "
                         f"depths for bands {missing} (it has {list(preset.bands)})")
    sigma = preset.pixel_noise_njy(pixel_scale=scale)
    return np.array([sigma[preset.bands.index(b)] for b in bands])


def _store_attrs(cfg: CutoutConfig, bands: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """The store's survey name and further root attributes (filters, detection band)."""
    from rail.deepdisc.spectra.bands import filters_attr

    attrs: dict[str, Any] = {"filters": filters_attr(bands, cfg.survey_filters()),
                             "cutout_format": cfg.format}
    if not cfg.survey_name:
        return "", attrs
    from rail.deepdisc.sim.surveys import get_survey

    survey = get_survey(cfg.survey_name)
    if survey.detection_band in bands:
        attrs["detection_band"] = survey.detection_band
    return survey.name, attrs


def import_cutouts(cfg: CutoutConfig, catalog: Any, output: str | os.PathLike, *,
                   progress: bool = False, provenance: Mapping[str, Any] | None = None
                   ) -> CutoutSummary:
    """Read the cutouts of ``cfg`` for the objects of ``catalog`` into a scene store.

    Parameters
    ----------
    cfg
        What to read (checked first).
    catalog
        The catalog: a path (FITS, CSV, ECSV, HDF5, Parquet) or an in-memory table.
    output
        Scene store to write (atomically: nothing appears on failure).
    progress
        Show a progress bar over cutouts.
    provenance
        Extra entries for the provenance record (e.g. the calling stage's config).

    Raises
    ------
    OptionError, OutputPathError, InputError
        Bad options or output path; a catalog id without its cutout, a cutout band list
        that differs from its cube (before any pixel is read); a cutout without WCS or
        pixel scale, without any pixel with data, or whose unit is missing (naming the file;
        nothing is written).
    """
    from tqdm.auto import tqdm

    cfg.validate()
    is_path = isinstance(catalog, (str, os.PathLike))
    out_path = check_output_path(output, "scene store",
                                 inputs=[*cfg.input_paths(), catalog if is_path else None])
    cat = load_catalog(catalog, cfg.columns)
    plan = {"legacy": _legacy_plan, "hsc": _hsc_plan, "array": _array_plan}[cfg.format](cfg,
                                                                                       cat)
    boxes = _catalog_boxes(cfg, catalog, cat)
    try:
        array_factor = _array_factor(cfg, cat, plan) if cfg.format == "array" else 1.0
        first = _read(cfg, plan, 0, cat.ra[0], cat.dec[0], array_factor)
        scale = _pixel_scale(first.celestial())
        has_ivar = first.ivar is not None
        noise = None if has_ivar else _survey_noise(cfg, plan.bands, scale,
                                                    f"cutout {first.source}")
        maker = _SceneMaker(cfg, cat, plan, noise, boxes, scale)
        config = {"cutouts": cfg.as_dict(), "bands": list(plan.bands),
                  "ivar": "cutout planes" if has_ivar else f"depths of {cfg.survey_name}",
                  "noise_njy": None if noise is None else noise.tolist(),
                  "catalog": {"source": cat.source, "rows": len(cat) + cat.n_dropped,
                              "dropped_no_position": cat.n_dropped}, **dict(provenance or {})}
        survey, attrs = _store_attrs(cfg, plan.bands)
        with SceneWriter(out_path, plan.bands, maker.height, maker.width,
                         pixel_scale_arcsec=scale, zeropoint_ab=NJY_ZEROPOINT, flux_unit="nJy",
                         survey=survey, attrs=attrs) as writer:
            batch: list[tuple[np.ndarray, ...]] = []
            for k in tqdm(range(len(cat)), desc="cutout", unit="cutout", disable=not progress):
                cutout = first if k == 0 else _read(cfg, plan, k, cat.ra[k], cat.dec[k],
                                                   array_factor)
                if (cutout.ivar is not None) != has_ivar:
                    raise InputError(f"cutout {cutout.source} "
                                     f"{'has' if cutout.ivar is not None else 'lacks'} an "
                                     f"inverse variance that {first.source} "
                                     f"{'lacks' if has_ivar else 'has'}")
                batch.append(maker(k, cutout))
                if len(batch) == _BATCH or k == len(cat) - 1:
                    writer.add_scenes(np.stack([b[0] for b in batch]), [b[3] for b in batch],
                                      [b[4] for b in batch], ivar=np.stack([b[1] for b in batch]),
                                      segmap=np.stack([b[2] for b in batch]))
                    batch = []
            n_z = int(np.isfinite(cat.redshift).sum())
            summary = CutoutSummary(output=os.fspath(out_path), n_cutouts=len(cat),
                                    n_labelled=n_z, height=maker.height, width=maker.width,
                                    n_padded=maker.n_padded, boxes=dict(maker.counts))
            writer.set_provenance(provenance_json({**config, "summary": summary.as_dict()},
                                                  "rail.deepdisc.store.cutouts.import_cutouts"))
    finally:
        if plan.arrays is not None:
            plan.arrays.close()
    log.info("read %d %s cutouts into %d scenes of %d x %d pixels (%s); boxes: %s",
             summary.n_cutouts, cfg.format, summary.n_cutouts, summary.height, summary.width,
             summary.output, summary.boxes)
    return summary
