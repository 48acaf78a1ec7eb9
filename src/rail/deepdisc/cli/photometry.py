"""``rail-deepdisc photometry``: fluxes of a scene store's objects for template fitting."""

from __future__ import annotations

import argparse

from rail.deepdisc.cli.common import positive_float, positive_int


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


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the commands of this module to the ``rail-deepdisc`` parser."""
    phot = sub.add_parser("photometry", parents=[common],
                          help="measure fluxes and magnitudes of a scene store's objects")
    phot.add_argument("scenes", help="scene store (hdf5)")
    phot.add_argument("--method", default="kron", choices=("kron", "aperture"),
                      help="Kron apertures (default) or PSF-matched circular apertures")
    phot.add_argument("--aperture-radius", type=positive_float, default=None,
                      help="circular aperture radius in arcsec (default: from the PSF)")
    phot.add_argument("--local-background", action="store_true",
                      help="subtract a local background")
    phot.add_argument("--no-psf-match", action="store_true",
                      help="aperture method: do not convolve bands to the broadest PSF")
    phot.add_argument("--bands", nargs="+", default=None, help="bands (default: all)")
    phot.add_argument("--detections", default=None,
                      help="detections table (hdf5) to measure instead of the objects")
    phot.add_argument("--chunk-size", type=positive_int, default=10000,
                      help="objects per chunk of scenes")
    phot.add_argument("--output", required=True, help="catalog to write (hdf5)")
    phot.set_defaults(func=_cmd_photometry)
