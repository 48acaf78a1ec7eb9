"""``rail-deepdisc photometry``: fluxes of a scene store's objects for template fitting.

The flags come from :class:`rail.deepdisc.fit.photometry_options.PhotometryOptions`, the
same definitions as ``ScenePhotometry``'s options.
"""

from __future__ import annotations

import argparse


def _cmd_photometry(args: argparse.Namespace) -> int:
    from rail.deepdisc.fit.photometry import measure_store
    from rail.deepdisc.fit.photometry_options import PhotometryOptions
    from rail.deepdisc.fit.photometry_setup import photometry_table_attrs
    from rail.deepdisc.store.provenance import provenance_json
    from rail.deepdisc.store.scenes import SceneStore
    from rail.deepdisc.store.tables import write_table
    from rail.deepdisc.store.write_guard import WriteGuard

    opts = PhotometryOptions.from_mapping(args)
    detections = opts.detections or None
    with WriteGuard.for_args(args, writes={"--output": args.output}, skip=("scenes",),
                             reads={"SCENES": args.scenes}):
        table, notes = measure_store(args.scenes, opts.photometry, detections=detections,
                                     objects_per_chunk=opts.chunk_size,
                                     progress=not args.quiet)
        prov = provenance_json({"photometry": opts.photometry.as_dict(), "measurement": notes,
                                "scenes": args.scenes, "detections": detections},
                               "rail-deepdisc photometry")
        with SceneStore(args.scenes) as store:
            attrs = photometry_table_attrs(store, opts.photometry)
        write_table(table, args.output, prov, attrs)
    print(f"wrote {args.output}: {len(table['object_id'])} rows "
          f"({opts.photometry.method} photometry)")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the commands of this module to the ``rail-deepdisc`` parser."""
    from rail.deepdisc.fit.photometry_options import PhotometryOptions

    phot = sub.add_parser("photometry", parents=[common],
                          help="measure fluxes and magnitudes of a scene store's objects")
    phot.add_argument("scenes", help="scene store (hdf5)")
    PhotometryOptions.add_arguments(phot)
    phot.add_argument("--output", required=True, help="catalog to write (hdf5)")
    phot.set_defaults(func=_cmd_photometry)
