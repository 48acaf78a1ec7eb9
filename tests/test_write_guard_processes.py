"""One write path (issue 26), across processes: the ceci form of every stage, two runs
writing one output at once, SIGKILL, and training checkpoints.

Each test checks the exit status, that stderr ends with one line naming the file or option at
fault without a traceback, and the SHA-256 of every file that existed before.
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

import pytest
import yaml

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}


def _digest(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` (hidden ones too)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _hidden(folder: Path) -> list[str]:
    """Temporaries, staging folders and locks left below ``folder``."""
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith((".", "inprogress_")))


# --- the ceci form of every stage -------------------------------------------------------------
#: (module, stage, {input tag: suffix}, {output tag: suffix}, the stage's config section);
#: "@/" in the config stands for the work folder. The first input (the config file for a
#: stage without file inputs) is the one missing in one case and overwritten in the other.
STAGES = [
    ("rail.creation.engines.galaxy_scenes", "GalaxyPopulationCreator", {},
     {"output": ".hdf5"}, {"n_samples": 10}),
    ("rail.creation.engines.galaxy_scenes", "SceneRenderer", {"input": ".hdf5"},
     {"output": ".hdf5"}, {"n_scenes": 1}),
    ("rail.creation.engines.survey_field", "MosaicSurveyMeasurer", {}, {"output": ".yml"},
     {"images": {"g": "@/img_g.fits"}}),
    ("rail.creation.engines.survey_field", "SurveyFieldSimulator", {"survey": ".yml"},
     {"output": ".hdf5"}, {"n_scenes": 1}),
    ("rail.tools.bpz_tools", "BPZDataPreparer", {"input": ".hdf5"}, {"output": ".hdf5"},
     {"data_path": "x", "filters": ["a"], "bands": ["a"], "err_bands": ["b"],
      "ref_band": "a"}),
    ("rail.tools.scene_tools", "MosaicTiler", {"input": ".fits"}, {"output": ".hdf5"},
     {"images": {"g": "@/img_g.fits"}}),
    ("rail.tools.scene_tools", "CutoutImporter", {"input": ".fits"}, {"output": ".hdf5"},
     {"format": "fits", "cutouts": "@/img_g.fits"}),
    ("rail.tools.scene_tools", "ScenePhotometry", {"input": ".hdf5"}, {"output": ".hdf5"},
     {}),
    ("rail.tools.scene_tools", "SurveyScenePhotometry", {"input": ".hdf5", "survey": ".yml"},
     {"output": ".hdf5"}, {}),
    ("rail.tools.report_tools", "PhotoZComparisonReport",
     {"truth": ".hdf5", "deepdisc": ".hdf5", "bpz": ".hdf5", "eazy": ".hdf5",
      "photometric": ".hdf5", "hybrid": ".hdf5", "detections": ".hdf5", "eazy_model": ".hdf5"},
     {"report": ".json"}, {}),
    ("rail.tools.report_tools", "FieldValidationReport",
     {t: ".hdf5" for t in ("oof", "field", "detections", "oof_templates", "field_templates",
                           "oof_photometric", "field_photometric", "oof_hybrid",
                           "field_hybrid", "template_model")},
     {"report": ".json", "metrics": ".json"}, {"images": {"g": "@/img_g.fits"}}),
    ("rail.tools.catalog_tools", "PhotoZCatalog", {"input": ".hdf5"}, {"output": ".fits"},
     {}),
    ("rail.tools.catalog_tools", "HeadlineCatalog",
     {"metrics": ".json", "deepdisc": ".hdf5", "eazy": ".hdf5", "photometry_net": ".hdf5",
      "hybrid": ".hdf5"}, {"output": ".fits"}, {}),
    ("rail.estimation.algos.deepdisc_cv", "DeepDiscFineTuner",
     {"input": ".hdf5", "init_model": ".pt"}, {"model": ".pt"}, {}),
    ("rail.estimation.algos.deepdisc_cv", "DeepDiscCrossValidator",
     {"input": ".hdf5", "init_model": ".pt"},
     {"output": ".hdf5", "training_labels": ".hdf5"}, {}),
    ("rail.estimation.algos.deepdisc", "DeepDiscInformer", {"input": ".hdf5"},
     {"model": ".pt"}, {}),
    ("rail.estimation.algos.deepdisc", "DeepDiscEstimator",
     {"input": ".hdf5", "model": ".pt"}, {"output": ".hdf5", "detections": ".hdf5"}, {}),
    ("rail.estimation.algos.eazy", "EazyInformer", {"input": ".hdf5"}, {"model": ".hdf5"},
     {}),
    ("rail.estimation.algos.eazy", "EazyEstimator", {"input": ".hdf5", "model": ".hdf5"},
     {"output": ".hdf5"}, {}),
    ("rail.estimation.algos.eazy", "EazyCrossValidator",
     {"input": ".hdf5", "model": ".hdf5"}, {"output": ".hdf5"}, {}),
    ("rail.estimation.algos.hybrid", "HybridInformer",
     {"image": ".hdf5", "templates": ".hdf5", "photometric": ".hdf5"}, {"model": ".json"},
     {}),
    ("rail.estimation.algos.hybrid", "HybridEstimator",
     {"image": ".hdf5", "templates": ".hdf5", "photometric": ".hdf5", "model": ".json"},
     {"output": ".hdf5"}, {}),
    ("rail.estimation.algos.hybrid", "HybridCrossValidator",
     {"image": ".hdf5", "templates": ".hdf5", "photometric": ".hdf5"}, {"output": ".hdf5"},
     {}),
    ("rail.estimation.algos.photometry_network", "PhotometryNetInformer",
     {"input": ".hdf5", "survey": ".yml"}, {"model": ".pt", "oof": ".hdf5"}, {}),
    ("rail.estimation.algos.photometry_network", "PhotometryNetEstimator",
     {"input": ".hdf5", "model": ".pt"}, {"output": ".hdf5"}, {}),
]


def _package_stages() -> set[str]:
    """Every RAIL stage class this package defines (its modules under src/rail/)."""
    import importlib
    import inspect

    from rail.core.stage import RailStage

    found = set()
    for path in Path(SRC, "rail").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[1] == "deepdisc" or parts[-1].startswith("_"):
            continue  # the library; stages live in RAIL's namespaces
        module = importlib.import_module(".".join(parts))
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, RailStage) and \
                    obj.__module__ == module.__name__ and not name.startswith("_"):
                found.add(f"{module.__name__}.{name}")
    return found


def test_the_battery_lists_every_stage():
    assert {f"{m}.{c}" for m, c, *_ in STAGES} == _package_stages()


@pytest.mark.parametrize("case", ["missing input", "output is an input"])
@pytest.mark.parametrize(("module", "stage", "inputs", "outputs", "config"), STAGES,
                         ids=[s[1] for s in STAGES])
def test_the_ceci_form_of_every_stage_fails_in_one_line(tmp_path, module, stage, inputs,
                                                         outputs, config, case):
    """``python -m ceci module.Stage --config=... --<input>=... --<output>=...``: an input
    that does not exist, or an output that is an input, ends the stage with one line naming
    the file, exit 2, nothing changed."""
    (tmp_path / "img_g.fits").write_bytes(b"the user's mosaic")
    section = yaml.safe_load(yaml.safe_dump(config).replace("@/", f"{tmp_path}/"))
    config_file = tmp_path / "config.yml"
    config_file.write_text(yaml.safe_dump({"st": section}))
    paths = {}
    for tag, suffix in inputs.items():
        paths[tag] = tmp_path / f"in_{tag}{suffix}"
        paths[tag].write_bytes(f"the user's {tag}".encode())
    first = paths[next(iter(inputs))] if inputs else config_file
    out = {tag: tmp_path / f"out_{tag}{suffix}" for tag, suffix in outputs.items()}
    if case == "missing input":
        victim = tmp_path / "nowhere" / first.name
        if inputs:
            paths[next(iter(inputs))] = victim
        else:
            config_file = victim
    else:
        victim = first
        out[next(iter(outputs))] = victim
    before = _digest(tmp_path)
    res = subprocess.run(
        [sys.executable, "-m", "ceci", f"{module}.{stage}", f"--config={config_file}",
         *(f"--{t}={p}" for t, p in {**paths, **out}.items()), "--name=st"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=ENV)
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2, res.stderr[-2000:]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert errors[0].startswith(f"{stage}: error: ") and str(victim) in errors[0], errors[0]
    assert ("does not exist" if case == "missing input" else "input") in errors[0], errors[0]
    assert _digest(tmp_path) == before
    assert _hidden(tmp_path) == []


# --- two runs writing one output ----------------------------------------------------------
def _start(argv: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rail.deepdisc.cli", *argv], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _wait_for(ready, proc: subprocess.Popen) -> None:
    """Wait until ``ready()`` holds while ``proc`` runs (its work in progress)."""
    deadline = time.monotonic() + 300
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()


def _dead_pid() -> int:
    """The process id of a process that has exited."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)


SIMULATE = ["simulate", "--survey", "jades", "--size", "48", "--objects-per-scene", "4",
            "--workers", "1", "-q", "--output", "sim.hdf5"]


def test_a_second_run_writing_the_same_output_is_refused_while_the_first_completes(tmp_path):
    from rail.deepdisc.store.scenes import SceneStore

    first = _start([*SIMULATE, "--scenes", "40"], tmp_path)
    _wait_for(lambda: (tmp_path / ".sim.hdf5.lock").exists(), first)
    second = subprocess.run([sys.executable, "-m", "rail.deepdisc.cli", *SIMULATE,
                             "--scenes", "2"], cwd=tmp_path, capture_output=True, text=True,
                            env=ENV, timeout=300)
    assert first.poll() is None, "the first run ended before the second was refused"
    errors = [line for line in second.stderr.splitlines() if line.strip()]
    assert second.returncode == 2, second.stderr
    assert len(errors) == 1 and "Traceback" not in second.stderr, second.stderr
    assert errors[0].startswith("rail-deepdisc simulate: error: --output sim.hdf5 is being "
                                f"written by another run (pid {first.pid} "), errors[0]
    _, err = first.communicate(timeout=900)
    assert first.returncode == 0, err
    with SceneStore(tmp_path / "sim.hdf5") as store:
        assert store.n_scenes == 40
    assert _hidden(tmp_path) == []


def test_a_live_runs_lock_refuses_and_a_dead_runs_lock_is_removed(tmp_path, capsys):
    from rail.deepdisc.cli import main
    from rail.deepdisc.store.atomic import process_tag

    host = process_tag().rpartition("-")[0]
    lock = tmp_path / ".sim.hdf5.lock"
    (tmp_path / "sim.hdf5").write_bytes(b"an earlier simulation")
    argv = [*SIMULATE[:-1], str(tmp_path / "sim.hdf5"), "--scenes", "2"]
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock.write_text(f"{host}-{live.pid}")
        before = _digest(tmp_path)
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "sim.hdf5" in err and f"pid {live.pid}" in err
        assert _digest(tmp_path) == before  # the live run's lock is left to it
    finally:
        live.kill()
        live.wait()
    lock.write_text(f"{host}-{_dead_pid()}")
    assert main(argv) == 0, capsys.readouterr().err
    assert _hidden(tmp_path) == []


def test_an_empty_lock_is_a_run_starting_now_unless_it_is_old(tmp_path, capsys):
    from rail.deepdisc.cli import main

    lock = tmp_path / ".sim.hdf5.lock"
    lock.touch()
    argv = [*SIMULATE[:-1], str(tmp_path / "sim.hdf5"), "--scenes", "2"]
    assert main(argv) == 2
    assert "a run starting now" in capsys.readouterr().err
    os.utime(lock, (time.time() - 3600, time.time() - 3600))
    assert main(argv) == 0, capsys.readouterr().err
    assert _hidden(tmp_path) == []


def _ceci(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ceci", *argv], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=ENV)


def test_the_ceci_form_holds_the_lock_of_its_outputs(tmp_path):
    """A stage run by ceci's runner is refused while another live run writes its output; a
    dead run's lock is removed, and the stage's own is gone when it ends."""
    from rail.deepdisc.store.atomic import process_tag

    host = process_tag().rpartition("-")[0]
    (tmp_path / "config.yml").write_text(yaml.safe_dump({"st": {"n_samples": 10}}))
    argv = ["rail.creation.engines.galaxy_scenes.GalaxyPopulationCreator",
            f"--config={tmp_path / 'config.yml'}", f"--output={tmp_path / 'pop.hdf5'}",
            "--name=st"]
    lock = tmp_path / ".pop.hdf5.lock"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock.write_text(f"{host}-{live.pid}")
        before = _digest(tmp_path)
        res = _ceci(argv, tmp_path)
        errors = [line for line in res.stderr.splitlines() if line.strip()]
        assert res.returncode == 2, res.stderr[-2000:]
        assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
        assert errors[0].startswith("GalaxyPopulationCreator: error: ") and \
            "pop.hdf5" in errors[0] and f"pid {live.pid}" in errors[0], errors[0]
        assert _digest(tmp_path) == before
    finally:
        live.kill()
        live.wait()
    lock.write_text(f"{host}-{_dead_pid()}")
    res = _ceci(argv, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "pop.hdf5").is_file()
    assert _hidden(tmp_path) == []


def test_sigterm_releases_the_lock_and_keeps_the_old_output(tmp_path, tiny_train_store):
    """SIGTERM (a batch system's stop) is caught like SIGINT: one line, 128 + 15, the old
    output whole, the lock and the temporary removed."""
    shutil.copyfile(tiny_train_store, tmp_path / "sim.hdf5")
    before = _digest(tmp_path)
    proc = _start([*SIMULATE, "--scenes", "400"], tmp_path)
    _wait_for(lambda: any(p.name.startswith(".sim.hdf5.") and p.name.endswith(".tmp")
                          for p in tmp_path.iterdir()), proc)
    assert (tmp_path / ".sim.hdf5.lock").read_text().endswith(f"-{proc.pid}")
    proc.terminate()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip() == ("rail-deepdisc simulate: interrupted (SIGTERM); outputs not "
                           "complete were not written")
    assert _digest(tmp_path) == before
    assert _hidden(tmp_path) == []


# --- SIGKILL --------------------------------------------------------------------------------
def _kill_when(argv: list[str], cwd: Path, ready) -> None:
    """Run the command and SIGKILL it once ``ready()`` holds (work in progress)."""
    proc = _start(argv, cwd)
    _wait_for(ready, proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _visible(digest: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in digest.items()
            if not any(part.startswith(".") for part in Path(k).parts)}


def test_sigkill_during_simulate_keeps_the_old_output_and_the_next_run_cleans_up(
        tmp_path, tiny_train_store, capsys):
    from rail.deepdisc.cli import main

    shutil.copyfile(tiny_train_store, tmp_path / "sim.hdf5")
    before = _digest(tmp_path)
    _kill_when([*SIMULATE, "--scenes", "400"], tmp_path,
               lambda: any(p.name.startswith(".sim.hdf5.") and p.name.endswith(".tmp")
                           for p in tmp_path.iterdir()))
    assert _visible(_digest(tmp_path)) == before  # the rename never happened
    assert ".sim.hdf5.lock" in _hidden(tmp_path)  # what SIGKILL leaves behind
    # the next run writing another output in that folder leaves the dead run's files alone...
    assert main([*SIMULATE[:-1], str(tmp_path / "other.hdf5"), "--scenes", "1"]) == 0
    assert ".sim.hdf5.lock" in _hidden(tmp_path)
    # ...the next run writing that output removes them
    assert main([*SIMULATE[:-1], str(tmp_path / "sim.hdf5"), "--scenes", "1"]) == 0, \
        capsys.readouterr().err
    assert _hidden(tmp_path) == []


def test_sigkill_during_fits_field_keeps_the_earlier_field_and_the_next_run_cleans_up(
        tmp_path, capsys):
    from rail.deepdisc.cli import main

    old = tmp_path / "field"
    old.mkdir()
    (old / "field_inputs.yml").write_text("catalog: catalog.fits\n")
    (old / "catalog.fits").write_text("the earlier field's catalog")
    before = _digest(tmp_path)
    _kill_when(["fits-field", "--mosaic-size", "512", "--overwrite", "--output-dir", "field",
                "-q"], tmp_path,
               lambda: any(p.name.startswith(".field.") and p.is_dir() and any(p.iterdir())
                           for p in tmp_path.iterdir()))
    assert _visible(_digest(tmp_path)) == before
    left = _hidden(tmp_path)
    assert ".field.lock" in left and any(n.endswith(".tmp") for n in left), left
    assert main(["fits-field", "--mosaic-size", "256", "--overwrite", "--output-dir",
                 str(old), "-q"]) == 0, capsys.readouterr().err
    assert (old / "field_inputs.yml").read_text() != "catalog: catalog.fits\n"
    assert _hidden(tmp_path) == []


@pytest.mark.parametrize("published", [False, True])
def test_an_output_a_dead_run_moved_aside_is_put_back_or_removed(tmp_path, published):
    """SIGKILL between moving the old folder aside and renaming the new one in (too short a
    moment to hit with a signal): the next guard of that output puts the old one back; killed
    after the new one was in place, it removes the aside copy."""
    from rail.deepdisc.store.atomic import process_tag
    from rail.deepdisc.store.write_guard import WriteGuard

    host = process_tag().rpartition("-")[0]
    aside = tmp_path / f".field.{host}-{_dead_pid()}-0123abcd.old"
    aside.mkdir()
    (aside / "catalog.fits").write_text("the earlier field's catalog")
    field = tmp_path / "field"
    if published:
        field.mkdir()
        (field / "catalog.fits").write_text("the new field's catalog")
    live = tmp_path / f".field.{process_tag()}-0123abcd.old"  # this live process's
    live.mkdir()
    with WriteGuard(folders={"--output-dir": field}, overwrite=True):
        pass
    assert (field / "catalog.fits").read_text() == (
        "the new field's catalog" if published else "the earlier field's catalog")
    assert _hidden(tmp_path) == [live.name]


# --- training checkpoints ---------------------------------------------------------------------
@pytest.mark.parametrize("case", ["the input store", "the init model's folder"])
def test_a_checkpoint_that_would_overwrite_an_input_is_refused(tmp_path, tiny_train_store,
                                                               tiny_model, capsys, case):
    from rail.deepdisc.cli import main

    shutil.copyfile(tiny_train_store, tmp_path / "ok.hdf5")
    (tmp_path / "ck").mkdir()
    shutil.copyfile(tiny_model, tmp_path / "ck" / "last.pt")
    folder = tmp_path / ("ok.hdf5" if case == "the input store" else "ck")
    before = _digest(tmp_path)
    rc = main(["train", "--input", str(tmp_path / "ok.hdf5"), "--model",
               str(tmp_path / "new.pt"), "--init-model", str(tmp_path / "ck" / "last.pt"),
               "--checkpoint-dir", str(folder), "--epochs", "1", "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"rail-deepdisc train: error: --checkpoint-dir {folder}"), err
    assert ("--input" if case == "the input store" else "--init-model") in err, err
    assert _digest(tmp_path) == before
    assert _hidden(tmp_path) == []


def test_the_stage_refuses_a_checkpoint_that_would_overwrite_its_input(tmp_path,
                                                                       tiny_train_store):
    from rail.deepdisc.errors import OutputPathError
    from rail.estimation.algos.deepdisc import DeepDiscInformer

    shutil.copyfile(tiny_train_store, tmp_path / "ok.hdf5")
    before = _digest(tmp_path)
    with pytest.raises(OutputPathError, match=r"checkpoint_dir.*ok\.hdf5"):
        stage = DeepDiscInformer.make_stage(name="t", model=str(tmp_path / "m.pt"),
                                            checkpoint_dir=str(tmp_path / "ok.hdf5"))
        stage.set_data("input", None, path=str(tmp_path / "ok.hdf5"), do_read=False)
    assert _digest(tmp_path) == before


def test_the_ranks_of_a_torchrun_job_do_not_refuse_rank_zeros_lock(tmp_path, monkeypatch):
    """Under torchrun every rank runs the command: rank 0 locks and writes, the others only
    check (they used to be refused by rank 0's lock: test_ddp's torchrun run failed)."""
    from rail.deepdisc.errors import OutputPathError
    from rail.deepdisc.store.atomic import process_tag
    from rail.deepdisc.store.write_guard import WriteGuard

    host = process_tag().rpartition("-")[0]
    out = tmp_path / "model.pt"
    rank0 = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (tmp_path / ".model.pt.lock").write_text(f"{host}-{rank0.pid}")  # rank 0 holds it
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(OutputPathError, match=f"pid {rank0.pid}"), \
                WriteGuard(writes={"--model": out}):
            pass
        monkeypatch.setenv("RANK", "1")
        with WriteGuard(writes={"--model": out}):
            pass
        assert (tmp_path / ".model.pt.lock").read_text() == f"{host}-{rank0.pid}"
    finally:
        rank0.kill()
        rank0.wait()
