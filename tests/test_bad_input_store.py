"""Bad input to the store and the simulator: nothing lost, nothing silent, one clear line.

Scene-store writing (a failure while writing the tables, two runs writing one output, a run
killed mid-render), outputs that would overwrite an input or a directory (``simulate``,
``tile``, ``import-deepdisc``), malformed stores (each refused when opened, naming the file
and the column, scene or object), options out of bounds, band names without a filter curve
and corrupt files. Each test checks the exit status (or the typed exception), that the
message names the culprit, and that every file that existed before is unchanged (sha256).
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

from rail.deepdisc.cli import main
from rail.deepdisc.errors import OptionError, OutputPathError, SceneStoreError
from rail.deepdisc.store.scenes import SceneStore, SceneWriter

SIMULATE = ["simulate", "--survey", "lsst", "--size", "48", "--workers", "1", "-q"]


def _digest(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` (names relative to it)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of ``rail-deepdisc argv`` (argparse errors included)."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    code = "import sys; from rail.deepdisc.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# --- defect 5: a failure while writing the tables publishes nothing ---------------------------
def _tiny_objects(n: int, first_id: int = 1) -> dict[str, np.ndarray]:
    obj = {c: np.full(n, 2.0) for c in ("x", "y", "ra", "dec", "redshift")}
    obj.update({c: np.zeros(n, np.int32) for c in ("bbox_x0", "bbox_y0")})
    obj.update({c: np.full(n, 5, np.int32) for c in ("bbox_x1", "bbox_y1")})
    obj["object_id"] = np.arange(first_id, first_id + n)
    obj["redshift_kind"] = np.array(["spec"] * n)
    return obj


def _tiny_store(path: Path, objects_per_scene=(2, 3)) -> Path:
    with SceneWriter(path, ["lsst_g", "lsst_r"], 8, 8, pixel_scale_arcsec=0.2,
                     zeropoint_ab=31.4, with_ivar=True, with_segmap=True) as w:
        first = 1
        for k, n in enumerate(objects_per_scene):
            w.add_scenes(np.ones((1, 2, 8, 8)), [_tiny_objects(n, first)],
                         [{"wcs": "", "x0": 0, "y0": 0, "tile": k}],
                         ivar=np.ones((1, 2, 8, 8)), segmap=np.zeros((1, 8, 8), np.int32))
            first += n
    return path


def test_a_failure_writing_the_tables_publishes_nothing(tmp_path, monkeypatch):
    out = tmp_path / "store.hdf5"
    out.write_bytes(b"the previous result")
    before = _digest(tmp_path)

    def broken(self):
        self._file.create_group("objects")
        raise OSError("disk full while writing the tables")

    monkeypatch.setattr(SceneWriter, "_write_tables", broken)
    with pytest.raises(OSError, match="disk full"):
        _tiny_store(out)
    assert _digest(tmp_path) == before  # the old file kept, no temporary file left


# --- defect 4: two runs writing one output at once ------------------------------------------
def test_two_simulations_writing_one_output_at_once(tmp_path):
    out = tmp_path / "field.hdf5"
    args = [*SIMULATE, "--scenes", "6", "--seed", "3", "--output", str(out)]
    runs = [_cli(*args, cwd=tmp_path) for _ in range(2)]
    results = [(r.wait(timeout=600), r.stderr.read()) for r in runs]
    for rc, err in results:
        assert rc == 0 or (rc == 2 and str(out) in err), err
    assert any(rc == 0 for rc, _ in results)
    with SceneStore(out) as store:  # a complete store, not a file of zeros
        assert store.n_scenes == 6 and store.n_objects > 0
        chunk = store.read_chunk(0, 6)
        assert np.all(np.any(chunk.images != 0, axis=(1, 2, 3)))
    assert _temporaries(tmp_path) == []


# --- defect 7: a killed run leaves no workers and no lasting temporary file ---------------------
def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its new parent to reap it is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _loads_torch(pid: int) -> bool:
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    return "libtorch" in maps or f"{os.sep}torch{os.sep}" in maps


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_killed_simulation_leaves_no_workers_and_no_stale_temporary(tmp_path):
    out = tmp_path / "field.hdf5"
    run = _cli("simulate", "--survey", "jades", "--scenes", "400", "--size", "96",
               "--workers", "2", "-q", "--output", str(out), cwd=tmp_path)
    deadline = time.monotonic() + 300
    workers: list[int] = []
    while time.monotonic() < deadline and run.poll() is None:
        workers = [p for p in _children(run.pid)
                   if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]
        if len(workers) == 2 and _temporaries(tmp_path):
            break
        time.sleep(0.2)
    assert run.poll() is None and len(workers) == 2, "the run did not start rendering"
    time.sleep(2.0)  # mid-render
    # the rendering workers never import torch
    assert not any(_loads_torch(p) for p in workers)
    children = _children(run.pid)
    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=60)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in children):
        time.sleep(0.2)
    assert not [p for p in children if _alive(p)], "processes outlived the killed run"
    stale = _temporaries(tmp_path)
    assert stale, "the killed run should have left its temporary file"
    # the next run writing that output removes it
    rerun = _cli(*SIMULATE, "--scenes", "2", "--output", str(out), cwd=tmp_path)
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read()
    assert _temporaries(tmp_path) == []
    with SceneStore(out) as store:
        assert store.n_scenes == 2


# --- defect 2: outputs that would overwrite an input or a directory ----------------------------
def test_simulate_refuses_a_catalog_output_equal_to_the_output(tmp_path, capsys):
    out = tmp_path / "field.hdf5"
    out.write_bytes(b"an older field")
    before = _digest(tmp_path)
    rc, err = _run([*SIMULATE, "--scenes", "2", "--output", str(out), "--catalog-output",
                    str(out)], capsys)
    assert rc == 2
    assert "same file" in err and "field.hdf5" in err
    assert _digest(tmp_path) == before


@pytest.mark.parametrize("flag", ["--output", "--catalog-output"])
def test_simulate_refuses_an_output_that_is_a_directory(tmp_path, capsys, flag):
    (tmp_path / "somedir").mkdir()
    (tmp_path / "somedir" / "thesis.tex").write_text("years of work")
    before = _digest(tmp_path)
    paths = {"--output": str(tmp_path / "field.hdf5"), "--catalog-output": None}
    paths[flag] = str(tmp_path / "somedir")
    argv = [*SIMULATE, "--scenes", "2", "--output", paths["--output"]]
    if paths["--catalog-output"]:
        argv += ["--catalog-output", paths["--catalog-output"]]
    rc, err = _run(argv, capsys)
    assert rc == 2
    assert "somedir" in err and "directory" in err
    assert _digest(tmp_path) == before


def _tile_args(field, output) -> list[str]:
    args = ["tile"]
    for band, spec in field.images.items():
        args += ["--image", f"{band}={spec}"]
    return [*args, "--catalog", field.catalog, "--id-col", "id", "--tile-size", "96",
            "--overlap", "24", "--output", str(output), "-q"]


@pytest.fixture
def mosaics(fits_field, tmp_path):
    """A copy of ``fits_field``'s mosaics and catalog (so tests may try to overwrite them)."""
    _, field = fits_field
    folder = tmp_path / "mosaics"
    shutil.copytree(Path(field.catalog).parent, folder)

    def moved(spec: str) -> str:
        path, _, ext = spec.partition("[")
        return str(folder / Path(path).name) + (f"[{ext}" if ext else "")

    class Field:
        images = {b: moved(s) for b, s in field.images.items()}
        catalog = moved(field.catalog)

    return Field, folder


@pytest.mark.parametrize("target", ["mosaic", "catalog"])
def test_tile_refuses_an_output_equal_to_an_input(mosaics, capsys, target):
    field, folder = mosaics
    output = field.catalog if target == "catalog" else field.images["jwst_f200w"][:-5]
    before = _digest(folder)
    rc, err = _run(_tile_args(field, output), capsys)
    assert rc == 2
    assert "also an input" in err and Path(output).name in err
    assert _digest(folder) == before


def test_tile_refuses_a_band_no_filter_curve_knows(mosaics, capsys):
    field, folder = mosaics
    args = _tile_args(field, folder / "tiles.hdf5")
    i = args.index(f"jwst_f200w={field.images['jwst_f200w']}")
    args[i] = f"jwst_f999w={field.images['jwst_f200w']}"
    before = _digest(folder)
    started = time.monotonic()
    rc, err = _run(args, capsys)
    assert rc == 2
    assert "jwst_f999w" in err and "filter curve" in err
    assert time.monotonic() - started < 30  # before any pixel is read
    assert _digest(folder) == before


def _deepdisc_file(path: Path) -> Path:
    import json

    meta = [json.dumps({"height": 8, "width": 8, "image_id": i, "annotations": [
        {"bbox": [1, 1, 4, 4], "bbox_mode": 1, "redshift": 0.5, "obj_id": 7 + i}]})
        for i in range(2)]
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.ones((2, 6 * 8 * 8), np.float32))
        f.create_dataset("metadata_dicts", data=np.array(meta, dtype="S"))
    return path


def test_import_refuses_an_output_equal_to_its_input(tmp_path, capsys):
    images = _deepdisc_file(tmp_path / "dc2.hdf5")
    before = _digest(tmp_path)
    rc, err = _run(["import-deepdisc", "--images", str(images), "--output", str(images), "-q"],
                   capsys)
    assert rc == 2
    assert "also an input" in err and "dc2.hdf5" in err
    assert _digest(tmp_path) == before


def test_import_names_a_corrupt_file(tmp_path, capsys):
    corrupt = tmp_path / "broken.hdf5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 40)
    before = _digest(tmp_path)
    rc, err = _run(["import-deepdisc", "--images", str(corrupt), "--output",
                    str(tmp_path / "scenes.hdf5"), "-q"], capsys)
    assert rc == 2
    assert "broken.hdf5" in err and len(err.strip().splitlines()) == 1
    assert _digest(tmp_path) == before


# --- options out of bounds -------------------------------------------------------------------
@pytest.mark.parametrize(("flag", "value"), [("--objects-per-scene", "1e9"),
                                             ("--size", "100000"), ("--scenes", "0"),
                                             ("--seed", "-1")])
def test_simulate_bounds_are_checked_before_work(tmp_path, capsys, flag, value):
    argv = [*SIMULATE, "--scenes", "2", "--output", str(tmp_path / "f.hdf5")]
    argv = [*argv, flag, value] if flag not in argv else \
        [*argv[:argv.index(flag) + 1], value, *argv[argv.index(flag) + 2:]]
    started = time.monotonic()
    rc, err = _run(argv, capsys)
    assert rc == 2
    assert flag in err and "must be" in err
    assert time.monotonic() - started < 10
    assert list(tmp_path.iterdir()) == []


def test_a_field_too_large_for_one_run_is_refused():
    from rail.deepdisc.sim.field import FieldSpec

    with pytest.raises(OptionError, match="n_scenes x objects_per_scene"):
        FieldSpec(n_scenes=1_000_000, objects_per_scene=1000.0).validate()


# --- malformed stores: refused when opened, naming the file and the culprit -------------------
def _edit(path: Path, change) -> Path:
    with h5py.File(path, "r+") as f:
        change(f)
    return path


def _replace(f: h5py.File, name: str, data: np.ndarray) -> None:
    del f[name]
    f.create_dataset(name, data=data)


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: _replace(f, "images", f["images"][:].astype(np.float64)),
     r"/images holds float64 values; a scene store holds float32"),
    (lambda f: _replace(f, "images", f["images"][:].astype(np.int16)),
     r"/images holds int16 values"),
    (lambda f: _replace(f, "ivar", f["ivar"][:].astype(np.float64)), r"/ivar holds float64"),
    (lambda f: _replace(f, "objects/x", f["objects/x"][:-1]),
     r"column /objects/x has shape \(4,\); every column of /objects must be 1-D with 5 rows"),
    (lambda f: _replace(f, "objects/object_id", np.array([1, 2, 3, -4, 5])),
     r"object_id -4 in scene 1 is not positive"),
    (lambda f: _replace(f, "objects/object_id", np.array([1, 2, 3, 2, 5])),
     r"object_id 2 appears 2 times \(scenes \[0, 1\]\)"),
    (lambda f: _replace(f, "objects/bbox_x1", np.array([5, 5, 5, -1, 5], np.int32)),
     r"\[0, 0, -1, 5\] of object 4 in scene 1 is inverted"),
    (lambda f: _replace(f, "objects/bbox_y1", np.array([5, 5, 9, 5, 5], np.int32)),
     r"\[0, 0, 5, 9\] of object 3 in scene 1 reaches outside its 8 x 8 scene"),
    (lambda f: _replace(f, "objects/x", np.array([2.0, np.nan, 2, 2, 2])),
     r"object 2 in scene 0 has a non-finite x"),
])
def test_a_malformed_store_is_refused_naming_the_culprit(tmp_path, change, message):
    path = _edit(_tiny_store(tmp_path / "bad.hdf5"), change)
    before = _digest(tmp_path)
    with pytest.raises(SceneStoreError, match=message) as info:
        SceneStore(path)
    assert str(path) in str(info.value)
    assert _digest(tmp_path) == before


def test_an_empty_box_is_not_an_inverted_box(tmp_path):
    """Objects without a footprint have empty boxes (x0 == x1); estimation gives them a
    small box at (x, y)."""
    path = _edit(_tiny_store(tmp_path / "empty.hdf5"),
                 lambda f: _replace(f, "objects/bbox_x1", np.array([5, 0, 5, 5, 5], np.int32)))
    with SceneStore(path) as store:
        assert store.n_objects == 5


def test_a_bad_store_fails_the_command_with_one_line(tmp_path, capsys):
    path = _edit(_tiny_store(tmp_path / "bad.hdf5"),
                 lambda f: _replace(f, "images", f["images"][:].astype(np.float64)))
    rc, err = _run(["show", str(path), "--output", str(tmp_path / "p.png")], capsys)
    assert rc == 2
    assert "bad.hdf5" in err and "float64" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize(("objects_per_scene", "message"), [
    ((), r"holds no scenes; nothing for training"),
    ((0, 0), r"lists no objects in its 2 scenes; nothing for training"),
])
def test_an_empty_store_is_named_by_require(tmp_path, objects_per_scene, message):
    path = _tiny_store(tmp_path / "empty.hdf5", objects_per_scene)
    with SceneStore(path) as store:  # a store may be empty ...
        with pytest.raises(SceneStoreError, match=message) as info:
            store.require("training")  # ... but work that needs objects says so
    assert "empty.hdf5" in str(info.value)


def test_the_writer_refuses_an_output_equal_to_an_input(tmp_path):
    source = _tiny_store(tmp_path / "source.hdf5")
    before = _digest(tmp_path)
    with pytest.raises(OutputPathError, match="also an input"):
        SceneWriter(source, ["lsst_g"], 8, 8, pixel_scale_arcsec=0.2, zeropoint_ab=31.4,
                    inputs=[source])
    assert _digest(tmp_path) == before


def test_relabelling_refuses_to_overwrite_its_source(tmp_path):
    from rail.deepdisc.sim.labels import relabel_store

    source = _tiny_store(tmp_path / "source.hdf5")
    before = _digest(tmp_path)
    with pytest.raises(OutputPathError, match="also an input"):
        relabel_store(source, source, np.ones(5, bool))
    assert _digest(tmp_path) == before


@pytest.mark.parametrize(("change", "message"), [
    ({"object_id": np.array([1, 1])}, r"object_id 1 appears 2 times \(scenes \[0\]\)"),
    ({"bbox_x1": np.array([5, 9], np.int32)}, r"object 2 in scene 0 reaches outside"),
    ({"x": np.zeros((2, 2))}, r"object columns \['x'\] of scene 0 are not 1-D"),
])
def test_the_writer_never_publishes_a_store_the_reader_refuses(tmp_path, change, message):
    out = tmp_path / "store.hdf5"
    out.write_bytes(b"the previous result")
    before = _digest(tmp_path)
    with pytest.raises(SceneStoreError, match=message):
        with SceneWriter(out, ["lsst_g"], 8, 8, pixel_scale_arcsec=0.2, zeropoint_ab=31.4,
                         with_ivar=False, with_segmap=False) as w:
            w.add_scenes(np.ones((1, 1, 8, 8)), [{**_tiny_objects(2), **change}],
                         [{"wcs": "", "x0": 0, "y0": 0, "tile": 0}])
    assert _digest(tmp_path) == before
