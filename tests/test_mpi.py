"""Per-object stages under MPI with pip's serial h5py: ``mpiexec -n 2 python -m ceci ...
--mpi`` writes the same rows, in the same order, as a one-process run.

Needs the ``mpi`` extra (mpi4py and MPICH from wheels; the ``test`` extra includes them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import qp
import tables_io
import yaml

pytest.importorskip("mpi4py", reason="needs the mpi extra (mpi4py)")
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or \
    shutil.which("mpiexec")
if MPIEXEC is None:  # pragma: no cover - mpi4py without an MPI launcher
    pytest.skip("no mpiexec (install the mpi extra: mpich)", allow_module_level=True)

#: one thread per rank: two ranks share the two cores
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _ceci(stage: str, options: dict[str, str], nproc: int, cwd) -> None:
    args = [f"--{k}={v}" for k, v in options.items()]
    cmd = [sys.executable, "-m", "ceci", stage, *args]
    if nproc > 1:
        cmd = [MPIEXEC, "-n", str(nproc), *cmd, "--mpi"]
    res = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]


def _same_ensembles(a: str, b: str) -> None:
    ea, eb = qp.read(a), qp.read(b)
    assert ea.npdf == eb.npdf and type(ea.dist) is type(eb.dist)
    for key in ea.objdata:
        np.testing.assert_array_equal(ea.objdata[key], eb.objdata[key], err_msg=key)
    assert set(ea.ancil) == set(eb.ancil)
    for key in ea.ancil:
        np.testing.assert_array_equal(ea.ancil[key], eb.ancil[key], err_msg=key)


def _same_tables(a: str, b: str) -> None:
    ta, tb = tables_io.read(a), tables_io.read(b)
    assert set(ta) == set(tb)
    for key in ta:
        np.testing.assert_array_equal(ta[key], tb[key], err_msg=key)


def _no_leftovers(folder) -> None:
    left = [p.name for p in folder.iterdir() if "inprogress" in p.name or ".part" in p.name]
    assert left == []


@pytest.mark.parametrize("mode", ["forced", "detect"])
def test_deepdisc_estimation_with_two_ranks_equals_one_process(tiny_train_store, tiny_model,
                                                               tmp_path, mode):
    runs = {}
    for nproc in (1, 2):
        out = tmp_path / f"pz_{nproc}.hdf5"
        det = tmp_path / f"det_{nproc}.hdf5"
        _ceci("rail.estimation.algos.deepdisc.DeepDiscEstimator",
              {"input": tiny_train_store, "model": tiny_model, "output": out,
               "detections": det, "mode": mode, "chunk_size": 12, "name": f"est{nproc}"},
              nproc, tmp_path)
        runs[nproc] = (str(out), str(det))
    _same_ensembles(runs[1][0], runs[2][0])
    _same_tables(runs[1][1], runs[2][1])
    ens = qp.read(runs[2][0])
    with h5py.File(tiny_train_store) as f:
        n_objects = f["objects/object_id"].shape[0]
        if mode == "forced":
            assert ens.npdf == n_objects
            np.testing.assert_array_equal(ens.ancil["object_id"], f["objects/object_id"][:])
    assert ens.npdf > 0
    _no_leftovers(tmp_path)


def test_photometry_and_eazy_with_two_ranks_equal_one_process(jades_store, tmp_path):
    phot = {}
    for nproc in (1, 2):
        phot[nproc] = tmp_path / f"phot_{nproc}.hdf5"
        _ceci("rail.tools.scene_tools.ScenePhotometry",
              {"input": jades_store, "output": phot[nproc], "chunk_size": 15,
               "name": f"phot{nproc}"}, nproc, tmp_path)
    _same_tables(str(phot[1]), str(phot[2]))
    with h5py.File(jades_store) as f:
        np.testing.assert_array_equal(tables_io.read(str(phot[2]))["object_id"],
                                      f["objects/object_id"][:])

    pytest.importorskip("eazy", reason="needs the fitters extra (eazy-py)")
    bands = ["jwst_f090w", "jwst_f115w", "jwst_f150w", "jwst_f200w", "jwst_f277w",
             "jwst_f335m", "jwst_f356w", "jwst_f410m", "jwst_f444w"]
    common = {"bands": [f"flux_{b}" for b in bands],
              "err_bands": [f"flux_err_{b}" for b in bands],
              "input_type": "flux", "hdf5_groupname": "", "prior_band": "flux_jwst_f200w"}
    model = tmp_path / "eazy_model.hdf5"
    from rail.estimation.algos.eazy import EazyInformer

    EazyInformer.make_stage(name="eazy_inf", model=str(model), zmax=8.0, filter_list=bands,
                            **common).inform(tables_io.read(str(phot[1])))
    pz = {}
    for nproc in (1, 2):
        name = f"eazy{nproc}"
        config = tmp_path / f"{name}.yml"
        config.write_text(yaml.safe_dump({name: {**common, "chunk_size": 20}}))
        pz[nproc] = tmp_path / f"eazy_{nproc}.hdf5"
        _ceci("rail.estimation.algos.eazy.EazyEstimator",
              {"input": phot[1], "model": model, "output": pz[nproc], "name": name,
               "config": config}, nproc, tmp_path)
    _same_ensembles(str(pz[1]), str(pz[2]))
    _no_leftovers(tmp_path)
