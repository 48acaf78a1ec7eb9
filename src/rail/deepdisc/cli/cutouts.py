"""``rail-deepdisc cutouts``: per-object survey cutouts and a catalog into a scene store.

The flags are derived from :class:`~rail.deepdisc.store.cutouts.CutoutConfig` (with the
catalog columns of :class:`~rail.deepdisc.store.catalogs.CatalogColumns`).
"""

from __future__ import annotations

import argparse

from rail.deepdisc.store.cutouts import CutoutConfig
from rail.deepdisc.store.write_guard import WriteGuard


def _cmd_cutouts(args: argparse.Namespace) -> int:
    from rail.deepdisc.store.cutouts import import_cutouts

    cfg = CutoutConfig.from_mapping(args)
    with WriteGuard.for_args(args, writes={"--output": args.output}):
        summary = import_cutouts(cfg, args.catalog, args.output, progress=not args.quiet,
                                 provenance={"command": "rail-deepdisc cutouts"})
    boxes = ", ".join(f"{n} from {k}" for k, n in summary.boxes.items() if n)
    print(f"wrote {summary.output}: {summary.n_cutouts} scenes of {summary.height} x "
          f"{summary.width} pixels, one per {cfg.format} cutout ({summary.n_labelled} with a "
          f"redshift, {summary.n_padded} padded; boxes: {boxes})")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``cutouts`` to the ``rail-deepdisc`` parser."""
    cut = sub.add_parser("cutouts", parents=[common],
                         help="read per-object cutouts (Legacy Surveys, HSC-SSP, arrays) and "
                         "a catalog into a scene store, one scene per cutout")
    CutoutConfig.add_arguments(cut)
    cut.add_argument("--catalog", required=True,
                     help="catalog of the cutouts' objects: FITS, CSV, ECSV, HDF5 or Parquet")
    cut.add_argument("--output", required=True, help="scene store to write (hdf5)")
    cut.set_defaults(func=_cmd_cutouts)
