"""The photo-z catalog: one row per object, quantiles in order, the bit mask agrees with
the flags, and it reads back (units intact) in every format: with astropy, and the Parquet
file (the mixture nested) with pandas and nested-pandas too."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest
import qp
from astropy.table import Table

from rail.deepdisc.cli import main
from rail.deepdisc.evaluate.catalog import QUALITY_BITS, build_catalog
from rail.deepdisc.evaluate.catalog_files import read_catalog
from rail.deepdisc.store.scenes import read_objects


@pytest.fixture(scope="module")
def forced(tiny_model, jades_store, tmp_path_factory):
    from rail.estimation.algos.deepdisc import DeepDiscEstimator

    folder = tmp_path_factory.mktemp("catalog")
    out = folder / "pz.hdf5"
    DeepDiscEstimator.make_stage(name="cat_est", model=tiny_model, output=str(out),
                                 detections=str(folder / "det.hdf5"),
                                 num_threads=1).estimate(jades_store)
    return str(out)


def _check(table, objects) -> None:
    assert len(table) == len(objects["object_id"])
    np.testing.assert_array_equal(table["id"], objects["object_id"])
    order = ["z_q2p5", "z_q16", "z_median", "z_q84", "z_97p5"]
    for lo, hi in itertools.pairwise(order):
        assert np.all(np.asarray(table[lo]) <= np.asarray(table[hi]) + 1e-9), (lo, hi)
    assert np.all((table["odds"] >= 0) & (table["odds"] <= 1))
    for bit, name in enumerate(QUALITY_BITS):
        if name in table.colnames:
            np.testing.assert_array_equal((np.asarray(table["quality"]) >> bit) & 1,
                                          np.asarray(table[name]))
            assert table.meta[f"QBIT{bit}"] == name


@pytest.mark.parametrize("suffix", ["fits", "parquet", "ecsv", "hdf5"])
def test_deepdisc_catalog_in_every_format(forced, jades_store, tmp_path, capsys, suffix):
    import pandas as pd

    out = tmp_path / f"cat.{suffix}"
    assert main(["catalog", "--pdfs", forced, "--scenes", jades_store, "--method",
                 "DeepDISC", "--output", str(out), "-q"]) == 0
    table = read_catalog(out)
    _check(table, read_objects(jades_store))
    assert str(table["ra"].unit) == "deg" and str(table["dec"].unit) == "deg"
    assert table["pdf_means"].shape[1] == 5 and "z_std" in table.colnames
    assert table.meta["METHOD"] == "DeepDISC" and "rail-deepdisc catalog" in table.meta["PROV"]
    if suffix == "parquet":
        import nested_pandas as npd

        frame = pd.read_parquet(out)
        assert len(frame) == len(table) and "z_mode" in frame.columns
        nested = npd.read_parquet(out)
        assert nested["pdf"].nest.columns == ["weights", "means", "stds"]
        np.testing.assert_allclose(np.asarray(nested["pdf.means"], float).reshape(-1, 5),
                                   table["pdf_means"])
    else:
        other = Table.read(out, **({"path": "catalog"} if suffix == "hdf5" else {}))
        np.testing.assert_array_equal(other["z_q84"], table["z_q84"])


def test_template_fit_ensemble_takes_ids_from_the_store(jades_store):
    objects = read_objects(jades_store)
    n = len(objects["object_id"])
    grid = np.linspace(0, 8, 81)
    rng = np.random.default_rng(1)
    centre = rng.uniform(0.5, 6, n)
    yvals = np.exp(-0.5 * ((grid[None, :] - centre[:, None]) / 0.3) ** 2)
    ens = qp.Ensemble(qp.interp, data={"xvals": grid, "yvals": yvals})
    table = build_catalog(ens, objects, method="EAZY")
    _check(table, objects)
    np.testing.assert_allclose(table["z_mode"], centre, atol=0.1)
    np.testing.assert_allclose(table["ra"], objects["ra"])
    assert "pdf_means" not in table.colnames and np.all(table["quality"] == 0)


def test_bad_catalog_outputs_are_refused(forced, jades_store, tmp_path, capsys):
    digest = hashlib.sha256(open(forced, "rb").read()).hexdigest()
    assert main(["catalog", "--pdfs", forced, "--output", forced, "-q"]) == 2
    assert "also an input" in capsys.readouterr().err
    assert main(["catalog", "--pdfs", forced, "--output", str(tmp_path / "c.csv"), "-q"]) == 2
    assert ".parquet" in capsys.readouterr().err
    other = tmp_path / "few.hdf5"
    from rail.deepdisc.sim.field import FieldSpec, simulate_field

    simulate_field(FieldSpec(survey="jades", n_scenes=1, scene_size=64, seed=3), other,
                   n_workers=1, progress=False)
    assert main(["catalog", "--pdfs", forced, "--scenes", str(other), "--output",
                 str(tmp_path / "c.fits"), "-q"]) == 2
    assert "rows but the scene store" in capsys.readouterr().err
    assert hashlib.sha256(open(forced, "rb").read()).hexdigest() == digest
    assert not (tmp_path / "c.fits").exists()


def test_catalog_stage_runs_the_ceci_way(forced, jades_store, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "stage.fits"
    res = subprocess.run([sys.executable, "-m", "ceci", "rail.tools.catalog_tools.PhotoZCatalog",
                          f"--input={forced}", f"--output={out}", f"--scenes={jades_store}",
                          "--method=DeepDISC"], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    _check(read_catalog(out), read_objects(jades_store))
