"""``rail-deepdisc tile`` and ``import-deepdisc``: real survey data into scene stores."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rail.deepdisc.cli.common import positive_float, positive_int


def _band_value(text: str) -> tuple[str, str]:
    """``BAND=VALUE`` (e.g. ``jwst_f200w=mosaic.fits[SCI]``) as a pair."""
    band, sep, value = text.partition("=")
    if not sep or not band.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected BAND=VALUE, got {text!r}")
    return band.strip(), value.strip()

def _band_map(pairs: Sequence[tuple[str, str]] | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for band, value in pairs or ():
        if band in out:
            raise ValueError(f"{option} given twice for band {band}")
        out[band] = value
    return out

def _cmd_tile(args: argparse.Namespace) -> int:
    from rail.deepdisc.store.mosaic import TilerConfig, tile_mosaic

    cfg = TilerConfig.from_options({
        **vars(args), "images": _band_map(args.image, "--image"),
        "errors": _band_map(args.error, "--error"),
        "weights": _band_map(args.weight, "--weight"), "units": _band_map(args.unit, "--unit"),
        "copy_columns": args.copy_column})
    summary = tile_mosaic(cfg, args.catalog, args.output, progress=not args.quiet,
                          provenance={"command": "rail-deepdisc tile"})
    print(f"wrote {summary.output}: {summary.n_tiles_written} tiles of {args.tile_size} x "
          f"{args.tile_size} pixels, {summary.n_listed} of {summary.n_catalog} catalog "
          f"objects ({summary.n_catalog - summary.n_inside} outside the mosaics, "
          f"{summary.n_no_data} on blank pixels)")
    return 0

def _cmd_import_deepdisc(args: argparse.Namespace) -> int:
    from rail.deepdisc.store.deepdisc_import import import_deepdisc

    summary = import_deepdisc(args.images, args.output, metadata=args.metadata,
                              bands=args.bands, flux_unit=args.flux_unit,
                              pixel_scale_arcsec=args.pixel_scale,
                              redshift_kind=args.redshift_kind, survey=args.survey)
    print(f"wrote {summary.output}: {summary.n_images} scenes, {summary.n_objects} objects "
          f"({summary.n_not_centred} annotations centred outside their image left out)")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the commands of this module to the ``rail-deepdisc`` parser."""
    tile = sub.add_parser("tile", parents=[common],
                          help="cut per-band FITS mosaics and a catalog into a scene store")
    tile.add_argument("--image", type=_band_value, action="append", required=True,
                      metavar="BAND=PATH", help="a band's mosaic, PATH or PATH[EXT] (repeat, "
                      "in channel order)")
    tile.add_argument("--error", type=_band_value, action="append", metavar="BAND=PATH",
                      help="a band's error map (standard deviation)")
    tile.add_argument("--weight", type=_band_value, action="append", metavar="BAND=PATH",
                      help="a band's weight map (inverse variance)")
    tile.add_argument("--unit", type=_band_value, action="append", metavar="BAND=UNIT",
                      help="unit of a band's pixels (default: its BUNIT)")
    tile.add_argument("--segmap", help="segmentation map (values: catalog ids)")
    tile.add_argument("--catalog", required=True,
                      help="catalog: FITS, CSV, ECSV, HDF5 or Parquet")
    tile.add_argument("--catalog-key", default="", help="HDF5 group or FITS extension")
    tile.add_argument("--id-col", default="object_id", help="id column (default object_id; "
                      "'' numbers the rows)")
    tile.add_argument("--ra-col", default="ra", help="RA column, degrees (default ra)")
    tile.add_argument("--dec-col", default="dec", help="Dec column, degrees (default dec)")
    tile.add_argument("--redshift-col", default="redshift",
                      help="redshift column (default redshift; '' for none)")
    tile.add_argument("--redshift-kind", default="spec", choices=("spec", "phot"))
    tile.add_argument("--size-col", default="", help="radius column for boxes without segmap")
    tile.add_argument("--size-unit", default="arcsec", choices=("arcsec", "pixel"))
    tile.add_argument("--size-scale", type=positive_float, default=2.5,
                      help="box half-side in units of the size (default 2.5)")
    tile.add_argument("--min-box", type=positive_int, default=5,
                      help="box side of objects without footprint or size (default 5)")
    tile.add_argument("--copy-column", action="append",
                      help="a further catalog column to copy into /objects (repeat)")
    tile.add_argument("--tile-size", type=positive_int, required=True, help="tile side (pixels)")
    tile.add_argument("--overlap", type=int, required=True,
                      help="overlap of neighbouring tiles (pixels, <= tile size / 2)")
    tile.add_argument("--require-redshift", action="store_true",
                      help="keep only tiles with an object of known redshift (training)")
    tile.add_argument("--survey", default="", help="survey name written into the store")
    tile.add_argument("--output", required=True, help="scene store to write (hdf5)")
    tile.set_defaults(func=_cmd_tile)

    imp = sub.add_parser("import-deepdisc", parents=[common],
                         help="import LSSTDESC/rail_deepdisc HDF5 data into a scene store")
    imp.add_argument("--images", required=True, help="HDF5 file with the 'images' dataset")
    imp.add_argument("--metadata", default=None,
                     help="HDF5 file with 'metadata_dicts' (default: the images file)")
    imp.add_argument("--bands", nargs="+", default=None,
                     help="band names in channel order (default: LSST ugrizy for 6)")
    imp.add_argument("--flux-unit", default="nJy", help="unit of the pixels (default nJy)")
    imp.add_argument("--pixel-scale", type=positive_float, default=0.2,
                     help="arcsec per pixel (default 0.2, LSST)")
    imp.add_argument("--redshift-kind", default="true", choices=("true", "spec", "phot"))
    imp.add_argument("--survey", default="", help="survey name written into the store")
    imp.add_argument("--output", required=True, help="scene store to write (hdf5)")
    imp.set_defaults(func=_cmd_import_deepdisc)
