"""``rail-deepdisc tile`` and ``import-deepdisc``: real survey data into scene stores.

The flags are derived from :class:`~rail.deepdisc.store.mosaic.TilerConfig` (with the
catalog columns of :class:`~rail.deepdisc.store.catalogs.CatalogColumns`) and
:class:`~rail.deepdisc.store.deepdisc_import.ImportOptions`.
"""

from __future__ import annotations

import argparse

from rail.deepdisc.store.deepdisc_import import ImportOptions
from rail.deepdisc.store.mosaic import TilerConfig
from rail.deepdisc.store.write_guard import WriteGuard


def _cmd_tile(args: argparse.Namespace) -> int:
    from rail.deepdisc.store.mosaic import tile_mosaic

    cfg = TilerConfig.from_mapping(args)
    with WriteGuard.for_args(args, writes={"--output": args.output}):
        summary = tile_mosaic(cfg, args.catalog, args.output, progress=not args.quiet,
                              provenance={"command": "rail-deepdisc tile"})
    print(f"wrote {summary.output}: {summary.n_tiles_written} tiles of {cfg.tile_size} x "
          f"{cfg.tile_size} pixels, {summary.n_listed} of {summary.n_catalog} catalog "
          f"objects ({summary.n_catalog - summary.n_inside} outside the mosaics, "
          f"{summary.n_no_data} on blank pixels)")
    return 0


def _cmd_import_deepdisc(args: argparse.Namespace) -> int:
    from rail.deepdisc.store.deepdisc_import import import_store

    opts = ImportOptions.from_mapping(args)
    with WriteGuard.for_args(args, writes={"--output": args.output}):
        summary = import_store(opts, args.output)
    print(f"wrote {summary.output}: {summary.n_images} scenes, {summary.n_objects} objects "
          f"({summary.n_not_centred} annotations centred outside their image left out)")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``tile`` and ``import-deepdisc`` to the ``rail-deepdisc`` parser."""
    tile = sub.add_parser("tile", parents=[common],
                          help="cut per-band FITS mosaics and a catalog into a scene store")
    TilerConfig.add_arguments(tile, required=("tile_size", "overlap"))
    tile.add_argument("--catalog", required=True,
                      help="catalog: FITS, CSV, ECSV, HDF5 or Parquet")
    tile.add_argument("--output", required=True, help="scene store to write (hdf5)")
    tile.set_defaults(func=_cmd_tile)

    imp = sub.add_parser("import-deepdisc", parents=[common],
                         help="import LSSTDESC/rail_deepdisc HDF5 data into a scene store")
    ImportOptions.add_arguments(imp)
    imp.add_argument("--output", required=True, help="scene store to write (hdf5)")
    imp.set_defaults(func=_cmd_import_deepdisc)
