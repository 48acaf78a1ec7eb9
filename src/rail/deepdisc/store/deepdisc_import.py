"""Import data in LSSTDESC/rail_deepdisc's layout into a scene store.

rail_deepdisc (the detectron2-based RAIL wrapper) reads two tables, often in one HDF5 file:

``images``
    (N, C * H * W): each image flattened in (band, row, column) order (its estimator
    reshapes a row with ``reshape(C, H, W)``); a 4-D (N, C, H, W) dataset is accepted too.
``metadata_dicts``
    (N,) JSON strings, one per image, in detectron2's dataset-dict form (COCO-style):
    ``height``, ``width``, ``image_id``, optionally ``wcs`` (FITS header text), and
    ``annotations``: one dict per object with ``bbox`` and ``bbox_mode`` (0 = XYXY_ABS,
    1 = XYWH_ABS, the default), ``segmentation`` (polygons ``[[x1, y1, x2, y2, ...], ...]``
    in pixel coordinates, or uncompressed RLE ``{"size": [H, W], "counts": [...]}``),
    ``redshift``, ``obj_id`` and any other scalars (``mag_i``, ``category_id``, ...).

Assumptions, since the layout is defined by that code rather than a specification: all
images share one size and band count; pixel values are fluxes per pixel in ``flux_unit``
(nJy for DC2); a mask is the union of its polygons filled with their boundary pixels; where
masks overlap the smaller one keeps the pixel; an object is listed in the store when its box
centre lies inside its image (the store's convention), its box clipped to the image.
Objects get new ids 1, 2, ... (``/segmap`` is int32 and DC2's ``obj_id`` values are
64-bit); the original ``obj_id`` is kept in ``source_id``. Other numeric annotation keys
become ``/objects`` columns (NaN where an object lacks one). The store has no ``/ivar``
(rail_deepdisc's files carry no noise maps); NaN pixels become 0 and are counted.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import Any

import h5py
import numpy as np

from rail.deepdisc.errors import InputError, OptionError
from rail.deepdisc.magnitudes import NJY_ZEROPOINT
from rail.deepdisc.options import Options, option
from rail.deepdisc.spectra.bands import LSST_BANDS
from rail.deepdisc.store.atomic import check_output_path
from rail.deepdisc.store.provenance import provenance_json
from rail.deepdisc.store.scenes import OBJECT_COLUMNS, SceneWriter

log = logging.getLogger(__name__)

#: annotation keys that are not copied as columns
_STRUCTURAL_KEYS = {"bbox", "bbox_mode", "segmentation", "redshift", "obj_id", "keypoints",
                    "iscrowd"}
_XYXY_ABS, _XYWH_ABS = 0, 1


@dataclass
class ImportSummary:
    """What an import did."""

    output: str
    n_images: int
    n_annotations: int
    n_objects: int
    n_not_centred: int
    n_nan_pixels: int
    columns: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _find_dataset(f: h5py.File, name: str, path: str) -> h5py.Dataset:
    found: list[h5py.Dataset] = []

    def visit(key: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and key.split("/")[-1] == name:
            found.append(obj)

    f.visititems(visit)
    if not found:
        raise InputError(f"{path} has no dataset {name!r} (rail_deepdisc layout: 'images' "
                         "and 'metadata_dicts')")
    if len(found) > 1:
        raise InputError(f"{path} has several datasets named {name!r}: "
                         f"{[d.name for d in found]}")
    return found[0]


def _parse_metadata(metadata: h5py.Dataset, index: int) -> dict[str, Any]:
    """Entry ``index`` of ``metadata_dicts`` as a dict."""
    where = f"{metadata.file.filename}: metadata_dicts[{index}]"
    raw = _read(metadata, index, "metadata_dicts")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{where} is not JSON: {err}") from err
    if not isinstance(meta, dict) or "height" not in meta or "width" not in meta:
        raise InputError(f"{where} lacks 'height'/'width'")
    return meta


def _read(dataset: h5py.Dataset, rows: int | slice, name: str) -> Any:
    """Rows of a dataset; a damaged file is named."""
    try:
        return dataset[rows]
    except (OSError, ValueError, RuntimeError) as err:
        raise InputError(f"{dataset.file.filename}: cannot read {name}[{rows}]: {err}") from err


def _box(a: dict[str, Any], where: str) -> tuple[float, float, float, float]:
    mode = int(a.get("bbox_mode", _XYWH_ABS))
    if "bbox" not in a or len(a["bbox"]) != 4:
        raise InputError(f"{where}: annotation without a 4-number 'bbox'")
    x, y, w, h = (float(v) for v in a["bbox"])
    if mode == _XYWH_ABS:
        return x, y, x + w, y + h
    if mode == _XYXY_ABS:
        return x, y, w, h
    raise InputError(f"{where}: bbox_mode {mode} is not supported (0 XYXY_ABS, 1 XYWH_ABS)")


def annotation_mask(a: dict[str, Any], height: int, width: int, box: tuple[float, ...],
                    where: str) -> np.ndarray:
    """Boolean (H, W) mask of one annotation: its polygons filled (boundary included),
    uncompressed RLE decoded, else its box."""
    seg = a.get("segmentation")
    if isinstance(seg, dict):
        counts = seg.get("counts")
        if not isinstance(counts, list):
            raise InputError(f"{where}: compressed RLE masks need pycocotools; give polygons "
                             "or uncompressed RLE")
        flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)
        rh, rw = (int(v) for v in seg.get("size", (height, width)))
        if flat.size != rh * rw or (rh, rw) != (height, width):
            raise InputError(f"{where}: RLE size {seg.get('size')} does not match the image")
        return flat.reshape(rw, rh).T  # COCO RLE runs down columns
    if isinstance(seg, list) and seg:
        from PIL import Image, ImageDraw

        canvas = Image.new("1", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        for poly in seg:
            pts = np.asarray(poly, float).reshape(-1, 2)
            if len(pts) >= 3:
                draw.polygon([tuple(p) for p in pts], fill=1, outline=1)
            elif len(pts):
                draw.point([tuple(p) for p in pts], fill=1)
        return np.array(canvas, dtype=bool)
    mask = np.zeros((height, width), bool)
    x0, y0, x1, y1 = (round(v) for v in box)
    mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    return mask


def _scalar_keys(metadata: h5py.Dataset) -> tuple[list[str], tuple[int, int], int]:
    """Numeric annotation keys over the whole file, the common image size, annotations."""
    keys: dict[str, None] = {}
    sizes: set[tuple[int, int]] = set()
    n_ann = 0
    for i in range(metadata.shape[0]):
        meta = _parse_metadata(metadata, i)
        sizes.add((int(meta["height"]), int(meta["width"])))
        if len(sizes) > 1:
            raise InputError(f"{metadata.file.filename}: images have different sizes "
                             f"{sorted(sizes)} (from metadata_dicts[{i}]); a scene store "
                             "holds one size")
        for a in meta.get("annotations", []):
            n_ann += 1
            for k, v in a.items():
                if k not in _STRUCTURAL_KEYS and isinstance(v, (int, float, bool)):
                    keys[k] = None
    if not sizes:
        raise InputError(f"{metadata.file.filename}: metadata_dicts is empty")
    return list(keys), sizes.pop(), n_ann


@dataclass(frozen=True, kw_only=True)
class ImportOptions(Options):
    """What to import and how (the options of ``rail-deepdisc import-deepdisc``)."""

    images: str = option(help="HDF5 file with the 'images' dataset (and 'metadata_dicts' "
                         "unless --metadata)", path=True)
    metadata: str | None = option(None, "HDF5 file with 'metadata_dicts' (default: the images "
                                  "file)", path=True)
    bands: tuple[str, ...] | None = option(
        None, "band names in channel order (default: LSST ugrizy for 6 channels)")
    flux_unit: str = option("nJy", "unit of the pixel values, a flux density per pixel "
                            "(converted to nJy)")
    pixel_scale_arcsec: float = option(0.2, "arcsec per pixel (the metadata carry no pixel "
                                       "scale; 0.2 for LSST)", gt=0, flag="pixel-scale")
    redshift_kind: str = option("true", "what the redshifts are (true for simulations such as "
                                "DC2)", choices=("true", "spec", "phot"))
    survey: str = option("", "survey name written into the store")

    def _check(self) -> None:
        self.njy_per_unit  # noqa: B018  (a flux density)

    @property
    def njy_per_unit(self) -> float:
        """nJy per unit of the pixels."""
        from astropy import units as u

        try:
            return float(u.Unit(self.flux_unit).to(u.nJy))
        except (ValueError, u.UnitsError) as err:
            raise OptionError(f"flux_unit {self.flux_unit!r} is not a flux density: "
                              f"{err}") from err


def import_deepdisc(images: str | os.PathLike, output: str | os.PathLike, *, chunk: int = 64,
                    **options: Any) -> ImportSummary:
    """Import rail_deepdisc's ``images`` + ``metadata_dicts`` into a scene store.

    Parameters
    ----------
    images
        HDF5 file with the ``images`` dataset (and ``metadata_dicts`` unless ``metadata``).
    output
        Scene store to write (atomically; not a directory nor one of the inputs).
    chunk
        Images read at a time (bounds the memory).
    **options
        The other :class:`ImportOptions` (``metadata``, ``bands``, ``flux_unit``,
        ``pixel_scale_arcsec``, ``redshift_kind``, ``survey``).
    """
    unknown = sorted(set(options) - set(ImportOptions.option_specs()))
    if unknown:
        raise OptionError(f"import_deepdisc has no options {unknown}")
    opts = ImportOptions.from_mapping(options, images=os.fspath(images))
    return import_store(opts, output, chunk=chunk)


def import_store(opts: ImportOptions, output: str | os.PathLike, *, chunk: int = 64
                 ) -> ImportSummary:
    """Import the files of ``opts`` into a scene store at ``output`` (see
    :func:`import_deepdisc`)."""
    images, metadata = opts.images, opts.metadata or opts.images
    out_path = check_output_path(output, "scene store", inputs=[images, metadata])
    for p in dict.fromkeys((images, metadata)):
        if not os.path.isfile(p):
            raise InputError(f"{p} does not exist")
    with _open_hdf5(images) as fi, _open_hdf5(metadata) as fm:
        img = _find_dataset(fi, "images", images)
        meta = _find_dataset(fm, "metadata_dicts", metadata)
        n = img.shape[0]
        if meta.shape[0] != n:
            raise InputError(f"{images} holds {n} images but {metadata} {meta.shape[0]} "
                             "metadata_dicts")
        extra, (h, w), n_ann = _scalar_keys(meta)
        bands = _bands(opts, img, h, w)
        columns = {k: (k if k not in OBJECT_COLUMNS and k != "source_id" else f"deepdisc_{k}")
                   for k in extra}
        counts = {"objects": 0, "not_centred": 0, "nan": 0}
        prov = provenance_json(opts.as_dict(),
                               "rail.deepdisc.store.deepdisc_import.import_deepdisc")
        with SceneWriter(out_path, bands, h, w, pixel_scale_arcsec=opts.pixel_scale_arcsec,
                         zeropoint_ab=NJY_ZEROPOINT, flux_unit="nJy", survey=opts.survey,
                         with_ivar=False, with_segmap=True, provenance=prov,
                         inputs=[images, metadata]) as writer:
            for s in range(0, n, chunk):
                block = np.asarray(_read(img, slice(s, s + chunk), "images"), np.float32)
                block = block.reshape(-1, len(bands), h, w) * opts.njy_per_unit
                bad = ~np.isfinite(block)
                counts["nan"] += int(bad.sum())
                block[bad] = 0.0
                objects, scenes, segmaps = _scenes(meta, s, block.shape[0], h, w, counts,
                                                   columns, opts.redshift_kind)
                writer.add_scenes(block, objects, scenes, segmap=np.stack(segmaps))
    summary = ImportSummary(output=os.fspath(out_path), n_images=n,
                            n_annotations=n_ann, n_objects=counts["objects"],
                            n_not_centred=counts["not_centred"], n_nan_pixels=counts["nan"],
                            columns=list(columns.values()))
    if summary.n_nan_pixels:
        log.warning("%s: %d NaN pixels set to 0", images, summary.n_nan_pixels)
    return summary


def _open_hdf5(path: str) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"{path} is not a readable HDF5 file: {err}") from err


def _bands(opts: ImportOptions, img: h5py.Dataset, h: int, w: int) -> tuple[str, ...]:
    """The band names of the images' channels."""
    per_image = int(np.prod(img.shape[1:]))
    if per_image % (h * w):
        raise InputError(f"{img.file.filename}: an image has {per_image} values, not a "
                         f"multiple of {h} x {w} pixels")
    c = per_image // (h * w)
    if opts.bands is None:
        if c != len(LSST_BANDS):
            raise OptionError(f"{img.file.filename}: the images have {c} bands; name them "
                              "(bands)")
        return LSST_BANDS
    if len(opts.bands) != c:
        raise OptionError(f"{len(opts.bands)} band names (bands) for the {c} image channels "
                          f"of {img.file.filename}")
    return tuple(opts.bands)


def _scenes(meta: h5py.Dataset, start: int, n: int, h: int, w: int, counts: dict[str, int],
            columns: dict[str, str], redshift_kind: str) -> tuple[list, list, list]:
    """Objects, scene rows and segmentation maps of images ``start .. start + n - 1``."""
    from astropy.io import fits
    from astropy.wcs import WCS

    objects, scenes, segmaps = [], [], []
    for i in range(start, start + n):
        m = _parse_metadata(meta, i)
        obj, seg = _image_objects(m, h, w, f"{meta.file.filename}: metadata_dicts[{i}]",
                                  counts, columns, redshift_kind)
        header = m.get("wcs") or ""
        if header and not isinstance(header, str):
            raise InputError(f"{meta.file.filename}: metadata_dicts[{i}]: 'wcs' must be "
                             "header text")
        if header:
            try:
                wcs = WCS(fits.Header.fromstring(header))
            except Exception as err:  # astropy raises several types for broken headers
                raise InputError(f"{meta.file.filename}: metadata_dicts[{i}]: 'wcs' is not a "
                                 f"usable FITS WCS header: {err}") from err
            ra, dec = wcs.all_pix2world(obj["x"], obj["y"], 0)
            obj["ra"], obj["dec"] = np.asarray(ra), np.asarray(dec)
        objects.append(obj)
        segmaps.append(seg)
        scenes.append({"wcs": header, "x0": 0, "y0": 0, "tile": int(m.get("image_id", i))})
    return objects, scenes, segmaps


def _image_objects(meta: dict[str, Any], h: int, w: int, source: str, counts: dict[str, int],
                   columns: dict[str, str], redshift_kind: str
                   ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The ``/objects`` columns and segmentation map of one image."""
    anns = meta.get("annotations", [])
    boxes, masks, rows = [], [], []
    for j, a in enumerate(anns):
        where = f"{source}.annotations[{j}]"
        box = _box(a, where)
        cx, cy = (box[0] + box[2]) / 2 - 0.5, (box[1] + box[3]) / 2 - 0.5
        if not (-0.5 <= cx < w - 0.5 and -0.5 <= cy < h - 0.5):
            counts["not_centred"] += 1
            continue
        boxes.append((*box, cx, cy))
        masks.append(annotation_mask(a, h, w, box, where))
        rows.append(a)
    n = len(rows)
    first = counts["objects"] + 1
    counts["objects"] += n
    ids = np.arange(first, first + n, dtype=np.int64)
    seg = np.zeros((h, w), np.int32)
    areas = np.array([m.sum() for m in masks])
    for j in np.argsort(-areas, kind="stable"):  # smaller masks painted last keep overlaps
        seg[masks[j]] = ids[j]
    b = np.array(boxes, float).reshape(-1, 6)
    x0 = np.clip(np.floor(b[:, 0]), 0, w).astype(np.int32)
    y0 = np.clip(np.floor(b[:, 1]), 0, h).astype(np.int32)
    x1 = np.clip(np.ceil(b[:, 2]), 0, w).astype(np.int32)
    y1 = np.clip(np.ceil(b[:, 3]), 0, h).astype(np.int32)
    z = np.array([np.nan if a.get("redshift") is None else float(a["redshift"])
                  for a in rows])
    obj: dict[str, np.ndarray] = {
        "object_id": ids, "x": b[:, 4], "y": b[:, 5], "bbox_x0": x0, "bbox_y0": y0,
        "bbox_x1": np.maximum(x1, x0 + 1), "bbox_y1": np.maximum(y1, y0 + 1),
        "ra": np.full(n, np.nan), "dec": np.full(n, np.nan), "redshift": z,
        "redshift_kind": np.where(np.isfinite(z), redshift_kind, "none").astype("S4"),
        "source_id": np.array([int(a.get("obj_id", -1)) for a in rows], np.int64),
    }
    for key, name in columns.items():
        obj[name] = np.array([float(a[key]) if isinstance(a.get(key), (int, float, bool))
                              else np.nan for a in rows], float)
    return obj, seg
