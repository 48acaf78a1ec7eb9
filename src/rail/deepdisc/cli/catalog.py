"""``rail-deepdisc catalog``: a photo-z catalog (FITS, Parquet, ECSV, HDF5) from PDFs."""

from __future__ import annotations

import argparse

from rail.deepdisc.evaluate.catalog import CatalogOptions


def _cmd_catalog(args: argparse.Namespace) -> int:
    from rail.deepdisc.evaluate.catalog import build_catalog, catalog_format, write_catalog
    from rail.deepdisc.store.atomic import check_output_path
    from rail.deepdisc.store.provenance import provenance
    from rail.deepdisc.store.scenes import read_objects

    opts = CatalogOptions.from_mapping(args)
    catalog_format(args.output)
    inputs = [args.pdfs, opts.scenes]
    check_output_path(args.output, "--output", inputs=inputs)
    import qp

    try:
        ens = qp.read(args.pdfs)
    except (OSError, KeyError, ValueError) as err:
        from rail.deepdisc.errors import InputError

        raise InputError(f"{args.pdfs} is not a readable qp ensemble: {err}") from None
    objects = read_objects(opts.scenes, ["object_id", "ra", "dec", "scene", "x", "y"]) \
        if opts.scenes else None
    record = provenance({"pdfs": args.pdfs, **opts.as_dict()}, "rail-deepdisc catalog")
    table = build_catalog(ens, objects, record, opts.method)
    write_catalog(table, args.output, inputs=inputs)
    print(f"wrote {args.output}: {len(table)} objects")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``catalog`` to the ``rail-deepdisc`` parser."""
    cat = sub.add_parser("catalog", parents=[common],
                         help="a photo-z catalog (FITS, Parquet, ECSV, HDF5) from PDFs")
    cat.add_argument("--pdfs", required=True, help="qp ensemble (DeepDISC, BPZ, EAZY, ...)")
    CatalogOptions.add_arguments(cat)
    cat.add_argument("--output", required=True, help="catalog: .fits, .parquet, .ecsv, .hdf5")
    cat.set_defaults(func=_cmd_catalog)
