"""``rail-deepdisc catalog``: a photo-z catalog (FITS, Parquet, ECSV, HDF5, HATS) from PDFs."""

from __future__ import annotations

import argparse

from rail.deepdisc.evaluate.catalog import CatalogOptions


def _cmd_catalog(args: argparse.Namespace) -> int:
    from rail.deepdisc.evaluate.catalog import catalog_format
    from rail.deepdisc.store.provenance import provenance
    from rail.deepdisc.store.write_guard import WriteGuard

    opts = CatalogOptions.from_mapping(args)
    fmt = catalog_format(args.output)
    inputs = [*args.pdfs, opts.scenes]
    record = provenance({"pdfs": args.pdfs, **opts.as_dict()}, "rail-deepdisc catalog")
    out = {"--output": args.output}
    guard = WriteGuard.for_args(args, **({"folders": out, "overwrite": opts.overwrite}
                                         if fmt == "hats" else {"writes": out}))
    with guard:
        n = _write(args, opts, fmt, inputs, record)
    print(f"wrote {args.output}: {n} objects")
    return 0


def _write(args: argparse.Namespace, opts: CatalogOptions, fmt: str, inputs: list,
           record: dict) -> int:
    from rail.deepdisc.evaluate.catalog import catalog_chunks, catalog_table
    from rail.deepdisc.evaluate.catalog_files import write_catalog

    if fmt == "hats":
        from rail.deepdisc.evaluate.catalog_hats import check_hats_output, require_hats, write_hats

        require_hats()
        check_hats_output(args.output, "--output", inputs, opts.overwrite)
        n = write_hats(catalog_chunks(args.pdfs, opts.scenes or None, record, opts.method),
                       args.output, inputs=inputs, overwrite=opts.overwrite,
                       max_rows=opts.hats_max_rows, workers=opts.hats_workers)
    else:
        table = catalog_table(args.pdfs, opts.scenes or None, record, opts.method)
        write_catalog(table, args.output, inputs=inputs)
        n = len(table)
    return n


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``catalog`` to the ``rail-deepdisc`` parser."""
    cat = sub.add_parser("catalog", parents=[common],
                         help="a photo-z catalog (FITS, Parquet, ECSV, HDF5, HATS) from PDFs")
    cat.add_argument("--pdfs", required=True, nargs="+", metavar="PDFS",
                     help="qp ensemble(s) (DeepDISC, BPZ, EAZY, ...); several files are one "
                     "catalog, their rows in order")
    CatalogOptions.add_arguments(cat)
    cat.add_argument("--output", required=True,
                     help="catalog: .fits, .parquet, .ecsv, .hdf5, or .hats (a HATS catalog "
                     "folder, partitioned by HEALPix, for LSDB; needs the lsdb extra)")
    cat.set_defaults(func=_cmd_catalog)
