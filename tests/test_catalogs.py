"""Catalogs for tiling: formats, column checks, units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tables_io
from astropy.table import Table

from rail.deepdisc.store.catalogs import CatalogColumns, load_catalog
from rail.deepdisc.store.mosaic_io import MosaicError

TABLE = {"ID": np.array([3, 1, 2]), "RA": np.array([53.1, 53.2, 359.9]),
         "DEC": np.array([-27.8, -27.7, -27.9]), "z_spec": np.array([1.2, -99.0, np.nan]),
         "r_kron": np.array([0.1, 0.2, 0.3]), "f200w": np.array([10.0, 20.0, 30.0])}
COLS = CatalogColumns(id_col="ID", ra_col="RA", dec_col="DEC", redshift_col="z_spec",
                      size_col="r_kron", copy_columns=("f200w",))


def _check(cat):
    assert cat.ids.tolist() == [3, 1, 2] and cat.rows.tolist() == [0, 1, 2]
    np.testing.assert_allclose(cat.ra, TABLE["RA"])
    np.testing.assert_allclose(cat.dec, TABLE["DEC"])
    assert cat.redshift[0] == pytest.approx(1.2) and np.isnan(cat.redshift[1:]).all()
    np.testing.assert_allclose(cat.size, TABLE["r_kron"])
    np.testing.assert_allclose(cat.extra["f200w"], TABLE["f200w"])


@pytest.mark.parametrize("fmt", ["fits", "csv", "ecsv", "parquet", "hdf5", "memory"])
def test_formats(tmp_path, fmt):
    path = tmp_path / f"cat.{fmt}"
    if fmt in ("fits", "csv", "ecsv"):
        Table(TABLE).write(path, format={"fits": "fits", "csv": "ascii.csv",
                                         "ecsv": "ascii.ecsv"}[fmt])
    elif fmt == "parquet":
        pd.DataFrame(TABLE).to_parquet(path)
    elif fmt == "hdf5":
        tables_io.write(TABLE, str(path))
    source = TABLE if fmt == "memory" else str(path)
    _check(load_catalog(source, COLS))


def test_named_fits_extension_and_hdf5_group(tmp_path):
    Table(TABLE).write(tmp_path / "c.fits")
    from astropy.io import fits

    with fits.open(tmp_path / "c.fits", mode="update") as hdul:
        hdul[1].name = "PHOT"
    _check(load_catalog(f"{tmp_path / 'c.fits'}[PHOT]", COLS))
    tables_io.write({"photometry": TABLE, "other": {"a": np.ones(2)}}, str(tmp_path / "g.hdf5"))
    with pytest.raises(MosaicError, match="several tables"):
        load_catalog(str(tmp_path / "g.hdf5"), COLS)
    cols = CatalogColumns(**{**COLS.__dict__, "catalog_key": "photometry"})
    _check(load_catalog(str(tmp_path / "g.hdf5"), cols))


def test_radians_become_degrees_and_bad_positions_are_left_out():
    t = Table(TABLE)
    t["RA"] = np.radians(TABLE["RA"])
    t["RA"].unit = "rad"
    t["DEC"][2] = np.nan
    cat = load_catalog(t, COLS)
    np.testing.assert_allclose(cat.ra, TABLE["RA"][:2])
    assert cat.n_dropped == 1 and cat.rows.tolist() == [0, 1]


@pytest.mark.parametrize(("change", "message"), [
    ({"ra_col": "ALPHA"}, r"no RA column 'ALPHA' \(set ra_col\).*'DEC', 'ID', 'RA'"),
    ({"dec_col": "DELTA"}, r"no Dec column 'DELTA' \(set dec_col\)"),
    ({"id_col": "NUMBER"}, r"no id column 'NUMBER'"),
    ({"redshift_col": "zz"}, r"no redshift column 'zz'"),
    ({"copy_columns": ("mag",)}, r"no copied column 'mag'"),
])
def test_missing_columns_are_named(change, message):
    with pytest.raises(MosaicError, match=message):
        load_catalog(TABLE, CatalogColumns(**{**COLS.__dict__, **change}))


@pytest.mark.parametrize(("ids", "message"), [
    (np.array([1, 1, 2]), "duplicated"), (np.array([0, 1, 2]), "positive"),
    (np.array([1.5, 2, 3]), "integers"),
])
def test_bad_ids(ids, message):
    with pytest.raises(MosaicError, match=message):
        load_catalog({**TABLE, "ID": ids}, COLS)


def test_rows_numbered_without_an_id_column_and_option_checks(tmp_path):
    cat = load_catalog(TABLE, CatalogColumns(id_col="", ra_col="RA", dec_col="DEC",
                                             redshift_col=""))
    assert cat.ids.tolist() == [1, 2, 3] and np.isnan(cat.redshift).all() and cat.size is None
    with pytest.raises(ValueError, match="redshift_kind"):
        CatalogColumns(redshift_kind="true").validate()
    with pytest.raises(ValueError, match="copy_columns"):
        CatalogColumns(copy_columns=("x",)).validate()
    with pytest.raises(MosaicError, match="unknown table format"):
        (tmp_path / "c.xlsx").write_text("x")
        load_catalog(str(tmp_path / "c.xlsx"), COLS)


def test_tile_flags_build_the_catalog_columns():
    """``--copy-column`` repeats or takes several names; the flags fill CatalogColumns."""
    from rail.deepdisc.cli import build_parser
    from rail.deepdisc.store.mosaic import TilerConfig

    args = build_parser().parse_args([
        "tile", "--image", "jwst_f200w=m.fits[SCI]", "--catalog", "c.fits", "--id-col", "ID",
        "--copy-column", "f200w", "--copy-column", "f444w", "kron", "--catalog-key", "PHOT",
        "--tile-size", "64", "--overlap", "8", "--output", "o.hdf5"])
    cfg = TilerConfig.from_mapping(args)
    assert cfg.columns == CatalogColumns(id_col="ID", copy_columns=("f200w", "f444w", "kron"),
                                         catalog_key="PHOT")
    assert cfg.images == {"jwst_f200w": "m.fits[SCI]"} and cfg.tile_size == 64
