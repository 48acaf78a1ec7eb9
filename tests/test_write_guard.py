"""One write path (issue 26): every command refuses, before any work, an output that is a
directory, that is one of its inputs (a survey file's companions included), that cannot be
written or that another output names; a refused or interrupted run changes no file that
existed before and leaves no temporary file and no folder it created.

Each test checks the exit status (2 for bad input or output, 130 for SIGINT), that stderr is
one line naming the file, option or key at fault without a traceback, and the SHA-256 of
every file that existed before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_survey_files import DECAM

from rail.deepdisc.cli import main
from rail.deepdisc.store.write_guard import WriteGuard, remove_stale_stage_temporaries

SIM = ["--scenes", "2", "--size", "48", "--objects-per-scene", "4", "--workers", "1", "-q"]


def _digest(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` (hidden ones too)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(argv: list[str], capsys, *names: str) -> str:
    """Run a command that must be refused: exit 2, one line naming ``names``."""
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's refusal of a flag value
        rc = exc.code
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    last = err.splitlines()[-1]
    assert last.startswith(f"rail-deepdisc {argv[0]}: error: "), err
    assert "Traceback" not in err
    for name in names:
        assert name in last, (name, last)
    return last


@pytest.fixture
def work(tmp_path, tiny_train_store, tiny_model):
    """A folder with a store, a model, a survey file naming a PSF image (its companion),
    a spectra table and a directory."""
    shutil.copyfile(tiny_train_store, tmp_path / "ok.hdf5")
    shutil.copyfile(tiny_model, tmp_path / "m.pt")
    from astropy.io import fits

    fits.PrimaryHDU(np.outer(np.hanning(33), np.hanning(33)).astype(np.float32)).writeto(
        tmp_path / "psf_g.fits")
    (tmp_path / "s.yml").write_text(DECAM.replace(
        "psf: {kind: moffat, fwhm: 1.1, beta: 3.5}",
        "psf: {kind: image, file: psf_g.fits, oversampling: 4}", 1))
    shutil.copyfile(tiny_train_store, tmp_path / "spectra.fits")  # its content is never read
    (tmp_path / "somedir").mkdir()
    (tmp_path / "somedir" / "thesis.tex").write_text("years of work")
    (tmp_path / "afile").write_text("a file, not a folder")
    return tmp_path


def _commands(w: Path, out: str) -> dict[str, list[str]]:
    """Each command with its output at ``out`` (inputs from ``work``)."""
    store, model = str(w / "ok.hdf5"), str(w / "m.pt")
    return {
        "simulate": ["simulate", "--survey", str(w / "s.yml"), *SIM, "--output", out],
        "simulate-catalog": ["simulate", "--survey", str(w / "s.yml"), *SIM, "--output",
                             str(w / "new.hdf5"), "--catalog-output", out],
        "join": ["join", store, store, "--scenes", "0:2", "2:4", "--output", out, "-q"],
        "show": ["show", store, "--output", out, "-q"],
        "photometry": ["photometry", store, "--output", out, "-q"],
        "estimate": ["estimate", "--input", store, "--model", model, "--output", out, "-q"],
        "calibrate": ["calibrate", "--input", store, "--model", model, "--output", out, "-q"],
        "train": ["train", "--input", store, "--model", out, "--epochs", "1", "-q"],
    }


COMMANDS = ["simulate", "simulate-catalog", "join", "show", "photometry", "estimate",
            "calibrate", "train"]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_that_is_a_directory_is_refused(work, capsys, command):
    before = _digest(work)
    _refused(_commands(work, str(work / "somedir"))[command], capsys, "somedir", "directory")
    assert _digest(work) == before


@pytest.mark.parametrize(("command", "victim"), [
    ("simulate", "s.yml"), ("simulate", "psf_g.fits"), ("simulate-catalog", "s.yml"),
    ("simulate-catalog", "psf_g.fits"), ("join", "ok.hdf5"), ("show", "ok.hdf5"),
    ("photometry", "ok.hdf5"), ("estimate", "ok.hdf5"), ("estimate", "m.pt"),
    ("calibrate", "ok.hdf5"), ("calibrate", "m.pt"), ("train", "ok.hdf5")])
def test_an_output_equal_to_any_input_is_refused(work, capsys, monkeypatch, command, victim):
    """The survey file and the PSF file it names are inputs of simulate."""
    before = _digest(work)
    monkeypatch.chdir(work)  # the output given relative, the input absolute: one file
    _refused(_commands(work, victim)[command], capsys, victim, "input")
    assert _digest(work) == before


def test_a_link_to_an_input_is_the_input(work, capsys):
    (work / "link.yml").symlink_to(work / "s.yml")
    before = _digest(work)
    _refused(_commands(work, str(work / "link.yml"))["simulate"], capsys, "link.yml",
             "--survey")
    assert _digest(work) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unwritable_place_is_refused_and_no_folder_is_left(work, capsys, command):
    before = _digest(work)
    _refused(_commands(work, str(work / "afile" / "x" / "out.hdf5"))[command], capsys,
             "afile", "not a directory")
    assert _digest(work) == before


def test_a_refused_run_leaves_no_folder_it_created(work, capsys):
    store = str(work / "ok.hdf5")
    before = sorted(p.name for p in work.iterdir())
    _refused(["join", store, store, "--scenes", "0:3", "2:4", "--output",
              str(work / "new" / "sub" / "j.hdf5"), "-q"], capsys, "ok.hdf5", "twice")
    assert sorted(p.name for p in work.iterdir()) == before


def test_two_outputs_of_one_path_are_refused(work, capsys):
    before = _digest(work)
    out = str(work / "x.hdf5")
    _refused(["simulate", "--survey", "jades", *SIM, "--output", out, "--catalog-output",
              out], capsys, "--output", "--catalog-output", "same file")
    assert _digest(work) == before


def test_tile_refuses_its_spectra_catalog_as_output(work, fits_field, capsys):
    _, field = fits_field
    images = [x for b, p in field.images.items() for x in ("--image", f"{b}={p}")]
    before = _digest(work)
    _refused(["tile", *images, "--tile-size", "96", "--overlap", "24",
              "--catalog", field.catalog, "--id-col", "id", "--spec-catalog",
              str(work / "spectra.fits"), "--output", str(work / "spectra.fits"), "-q"],
             capsys, "spectra.fits", "--spec-catalog")
    assert _digest(work) == before


# --- scene selections ---------------------------------------------------------------------
@pytest.mark.parametrize("scenes", [["0", "0"], ["2:1", "1:0"], ["0:-1", "1"], ["-2", "1"],
                                    ["1:1", "2"]])
def test_empty_or_negative_scene_selections_are_refused(work, capsys, scenes):
    shutil.copyfile(work / "ok.hdf5", work / "old_join.hdf5")
    before = _digest(work)
    store = str(work / "ok.hdf5")
    _refused(["join", store, store, "--scenes", *scenes, "--output",
              str(work / "old_join.hdf5"), "-q"], capsys, "--scenes")
    assert _digest(work) == before


def test_a_scene_joined_twice_is_refused(work, capsys):
    before = _digest(work)
    store = str(work / "ok.hdf5")
    _refused(["join", store, store, "--output", str(work / "j.hdf5"), "-q"], capsys,
             "ok.hdf5", "twice")
    assert _digest(work) == before


def test_a_selection_beyond_the_store_is_refused(work, capsys):
    store = str(work / "ok.hdf5")
    _refused(["join", store, store, "--scenes", "0:2", "9:", "--output",
              str(work / "j.hdf5"), "-q"], capsys, "ok.hdf5", "9:None")


# --- bad inputs -----------------------------------------------------------------------------
def test_calibrate_refuses_a_store_without_valid_pixels(work, capsys):
    with h5py.File(work / "ok.hdf5", "r+") as f:
        f["images"][...] = np.nan
    before = _digest(work)
    _refused(["calibrate", "--input", str(work / "ok.hdf5"), "--model", str(work / "m.pt"),
              "--output", str(work / "cal.pt"), "-q"], capsys, "ok.hdf5", "valid pixels")
    assert _digest(work) == before


@pytest.mark.parametrize("case", ["missing", "scene store"])
def test_catalog_of_a_bad_pdf_file_is_one_line(work, capsys, case):
    pdfs = str(work / "none.hdf5") if case == "missing" else str(work / "ok.hdf5")
    before = _digest(work)
    _refused(["catalog", "--pdfs", pdfs, "--output", str(work / "c.fits"), "-q"], capsys,
             Path(pdfs).name)
    assert _digest(work) == before


@pytest.mark.parametrize(("key", "named"), [("id_column", "id_column"),
                                             ("spec_catalogue", "spec_catalogue")])
def test_field_inputs_refuse_unknown_keys_listing_the_allowed(work, capsys, key, named):
    inputs = work / "field_inputs.yml"
    inputs.write_text(f"catalog: spectra.fits\n{key}: x\n")
    before = _digest(work)
    last = _refused(["field", "--inputs", str(inputs), "--output-dir", str(work / "run"),
                     "-q"], capsys, named, "field_inputs.yml", "spec_catalog", "id_col")
    assert "allowed" in last
    assert _digest(work) == before
    assert not (work / "run").exists()


def test_fits_field_refuses_a_folder_holding_the_users_files(work, capsys):
    (work / "out").mkdir()
    (work / "out" / "catalog.fits").write_text("the user's catalog")
    before = _digest(work)
    _refused(["fits-field", "--mosaic-size", "256", "--output-dir", str(work / "out"), "-q"],
             capsys, "out", "catalog.fits", "--overwrite")
    assert _digest(work) == before


# --- interruptions --------------------------------------------------------------------------
def _interrupt_when(argv: list[str], cwd: Path, ready) -> subprocess.CompletedProcess:
    """Run the command, send SIGINT once ``ready()`` holds (work in progress), wait."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "rail.deepdisc.cli", *argv], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    deadline = time.monotonic() + 300
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith((".", "inprogress_")))


def test_sigint_during_simulate_is_one_line_and_leaves_the_old_output(work):
    shutil.copyfile(work / "ok.hdf5", work / "sim.hdf5")
    before = _digest(work)
    result = _interrupt_when(
        ["simulate", "--survey", "jades", "--scenes", "400", "--size", "64", "--workers",
         "1", "--output", "sim.hdf5", "-q"], work,
        lambda: any(p.name.startswith(".sim.hdf5.") and p.name.endswith(".tmp")
                    for p in work.iterdir()))  # the temporary being written, not the lock
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip() == ("rail-deepdisc simulate: interrupted (SIGINT); outputs "
                                     "not complete were not written")
    assert _digest(work) == before
    assert _hidden(work) == []


def test_sigint_during_fits_field_keeps_the_earlier_field_whole(work):
    old = work / "field"
    old.mkdir()
    (old / "field_inputs.yml").write_text("catalog: catalog.fits\n")
    (old / "catalog.fits").write_text("the earlier field's catalog")
    before = _digest(work)
    result = _interrupt_when(
        ["fits-field", "--mosaic-size", "512", "--overwrite", "--output-dir", "field", "-q"],
        work, lambda: any(p.name.startswith(".field.") and any(p.iterdir())
                          for p in work.iterdir() if p.is_dir()))
    assert result.returncode == 130, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert _digest(work) == before
    assert _hidden(work) == []


def test_fits_field_overwrite_replaces_the_folder_whole(work, capsys):
    old = work / "field"
    old.mkdir()
    (old / "stale_from_an_earlier_field.fits").write_text("old")
    assert main(["fits-field", "--mosaic-size", "256", "--overwrite", "--output-dir",
                 str(old), "-q"]) == 0
    names = {p.name for p in old.iterdir()}
    assert "field_inputs.yml" in names and "stale_from_an_earlier_field.fits" not in names
    assert _hidden(work) == []


# --- temporaries ----------------------------------------------------------------------------
def test_stale_stage_parts_of_dead_runs_are_removed(tmp_path):
    from rail.deepdisc.store.atomic import process_tag

    host = process_tag().rpartition("-")[0]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = [tmp_path / f"inprogress_{host}-{dead}-abcdef_pz.hdf5.part00000",
             tmp_path / f"inprogress_{host}-{dead}-abcdef_pz.hdf5"]
    live = tmp_path / f"inprogress_{process_tag()}-abcdef_pz.hdf5.part00000"
    other = tmp_path / f"inprogress_{host}-{dead}-abcdef_pz.hdf5x"
    for p in [*stale, live, other]:
        p.write_text("x")
    assert sorted(remove_stale_stage_temporaries(tmp_path / "pz.hdf5")) == sorted(stale)
    assert live.exists() and other.exists()


def test_the_guard_removes_its_temporaries_and_folders_on_failure(tmp_path):
    out = tmp_path / "a" / "b" / "x.hdf5"
    with pytest.raises(KeyboardInterrupt), WriteGuard(writes={"--output": out}):
        from rail.deepdisc.store.atomic import make_parents, temporary_sibling

        make_parents(out)
        temporary_sibling(out).write_text("partial")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
