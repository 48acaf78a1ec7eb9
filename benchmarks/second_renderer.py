"""Write a JADES-like survey field with a renderer independent of the main simulator.

The field has ``rail-deepdisc fits-field``'s layout (FITS mosaics with SCI/ERR in MJy/sr,
PSF images, segmentation map, catalog, spectroscopic catalog, ``field_inputs.yml``) plus
``truth_catalog.fits``, but other physics: its own stellar population synthesis (or the
first version's analytic SEDs, ``--sed-family analytic``), Gaussian-mixture galaxies with
clumps, double-Moffat PSFs, drizzle-like correlated noise, its own population (the package
``benchmarks/second_renderer/``; docs/second_renderer.md). For transfer tests of the field
recipe (issue 25)::

    python benchmarks/second_renderer.py --output-dir field2
    rail-deepdisc field --inputs field2/field_inputs.yml --output-dir run2

``--truth-from-store FIELD_DIR`` instead writes ``FIELD_DIR/truth_catalog.fits`` for a
field written by ``rail-deepdisc fits-field`` (from its ``truth.hdf5`` and catalog), so
both kinds of field give one truth format.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from second_renderer import (
    FieldConfig,
    WrittenField,
    truth_table_from_store,
    write_field,
)

__all__ = ["FieldConfig", "WrittenField", "main", "truth_table_from_store", "write_field"]


def _parser() -> argparse.ArgumentParser:
    d = FieldConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output-dir", help="directory for the field's files")
    p.add_argument("--mosaic-size", type=int, default=d.mosaic_size,
                   help=f"mosaic side in pixels (default {d.mosaic_size}: 2.0 arcmin^2 at "
                   f"{d.pixel_scale}\"/pixel)")
    p.add_argument("--surface-density", type=float, default=d.surface_density,
                   help="galaxies per arcmin^2 rendered (F200W 19-30.5; default "
                   f"{d.surface_density:g})")
    p.add_argument("--spec-mag-50", type=float, default=d.spec_mag_50,
                   help="F200W magnitude at which half of the spectroscopic targets get a "
                   f"redshift (default {d.spec_mag_50})")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default 0)")
    p.add_argument("--sed-family", choices=("synthesis", "analytic"), default=d.sed_family,
                   help="galaxy SEDs: 'synthesis' (stellar populations with star-formation "
                   "histories, metallicities and dust curves of the renderer's own) or "
                   "'analytic' (broken power law + Planck curve: the first version, whose "
                   f"colours carry less redshift; default {d.sed_family})")
    p.add_argument("--truth-from-store", metavar="FIELD_DIR",
                   help="write FIELD_DIR/truth_catalog.fits for a fits-field directory "
                   "(truth.hdf5 + catalog.fits) instead of rendering")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    """The command; a user's mistake (e.g. an output path that is a directory) is one line
    on stderr and exit status 2."""
    from rail.deepdisc.errors import DeepDiscError

    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except DeepDiscError as err:
        print(f"second_renderer: error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.truth_from_store:
        field_dir = args.truth_from_store
        truth = truth_table_from_store(os.path.join(field_dir, "truth.hdf5"),
                                       output=os.path.join(field_dir, "truth_catalog.fits"))
        if not args.quiet:
            print(f"wrote {os.path.join(field_dir, 'truth_catalog.fits')}: {len(truth)} "
                  "objects")
        return 0
    if not args.output_dir:
        _parser().error("--output-dir is required (or give --truth-from-store)")
    if args.mosaic_size < 64 or args.surface_density <= 0 or args.seed < 0:
        _parser().error("--mosaic-size must be >= 64, --surface-density > 0, --seed >= 0")
    cfg = FieldConfig(mosaic_size=args.mosaic_size, surface_density=args.surface_density,
                      spec_mag_50=args.spec_mag_50, seed=args.seed,
                      sed_family=args.sed_family)
    field = write_field(args.output_dir, cfg)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if not args.quiet:
        print(json.dumps({"inputs": field.inputs, "truth": field.truth,
                          "galaxies_rendered": field.n_rendered,
                          "catalog_objects": field.n_objects, "spectra": field.n_spec,
                          "redshift_quantiles": {k: round(v, 3) for k, v in
                                                 field.z_quantiles.items()},
                          "seconds": round(field.seconds, 1), "peak_rss_mb": round(peak_mb)},
                         indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
