"""Bad input to the template-fitting box (photometry, EAZY, BPZ set-up): refused before any
work, with a typed error naming the culprit, and nothing the user owns changed."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from rail.deepdisc.cli import main
from rail.deepdisc.errors import ModelFileError, OptionError, SceneStoreError
from rail.deepdisc.store.scenes import read_objects


def _sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _checksums(*paths: str | Path) -> dict[str, str]:
    """sha256 of every file at or below the paths."""
    out = {}
    for p in map(Path, paths):
        for f in ([p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())):
            out[str(f)] = _sha(f)
    return out


@pytest.fixture()
def store(lsst_store, tmp_path) -> str:
    """A private copy of the LSST-like store (tests may try to overwrite it)."""
    return str(shutil.copy(lsst_store, tmp_path / "scenes.hdf5"))


@pytest.fixture()
def curveless_store(lsst_store, tmp_path) -> str:
    """A store whose last band has a name no filter curve knows."""
    path = str(shutil.copy(lsst_store, tmp_path / "curveless.hdf5"))
    with h5py.File(path, "a") as f:
        bands = [b.decode() if isinstance(b, bytes) else str(b) for b in f.attrs["bands"]]
        f.attrs["bands"] = [*bands[:-1], "made_up_band"]
    return path


@pytest.fixture()
def detections(lsst_store, tmp_path) -> str:
    """A detections table (the store's own boxes) as an HDF5 file."""
    import tables_io

    obj = read_objects(lsst_store)
    table = {c: np.asarray(obj[c]) for c in ("scene", "x", "y", "bbox_x0", "bbox_y0",
                                              "bbox_x1", "bbox_y1", "object_id")}
    path = tmp_path / "detections.hdf5"
    tables_io.write(table, str(path))
    return str(path)


# --- rail-deepdisc photometry ----------------------------------------------------------------

def _run_cli(args: list[str], capsys) -> tuple[int, str]:
    try:
        status = main(["photometry", *args, "-q"])
    except SystemExit as err:  # argparse refuses a flag value
        status = err.code
    return status, capsys.readouterr().err


def test_cli_refuses_a_band_no_filter_curve_knows(store, tmp_path, capsys):
    before = _checksums(store)
    status, err = _run_cli([store, "--output", str(tmp_path / "out.hdf5"), "--bands",
                            "lsst_g", "jwst_f999w"], capsys)
    assert status == 2 and "jwst_f999w" in err and "filter curve" in err
    assert not (tmp_path / "out.hdf5").exists()
    assert _checksums(store) == before


def test_cli_refuses_a_store_band_without_filter_curve(curveless_store, tmp_path, capsys):
    before = _checksums(curveless_store)
    status, err = _run_cli([curveless_store, "--output", str(tmp_path / "out.hdf5")], capsys)
    assert status == 2 and "made_up_band" in err and "curveless.hdf5" in err
    assert not (tmp_path / "out.hdf5").exists()
    assert _checksums(curveless_store) == before


def test_cli_refuses_output_equal_to_the_input_store(store, capsys):
    before = _checksums(store)
    status, err = _run_cli([store, "--output", store], capsys)
    assert status == 2 and "--output" in err and "scenes.hdf5" in err
    assert _checksums(store) == before


def test_cli_refuses_output_equal_to_the_detections(store, detections, capsys):
    before = _checksums(store, detections)
    status, err = _run_cli([store, "--detections", detections, "--output", detections],
                           capsys)
    assert status == 2 and "--output" in err and "detections.hdf5" in err
    assert _checksums(store, detections) == before


def test_cli_refuses_an_output_that_is_a_directory(store, tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "keep.txt").write_text("the user's file\n")
    before = _checksums(store, folder)
    status, err = _run_cli([store, "--output", str(folder)], capsys)
    assert status == 2 and "results" in err and "directory" in err
    assert _checksums(store, folder) == before


@pytest.mark.parametrize(("flags", "culprit"), [
    (["--aperture-radius", "-1"], "--aperture-radius"),
    (["--method", "psf"], "--method"),
    (["--chunk-size", "0"], "--chunk-size"),
    (["--nondetect-snr", "-2"], "--nondetect-snr"),
    (["--kron-params", "0", "1"], "kron_params"),
    (["--background-annulus", "2", "1"], "background_annulus"),
])
def test_cli_names_a_bad_option_value(store, tmp_path, capsys, flags, culprit):
    before = _checksums(store)
    status, err = _run_cli([store, "--output", str(tmp_path / "out.hdf5"), *flags], capsys)
    assert status == 2 and culprit in err
    assert not (tmp_path / "out.hdf5").exists()
    assert _checksums(store) == before


def test_cli_names_a_missing_detections_file(store, tmp_path, capsys):
    status, err = _run_cli([store, "--detections", str(tmp_path / "none.hdf5"), "--output",
                            str(tmp_path / "out.hdf5")], capsys)
    assert status == 2 and "none.hdf5" in err
    assert not (tmp_path / "out.hdf5").exists()


# --- ScenePhotometry ---------------------------------------------------------------------------

def _stage(tmp_path: Path, name: str, **config):
    from rail.tools.scene_tools import ScenePhotometry

    return ScenePhotometry.make_stage(name=name, output=str(tmp_path / f"{name}.hdf5"),
                                      **config)


def test_stage_refuses_a_band_no_filter_curve_knows(store, tmp_path):
    before = _checksums(store)
    with pytest.raises(OptionError, match="jwst_f999w"):
        _stage(tmp_path, "bad_band", bands=["lsst_g", "jwst_f999w"]).measure(store)
    assert not (tmp_path / "bad_band.hdf5").exists()
    assert _checksums(store) == before


def test_stage_refuses_a_store_band_without_filter_curve(curveless_store, tmp_path):
    before = _checksums(curveless_store)
    with pytest.raises(SceneStoreError, match="made_up_band"):
        _stage(tmp_path, "curveless_phot").measure(curveless_store)
    assert not (tmp_path / "curveless_phot.hdf5").exists()
    assert _checksums(curveless_store) == before


@pytest.mark.parametrize(("config", "culprit"), [
    ({"method": "psf"}, "method"),
    ({"aperture_radius": -0.5}, "aperture_radius"),
    ({"kron_params": [0.0, 1.4]}, "kron_params"),
    ({"background_annulus": [1.0, 0.5]}, "background_annulus"),
    ({"chunk_size": 0}, "chunk_size"),
])
def test_stage_names_a_bad_option_value(store, tmp_path, config, culprit):
    before = _checksums(store)
    with pytest.raises(OptionError, match=culprit) as err:
        _stage(tmp_path, f"bad_{culprit}", **config).measure(store)
    assert "ScenePhotometry" in str(err.value)
    assert not (tmp_path / f"bad_{culprit}.hdf5").exists()
    assert _checksums(store) == before


def _ceci(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ceci", "rail.tools.scene_tools.ScenePhotometry",
                           *args], cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_stage_run_by_ceci_refuses_output_equal_to_input(store, tmp_path):
    before = _checksums(store)
    res = _ceci(tmp_path, f"--input={store}", f"--output={store}")
    assert res.returncode != 0 and "scenes.hdf5" in res.stderr
    assert _checksums(store) == before


def test_stage_run_by_ceci_refuses_an_output_directory(store, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "keep.txt").write_text("the user's file\n")
    before = _checksums(store, folder)
    res = _ceci(tmp_path, f"--input={store}", f"--output={folder}")
    assert res.returncode != 0 and "results" in res.stderr
    assert _checksums(store, folder) == before


def test_stage_run_by_ceci_names_a_bad_option_value(store, tmp_path):
    before = _checksums(store)
    res = _ceci(tmp_path, f"--input={store}", "--output=out.hdf5", "--method=psf")
    assert res.returncode != 0 and "method" in res.stderr and "psf" in res.stderr
    assert not (tmp_path / "out.hdf5").exists()
    assert _checksums(store) == before


# --- EAZY and BPZ set-up ---------------------------------------------------------------------

def test_eazy_stages_name_bad_option_values(tmp_path):
    from rail.estimation.algos.eazy import EazyInformer

    table = {"mag_a": np.full(5, 24.0), "err_a": np.full(5, 0.1)}
    common = {"bands": ["mag_a"], "err_bands": ["err_a"], "filter_list": ["jwst_f200w"],
              "hdf5_groupname": ""}
    for name, config, culprit in (
            ("eazy_input_type", {"input_type": "magnitude"}, "input_type"),
            ("eazy_zstep", {"zstep": 0.0}, "zstep"),
            ("eazy_n_workers", {"n_workers": -1}, "n_workers")):
        inf = EazyInformer.make_stage(name=name, model=str(tmp_path / f"{name}.hdf5"),
                                      **common, **config)
        with pytest.raises(OptionError, match=culprit) as err:
            inf.inform(table)
        assert "EazyInformer" in str(err.value)
        assert not (tmp_path / f"{name}.hdf5").exists()
    inf = EazyInformer.make_stage(name="eazy_filter", model=str(tmp_path / "f.hdf5"),
                                  **{**common, "filter_list": ["nope_filter"]})
    with pytest.raises(OptionError, match="nope_filter"):
        inf.inform(table)
    assert not (tmp_path / "f.hdf5").exists()


def test_eazy_model_file_errors_name_the_file(tmp_path):
    from rail.deepdisc.fit.eazy_model import EazyModel

    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "deepdisc-scenes"
        f.attrs["version"] = 1
    before = _checksums(other)
    with pytest.raises(ModelFileError, match=r"other\.hdf5"):
        EazyModel.load(other)
    (tmp_path / "text.hdf5").write_text("not hdf5\n")
    with pytest.raises(ModelFileError, match=r"text\.hdf5"):
        EazyModel.load(tmp_path / "text.hdf5")
    assert _checksums(other) == before


def test_bpz_preparer_names_bad_options_before_writing(tmp_path):
    from rail.tools.bpz_tools import BPZDataPreparer

    table = {"mag_a": np.full(3, 24.0), "err_a": np.full(3, 0.1)}
    common = {"data_path": str(tmp_path / "bpz"), "filters": ["jwst_f200w"],
              "bands": ["mag_a"], "err_bands": ["err_a"], "ref_band": "mag_a",
              "output": str(tmp_path / "out.hdf5")}
    for name, config, culprit in (
            ("bpz_templates", {"templates": "nope"}, "templates"),
            ("bpz_lengths", {"filters": ["jwst_f200w", "jwst_f444w"]}, "filters"),
            ("bpz_workers", {"n_workers": -2}, "n_workers")):
        stage = BPZDataPreparer.make_stage(name=name, **{**common, **config})
        with pytest.raises(OptionError, match=culprit) as err:
            stage.prepare(table)
        assert "BPZDataPreparer" in str(err.value)
    stage = BPZDataPreparer.make_stage(name="bpz_filter",
                                       **{**common, "filters": ["jwst_f999w"]})
    with pytest.raises(OptionError, match="jwst_f999w"):
        stage.prepare(table)
    assert not (tmp_path / "bpz").exists() and not (tmp_path / "out.hdf5").exists()
