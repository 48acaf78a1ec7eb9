"""Crossmatch a HATS photo-z catalog with a spectroscopic catalog in LSDB.

The field recipe's catalog as a HATS catalog, then matched with the field's spectra::

    rail-deepdisc catalog --pdfs field_run/data/output_estimate_field.hdf5 \\
        --method DeepDISC --output field_run/photoz.hats
    python examples/crossmatch_spectra.py field_run/photoz.hats field_data/spectra.fits

prints how many spectra matched a catalog object, the photo-z metrics of the matched objects
(z_mode against z_spec) and how often z_spec falls in the catalog's central intervals
([z_q16, z_q84]: 69% by RAIL's levels; [z_q2p5, z_97p5]: 95%). Needs the ``lsdb`` extra
(``pip install 'pz-rail-deepdisc[lsdb]'``); LSDB computes on Dask, partition by partition.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def crossmatch(catalog: str, spectra: str, radius_arcsec: float = 0.3,
               z_column: str = "z_spec"):
    """The catalog's objects matched with their nearest spectrum within ``radius_arcsec``
    (a nested-pandas frame: the catalog's columns, the mixture nested in ``pdf``, then the
    spectra's columns, suffixed ``_spec`` where the names clash, and ``_dist_arcsec``)."""
    import lsdb
    from astropy.table import Table

    photoz = lsdb.read_hats(catalog)
    spec = Table.read(spectra).to_pandas()
    if z_column not in spec.columns:
        raise SystemExit(f"{spectra} has no column {z_column!r} (--z-column)")
    # a small catalog in memory becomes an LSDB catalog with a margin, so matches across
    # partition edges are found
    spec_catalog = lsdb.from_dataframe(spec, ra_column="ra", dec_column="dec",
                                       catalog_name="spectra")
    matched = photoz.crossmatch(spec_catalog, radius_arcsec=radius_arcsec, n_neighbors=1,
                                suffixes=("", "_spec"), suffix_method="overlapping_columns",
                                log_changes=False)
    return matched.compute()


def main(argv: Sequence[str] | None = None) -> int:
    import numpy as np

    from rail.deepdisc.evaluate.metrics import point_metrics

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("catalog", help="HATS photo-z catalog (rail-deepdisc catalog --output "
                        "CAT.hats)")
    parser.add_argument("spectra", help="spectroscopic catalog (FITS, ECSV, ...: ra, dec, "
                        "redshift)")
    parser.add_argument("--radius", type=float, default=0.3, help="match radius (arcsec)")
    parser.add_argument("--z-column", default="z_spec", help="the spectra's redshift column")
    args = parser.parse_args(argv)
    frame = crossmatch(args.catalog, args.spectra, args.radius, args.z_column)
    zs = np.asarray(frame[args.z_column], float)
    m = point_metrics(np.asarray(frame["z_mode"], float), zs)
    print(f"{len(frame)} catalog objects matched a spectrum within {args.radius}\"")
    print(f"z_mode vs {args.z_column}: sigma_IQR {m['sigma_iqr']:.3f}, bias {m['bias']:+.3f}, "
          f"outliers {m['outlier_rate']:.3f}")
    for low, high in (("z_q16", "z_q84"), ("z_q2p5", "z_97p5")):
        inside = np.mean((np.asarray(frame[low]) <= zs) & (zs <= np.asarray(frame[high])))
        print(f"z_spec in [{low}, {high}]: {inside:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
