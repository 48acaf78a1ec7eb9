"""The catalog's conventions and its HATS form.

* its summary-statistic columns are RAIL's: names taken from rail_base's own
  ``_calculate_summary_stats`` at test time, values equal to RAIL's on the same PDFs;
* mixture statistics are exact (quantiles, mode, moments);
* ``--output CAT.hats`` writes a HATS catalog, partitioned by HEALPix, that
  ``lsdb.read_hats`` reads, with the FITS catalog's rows; an existing one is refused unless
  ``--overwrite``; rows without positions are refused, nothing written;
* the example crossmatches the catalog with spectra in LSDB and returns the matched rows;
* the ``PhotoZCatalog`` stage writes the same catalog, also with two MPI ranks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import qp
from astropy.table import Table
from scripts import load_script

from rail.deepdisc.cli import main
from rail.deepdisc.evaluate.catalog import (
    QUANTILES,
    SUMMARY_COLUMNS,
    build_catalog,
    mixture_summary,
)
from rail.deepdisc.evaluate.catalog_files import read_catalog

lsdb = pytest.importorskip("lsdb", reason="needs the lsdb extra")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "crossmatch_spectra.py"


def _rail_summary(ens) -> dict[str, np.ndarray]:
    """rail_base's summary statistics of an ensemble, computed by RAIL itself."""
    from rail.estimation.algos.random_gauss import RandomGaussEstimator

    stage = RandomGaussEstimator.make_stage(name=f"rail_stats_{id(ens)}",
                                            calc_summary_stats=True, zmin=0.0, zmax=3.0,
                                            nzbins=3001)
    out = stage._calculate_summary_stats(ens)
    return {k: np.ravel(v) for k, v in out.ancil.items()}


def test_summary_columns_are_rails_names_and_values():
    loc, scale = np.array([0.31, 0.8, 1.7, 2.2]), np.array([0.05, 0.1, 0.2, 0.15])
    rail = _rail_summary(qp.Ensemble(qp.stats.norm, data={"loc": loc[:, None],
                                                          "scale": scale[:, None]}))
    assert set(rail) == set(SUMMARY_COLUMNS)  # RAIL's own list, one name each
    one_component = qp.Ensemble(qp.mixmod, data={"weights": np.ones((4, 1)),
                                                  "means": loc[:, None],
                                                  "stds": scale[:, None]})
    for ens in (qp.Ensemble(qp.stats.norm, data={"loc": loc[:, None], "scale": scale[:, None]}),
                one_component):
        table = build_catalog(ens)
        z_columns = {c for c in table.colnames if c.startswith("z_")}
        assert z_columns == set(rail), "no aliases, no other names"
        for name, values in rail.items():
            # RAIL's mode is the best point of its 0.001-step grid
            tol = 1e-3 if name == "z_mode" else 1e-9
            np.testing.assert_allclose(table[name], values, atol=tol, err_msg=name)
    # RAIL names its 0.85 quantile z_q84; the catalog keeps RAIL's level with the name
    np.testing.assert_allclose(build_catalog(one_component)["z_q84"],
                               loc + 1.0364333894937898 * scale, atol=1e-9)


def test_mixture_statistics_are_exact():
    from scipy.special import ndtr
    from scipy.stats import norm

    rng = np.random.default_rng(4)
    n, k = 300, 5
    means = np.clip(rng.uniform(0, 5, (n, 1)) + rng.normal(0, 0.4, (n, k)), 0, 8)
    stds = (1 + means) * rng.uniform(0.01, 0.15, (n, k))
    weights = rng.dirichlet(np.ones(k) * 0.6, n)
    out = mixture_summary(weights, means, stds)
    for name, level in QUANTILES.items():
        cdf = np.sum(weights * ndtr((out[name][:, None] - means) / stds), axis=1)
        np.testing.assert_allclose(cdf, level, atol=1e-9, err_msg=name)
    grid = np.linspace(-1, 10, 44_001)
    for i in range(0, n, 30):
        pdf = np.sum(weights[i] * norm.pdf(grid[:, None], means[i], stds[i]), axis=1)
        at_mode = np.sum(weights[i] * norm.pdf(out["z_mode"][i], means[i], stds[i]))
        assert at_mode >= pdf.max() * (1 - 1e-9)
        assert abs(out["z_mode"][i] - grid[np.argmax(pdf)]) < 1e-3
        mean = np.trapezoid(pdf * grid, grid)
        np.testing.assert_allclose(out["z_mean"][i], mean, atol=1e-6)
        np.testing.assert_allclose(out["z_std"][i] ** 2,
                                   np.trapezoid(pdf * (grid - mean) ** 2, grid), rtol=1e-5)


def _ensemble(n: int, seed: int, ra0: float = 150.0, dec0: float = 2.0) -> qp.Ensemble:
    """Mixture PDFs of ``n`` objects over a 1-degree patch, with DeepDISC's ancillary columns."""
    rng = np.random.default_rng(seed)
    means = np.clip(rng.uniform(0, 4, (n, 1)) + rng.normal(0, 0.2, (n, 3)), 0, 8)
    return qp.Ensemble(qp.mixmod, data={"weights": rng.dirichlet(np.ones(3), n),
                                        "means": means, "stds": (1 + means) * 0.05},
                       ancil={"object_id": seed * 100_000 + np.arange(n),
                              "ra": ra0 + rng.uniform(0, 1, n), "dec": dec0 + rng.uniform(0, 1, n),
                              "score": rng.uniform(0, 1, n),
                              "flag_blend": rng.integers(0, 2, n).astype(np.int8)})


@pytest.fixture(scope="module")
def two_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pdfs")
    paths = []
    for seed, n in ((1, 900), (2, 700)):
        path = folder / f"pz{seed}.hdf5"
        _ensemble(n, seed).write_to(str(path))
        paths.append(str(path))
    return paths


def test_hats_catalog_has_the_fits_catalogs_rows(two_files, tmp_path):
    fits, hats = tmp_path / "cat.fits", tmp_path / "cat.hats"
    common = ["catalog", "--pdfs", *two_files, "--method", "DeepDISC", "-q"]
    assert main([*common, "--output", str(fits)]) == 0
    assert main([*common, "--hats-max-rows", "300", "--output", str(hats)]) == 0
    table = read_catalog(fits)
    assert len(table) == 1600
    catalog = lsdb.read_hats(hats)
    assert catalog.hc_structure.catalog_info.total_rows == 1600
    assert catalog.get_healpix_pixels() and len(catalog.get_healpix_pixels()) > 1
    frame = catalog.compute().sort_values("id")
    np.testing.assert_array_equal(frame["id"], table["id"])
    for name in table.colnames:
        if name.startswith("pdf_"):
            values = np.asarray(frame[f"pdf.{name[4:]}"], float).reshape(len(table), -1)
            np.testing.assert_array_equal(values, table[name], err_msg=name)
        else:
            np.testing.assert_array_equal(np.asarray(frame[name]), np.asarray(table[name]),
                                          err_msg=name)
    import pyarrow.parquet as pq

    meta = pq.read_schema(hats / "dataset" / "_common_metadata").metadata
    assert meta[b"METHOD"] == b"DeepDISC" and b"rail-deepdisc catalog" in meta[b"PROV"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.fits", "cat.hats"]


def test_hats_output_published_whole_or_refused(two_files, tmp_path, capsys):
    from rail.deepdisc.store.atomic import process_tag

    out = tmp_path / "cat.hats"
    args = ["catalog", "--pdfs", two_files[0], "-q", "--output", str(out)]
    # the temporary folders of a run that was killed (its process is gone) are removed
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = process_tag().rpartition("-")[0]
    stale = [tmp_path / f".cat.hats.{host}-{gone.pid}-0123abcd.tmp",
             tmp_path / f".cat.hats.parts.{host}-{gone.pid}-0123abcd.tmp"]
    for folder in stale:
        (folder / "dataset").mkdir(parents=True)
        (folder / "dataset" / "part.parquet").write_bytes(b"partial")
    assert main([*args, "--method", "first"]) == 0
    assert not any(folder.exists() for folder in stale)
    assert main([*args, "--method", "second"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main([*args, "--method", "second", "--overwrite"]) == 0
    import pyarrow.parquet as pq

    assert pq.read_schema(out / "dataset" / "_common_metadata").metadata[b"METHOD"] == b"second"
    assert len(lsdb.read_hats(out).compute()) == 900
    # a folder that is not a HATS catalog is never replaced
    mine = tmp_path / "mine.hats"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["catalog", "--pdfs", two_files[0], "-q", "--overwrite", "--output",
                 str(mine)]) == 2
    assert "not a HATS catalog" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep"
    # rows without RA/Dec cannot be partitioned: refused, nothing written
    bare = tmp_path / "bare.hdf5"
    qp.Ensemble(qp.mixmod, data={"weights": np.ones((5, 1)), "means": np.ones((5, 1)),
                                 "stds": np.ones((5, 1))}).write_to(str(bare))
    assert main(["catalog", "--pdfs", str(bare), "-q", "--output",
                 str(tmp_path / "bare.hats")]) == 2
    assert "no RA/Dec" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.hdf5", "cat.hats", "mine.hats"]


def _load_example():
    return load_script(EXAMPLE, "crossmatch_spectra")


@pytest.mark.slow  # LSDB's first crossmatch compiles hats' numba pixel alignment (~45 s)
def test_example_crossmatches_the_fields_catalog_with_its_spectra(jades_store, tmp_path,
                                                                   capsys):
    from rail.deepdisc.store.scenes import read_objects

    objects = read_objects(jades_store, ["object_id", "ra", "dec", "redshift"])
    n = len(objects["object_id"])
    rng = np.random.default_rng(7)
    # PDFs without ids or positions (as BPZ or EAZY give): those come from the scene store
    pdfs = tmp_path / "pz.hdf5"
    qp.Ensemble(qp.mixmod, data={"weights": np.ones((n, 1)),
                                 "means": objects["redshift"][:, None] + 0.05,
                                 "stds": np.full((n, 1), 0.1)}).write_to(str(pdfs))
    cat = tmp_path / "field.hats"
    assert main(["catalog", "--pdfs", str(pdfs), "--scenes", jades_store, "--output", str(cat),
                 "-q"]) == 0
    # spectra of half the objects, 0.01" astrometric scatter, shuffled, plus two far away
    chosen = rng.permutation(n)[: n // 2]
    dec = np.concatenate([objects["dec"][chosen] + rng.normal(0, 0.01, chosen.size) / 3600,
                          [-27.5, -28.0]])
    ra = np.concatenate([objects["ra"][chosen] + rng.normal(0, 0.01, chosen.size) / 3600
                         / np.cos(np.radians(objects["dec"][chosen])), [53.0, 53.3]])
    z = np.concatenate([objects["redshift"][chosen], [1.0, 2.0]])
    Table({"spec_id": np.arange(ra.size), "ra": ra, "dec": dec, "z_spec": z}).write(
        tmp_path / "spectra.fits")
    example = _load_example()
    frame = example.crossmatch(str(cat), str(tmp_path / "spectra.fits"), radius_arcsec=0.05)
    assert sorted(frame["id"]) == sorted(objects["object_id"][chosen])
    assert np.all(frame["spec_id"] < chosen.size)
    np.testing.assert_allclose(np.asarray(frame["z_median"], float),
                               np.asarray(frame["z_spec"], float) + 0.05, atol=1e-9)
    assert "pdf" in frame.columns and np.all(frame["_dist_arcsec"] < 0.05)
    assert example.main([str(cat), str(tmp_path / "spectra.fits"), "--radius", "0.05"]) == 0
    printed = capsys.readouterr().out
    assert f"{chosen.size} catalog objects matched" in printed
    assert "z_spec in [z_q2p5, z_97p5]: 1.000" in printed


def _ceci_catalog(pdfs: str, out: Path, nproc: int, cwd: Path) -> None:
    cmd = [sys.executable, "-m", "ceci", "rail.tools.catalog_tools.PhotoZCatalog",
           f"--input={pdfs}", f"--output={out}", "--method=DeepDISC", "--hats_max_rows=300",
           "--chunk_size=200",
           f"--name=catalog{nproc}"]
    if nproc > 1:
        mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or \
            shutil.which("mpiexec")
        if mpiexec is None:
            pytest.skip("no mpiexec (install the mpi extra: mpich)")
        cmd = [mpiexec, "-n", str(nproc), *cmd, "--mpi"]
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]


@pytest.mark.slow
def test_stage_writes_the_hats_catalog_with_one_or_two_ranks(two_files, tmp_path):
    pytest.importorskip("mpi4py", reason="needs the mpi extra (mpi4py)")
    frames = {}
    for nproc in (1, 2):
        out = tmp_path / f"stage{nproc}.hats"
        _ceci_catalog(two_files[0], out, nproc, tmp_path)
        frames[nproc] = lsdb.read_hats(out).compute().sort_values("id")
    reference = build_catalog(qp.read(two_files[0]))
    for frame in frames.values():
        np.testing.assert_array_equal(frame["id"], reference["id"])
        np.testing.assert_array_equal(frame["z_q84"], reference["z_q84"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage1.hats", "stage2.hats"]
