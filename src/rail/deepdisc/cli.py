"""The ``rail-deepdisc`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _cmd_simulate(args: argparse.Namespace) -> int:
    from rail.deepdisc.sim.field import FieldSpec, simulate_field
    from rail.deepdisc.sim.surveys import SURVEYS

    if args.survey not in SURVEYS:
        raise ValueError(f"unknown survey {args.survey!r}; choose one of {sorted(SURVEYS)}")
    spec = FieldSpec(survey=args.survey, n_scenes=args.scenes, scene_size=args.size,
                     seed=args.seed, objects_per_scene=args.objects_per_scene, psf=args.psf,
                     mag_limit=args.mag_limit, zmax=args.zmax)
    path = simulate_field(spec, args.output, catalog_output=args.catalog_output,
                          n_workers=args.workers, progress=not args.quiet)
    from rail.deepdisc.store.scenes import SceneStore

    with SceneStore(path) as store:
        print(f"wrote {path}: {store.n_scenes} scenes, {store.n_objects} objects, "
              f"bands {', '.join(store.bands)}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from rail.deepdisc.evaluate.display import show_scene

    out = show_scene(args.scenes, args.scene, args.output, labels=not args.no_labels)
    print(f"wrote {out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from rail.estimation.algos.deepdisc import DeepDiscInformer

    options = {k: v for k, v in vars(args).items() if k in _TRAIN_OPTIONS and v is not None}
    stage = DeepDiscInformer.make_stage(name="deepdisc_train", model=args.model, **options)
    stage.set_data("input", None, path=args.input, do_read=False)
    stage.run()
    stage.finalize()
    print(f"wrote {args.model}")
    return 0


def _cmd_estimate(args: argparse.Namespace) -> int:
    from rail.estimation.algos.deepdisc import DeepDiscEstimator

    options = {k: v for k, v in vars(args).items() if k in _ESTIMATE_OPTIONS and v is not None}
    detections = args.detections or _sibling(args.output, "_detections")
    stage = DeepDiscEstimator.make_stage(name="deepdisc_estimate", model=args.model,
                                         output=args.output, detections=detections, **options)
    stage.set_data("input", None, path=args.input, do_read=False)
    stage.run()
    stage.finalize()
    print(f"wrote {args.output} and {detections}")
    return 0


def _sibling(path: str, suffix: str) -> str:
    root, ext = os.path.splitext(path)
    return f"{root}{suffix}{ext or '.hdf5'}"


_TRAIN_OPTIONS = ("backbone", "num_components", "epochs", "batch_size", "learning_rate",
                  "weight_decay", "freeze_backbone_epochs", "val_fraction", "band_dropout",
                  "redshift_weight", "device", "num_threads", "seed", "init_model",
                  "checkpoint_dir", "augment")
_ESTIMATE_OPTIONS = ("mode", "score_threshold", "nms_threshold", "batch_size", "device",
                     "num_threads", "chunk_size", "deduplicate")


def _cmd_photometry(args: argparse.Namespace) -> int:
    import tables_io

    from rail.deepdisc.fit.photometry import PhotometryConfig, measure_store
    from rail.deepdisc.store.provenance import provenance_json
    from rail.deepdisc.store.tables import write_table

    cfg = PhotometryConfig(
        method=args.method, aperture_radius=args.aperture_radius,
        local_background=args.local_background, bands=tuple(args.bands) if args.bands else None,
        psf_match=not args.no_psf_match)
    cfg.validate()
    detections = None
    if args.detections:
        detections = tables_io.read(args.detections)
        if "scene" not in detections and len(detections) == 1:
            detections = next(iter(detections.values()))
    table, notes = measure_store(args.scenes, cfg, detections=detections,
                                 objects_per_chunk=args.chunk_size, progress=not args.quiet)
    prov = provenance_json({"photometry": cfg.as_dict(), "measurement": notes,
                            "scenes": args.scenes, "detections": args.detections},
                           "rail-deepdisc photometry")
    write_table(table, args.output, prov)
    print(f"wrote {args.output}: {len(table['object_id'])} rows ({cfg.method} photometry)")
    return 0


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


def _cmd_demo(args: argparse.Namespace) -> int:
    from rail.deepdisc.demo import run_demo

    report = run_demo(args.output_dir, quick=args.quick, eazy_templates=args.eazy_templates,
                      progress=not args.quiet)
    with open(report, encoding="utf-8") as fin:
        text = fin.read()
    section = text.split("## ")[1] if "## " in text else text
    print("\n## " + section.strip())
    print(f"\nreport: {report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``rail-deepdisc``."""
    from rail.deepdisc._version import __version__

    parser = argparse.ArgumentParser(
        prog="rail-deepdisc",
        description="Image-based photometric redshifts (DeepDISC) for RAIL.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or logs")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", parents=[common],
                         help="simulate a field (population + rendering)")
    sim.add_argument("--survey", default="jades", help="survey preset: jades or lsst")
    sim.add_argument("--scenes", type=_positive_int, required=True, help="number of scenes")
    sim.add_argument("--size", type=_positive_int, default=128, help="scene side (pixels)")
    sim.add_argument("--seed", type=int, default=0, help="random seed")
    sim.add_argument("--objects-per-scene", type=_positive_float, default=10.0,
                     help="mean galaxies centred in a scene (Poisson)")
    sim.add_argument("--psf", default="airy", choices=("airy", "optical"), help="PSF model")
    sim.add_argument("--mag-limit", type=float, default=None,
                     help="faintest magnitude in the detection band (default: preset)")
    sim.add_argument("--zmax", type=_positive_float, default=None,
                     help="highest redshift (default: preset)")
    sim.add_argument("--workers", type=_positive_int, default=None,
                     help="rendering processes (default: all cores)")
    sim.add_argument("--catalog-output", default=None,
                     help="also write the population catalog (hdf5) here")
    sim.add_argument("--output", required=True, help="scene store to write (hdf5)")
    sim.set_defaults(func=_cmd_simulate)

    show = sub.add_parser("show", parents=[common],
                          help="draw a scene as an RGB PNG with truth boxes")
    show.add_argument("scenes", help="scene store (hdf5)")
    show.add_argument("--scene", type=int, default=0, help="scene index")
    show.add_argument("--no-labels", action="store_true", help="no redshift labels")
    show.add_argument("--output", required=True, help="PNG to write")
    show.set_defaults(func=_cmd_show)

    demo = sub.add_parser("demo", parents=[common],
                          help="the main job: a JWST-like field end to end, with the report")
    demo.add_argument("--output-dir", required=True, help="directory for everything")
    demo.add_argument("--quick", action="store_true",
                      help="tiny settings (a few minutes; numbers are meaningless)")
    demo.add_argument("--eazy-templates", default=None,
                      help="EAZY .param file(s) (default: built-in CWW templates)")
    demo.set_defaults(func=_cmd_demo)

    tr = sub.add_parser("train", parents=[common], help="train DeepDISC on a scene store")
    tr.add_argument("--input", required=True, help="training scene store (hdf5)")
    tr.add_argument("--model", required=True, help="model file to write (.pt)")
    tr.add_argument("--backbone", help="resnet50_fpn (default), resnet34_fpn, resnet18_fpn "
                    "(CPU preset), swin_t_fpn")
    tr.add_argument("--num-components", dest="num_components", type=_positive_int)
    tr.add_argument("--epochs", type=_positive_int)
    tr.add_argument("--batch-size", dest="batch_size", type=_positive_int)
    tr.add_argument("--learning-rate", dest="learning_rate", type=_positive_float)
    tr.add_argument("--weight-decay", dest="weight_decay", type=float)
    tr.add_argument("--freeze-backbone-epochs", dest="freeze_backbone_epochs", type=int)
    tr.add_argument("--val-fraction", dest="val_fraction", type=float)
    tr.add_argument("--band-dropout", dest="band_dropout", type=float)
    tr.add_argument("--redshift-weight", dest="redshift_weight", type=float)
    tr.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    tr.add_argument("--device", help="auto (default), cpu, cuda, mps")
    tr.add_argument("--num-threads", dest="num_threads", type=int)
    tr.add_argument("--seed", type=int)
    tr.add_argument("--init-model", dest="init_model", help="model to start from")
    tr.add_argument("--checkpoint-dir", dest="checkpoint_dir",
                    help="keep per-epoch checkpoints here; resume from them")
    tr.set_defaults(func=_cmd_train)

    es = sub.add_parser("estimate", parents=[common],
                        help="photo-z PDFs for a scene store (qp ensemble)")
    es.add_argument("--input", required=True, help="scene store (hdf5)")
    es.add_argument("--model", required=True, help="model file (.pt)")
    es.add_argument("--output", required=True, help="qp ensemble to write (hdf5)")
    es.add_argument("--detections", help="detections table (default: OUTPUT_detections.hdf5)")
    es.add_argument("--mode", choices=("forced", "detect"), default=None)
    es.add_argument("--score-threshold", dest="score_threshold", type=float)
    es.add_argument("--nms-threshold", dest="nms_threshold", type=float)
    es.add_argument("--batch-size", dest="batch_size", type=_positive_int)
    es.add_argument("--chunk-size", dest="chunk_size", type=_positive_int)
    es.add_argument("--device")
    es.add_argument("--num-threads", dest="num_threads", type=int)
    es.add_argument("--keep-duplicates", dest="deduplicate", action="store_false", default=None,
                    help="detect mode on a tiled mosaic: keep every tile's detections")
    es.set_defaults(func=_cmd_estimate)
    phot = sub.add_parser("photometry", parents=[common],
                          help="measure fluxes and magnitudes of a scene store's objects")
    phot.add_argument("scenes", help="scene store (hdf5)")
    phot.add_argument("--method", default="kron", choices=("kron", "aperture"),
                      help="Kron apertures (default) or PSF-matched circular apertures")
    phot.add_argument("--aperture-radius", type=_positive_float, default=None,
                      help="circular aperture radius in arcsec (default: from the PSF)")
    phot.add_argument("--local-background", action="store_true",
                      help="subtract a local background")
    phot.add_argument("--no-psf-match", action="store_true",
                      help="aperture method: do not convolve bands to the broadest PSF")
    phot.add_argument("--bands", nargs="+", default=None, help="bands (default: all)")
    phot.add_argument("--detections", default=None,
                      help="detections table (hdf5) to measure instead of the objects")
    phot.add_argument("--chunk-size", type=_positive_int, default=10000,
                      help="objects per chunk of scenes")
    phot.add_argument("--output", required=True, help="catalog to write (hdf5)")
    phot.set_defaults(func=_cmd_photometry)

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
    tile.add_argument("--size-scale", type=_positive_float, default=2.5,
                      help="box half-side in units of the size (default 2.5)")
    tile.add_argument("--min-box", type=_positive_int, default=5,
                      help="box side of objects without footprint or size (default 5)")
    tile.add_argument("--copy-column", action="append",
                      help="a further catalog column to copy into /objects (repeat)")
    tile.add_argument("--tile-size", type=_positive_int, required=True, help="tile side (pixels)")
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
    imp.add_argument("--pixel-scale", type=_positive_float, default=0.2,
                     help="arcsec per pixel (default 0.2, LSST)")
    imp.add_argument("--redshift-kind", default="true", choices=("true", "spec", "phot"))
    imp.add_argument("--survey", default="", help="survey name written into the store")
    imp.add_argument("--output", required=True, help="scene store to write (hdf5)")
    imp.set_defaults(func=_cmd_import_deepdisc)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rail-deepdisc``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, OSError, IndexError, KeyError, RuntimeError) as err:
        print(f"rail-deepdisc {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
