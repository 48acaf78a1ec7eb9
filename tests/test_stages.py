"""RAIL integration: stage discovery, interactive use, and ceci command-line runs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import tables_io

from rail.creation.engines.galaxy_scenes import GalaxyPopulationCreator, SceneRenderer
from rail.deepdisc.store.scenes import SceneStore
from rail.deepdisc.store.tables import read_provenance
from rail.tools.scene_tools import MosaicTiler

STAGES = ("GalaxyPopulationCreator", "SceneRenderer", "DeepDiscInformer", "DeepDiscEstimator",
          "ScenePhotometry", "MosaicTiler", "EazyInformer", "EazyEstimator",
          "BPZDataPreparer", "PhotoZComparisonReport", "PhotoZCatalog")


def test_import_and_attach_all_lists_every_stage():
    import rail.stages

    rail.stages.import_and_attach_all(silent=True)
    for name in STAGES:
        assert name in rail.stages.__all__
        assert hasattr(rail.stages, name)


def test_package_version():
    import rail.deepdisc

    assert rail.deepdisc.__version__.count(".") >= 2


def test_interactive_creator_and_renderer(tmp_path):
    creator = GalaxyPopulationCreator.make_stage(
        name="pop", n_samples=400, seed=3, survey="lsst", output=str(tmp_path / "cat.hdf5"))
    cat_handle = creator.sample(n_samples=400, seed=3)
    catalog = cat_handle.data
    assert len(catalog["redshift"]) == 400
    assert np.all(catalog["mag_lsst_i"] <= 27.0)
    renderer = SceneRenderer.make_stage(name="render", n_scenes=3, scene_size=48,
                                        survey="lsst", seed=3, n_workers=1,
                                        output=str(tmp_path / "scenes.hdf5"))
    handle = renderer.render(cat_handle)
    assert handle.path == str(tmp_path / "scenes.hdf5")
    with SceneStore(handle.path) as store:
        assert store.n_scenes == 3 and store.bands[0] == "lsst_u"
        assert store.provenance()["config"]["stage"]["n_scenes"] == 3
    assert not list(tmp_path.glob("inprogress_*"))


@pytest.mark.parametrize(("stage", "options"), [
    (GalaxyPopulationCreator, "rail.deepdisc.sim.population.PopulationConfig"),
    (SceneRenderer, "rail.deepdisc.sim.render.RenderConfig"),
    (SceneRenderer, "rail.deepdisc.workers.WorkerOptions"),
    (MosaicTiler, "rail.deepdisc.store.mosaic.TilerConfig"),
])
def test_stage_options_are_the_option_dataclasses(stage, options):
    """Each option is defined once: the stage's option has the dataclass field's default,
    help and bounds."""
    import importlib

    module, name = options.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    for option, (spec, _, default) in cls.option_specs().items():
        if not spec.stage:
            continue
        param = stage.config_options[option]
        if default is dataclasses.MISSING:
            assert param.required
        else:
            assert param.default == (list(default) if isinstance(default, tuple) else default)
        assert spec.help in param._help and spec.bounds_text() in param._help


def test_renderer_rejects_depths_for_unknown_bands(tmp_path):
    stage = SceneRenderer.make_stage(name="bad_depths", n_scenes=2, survey="jades",
                                     depths={"jwst_f999w": 30.0},
                                     output=str(tmp_path / "s.hdf5"))
    with pytest.raises(ValueError, match="jwst_f999w"):
        stage.run()


def test_creator_rejects_unknown_survey():
    stage = GalaxyPopulationCreator.make_stage(name="bad_survey", n_samples=10, survey="euclid")
    with pytest.raises(ValueError, match="euclid"):
        stage.run()


def _ceci(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ceci", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_stages_run_the_ceci_way(tmp_path):
    res = _ceci("rail.creation.engines.galaxy_scenes.GalaxyPopulationCreator",
                "--output=cat.hdf5", "--n_samples=150", "--survey=jades", "--seed=2",
                cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    table = tables_io.read(str(tmp_path / "cat.hdf5"))
    assert len(table["redshift"]) == 150 and "jwst_f444w_fnu" in table
    assert "GalaxyPopulationCreator" in read_provenance(tmp_path / "cat.hdf5")
    res = _ceci("rail.creation.engines.galaxy_scenes.SceneRenderer", "--input=cat.hdf5",
                "--output=scenes.hdf5", "--n_scenes=4", "--scene_size=64", "--survey=jades",
                "--n_workers=1", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    with SceneStore(tmp_path / "scenes.hdf5") as store:
        assert store.n_scenes == 4 and store.n_objects > 0


def test_ceci_run_with_a_bad_catalog_fails_clearly(tmp_path):
    tables_io.write({"id": np.arange(1, 11), "redshift": np.ones(10)},
                    str(tmp_path / "cat.hdf5"))
    res = _ceci("rail.creation.engines.galaxy_scenes.SceneRenderer", "--input=cat.hdf5",
                "--output=scenes.hdf5", "--n_scenes=2", "--survey=jades", cwd=tmp_path)
    assert res.returncode != 0
    assert "lacks columns" in res.stderr and "Re_maj" in res.stderr
    assert not (tmp_path / "scenes.hdf5").exists()
    assert not list(tmp_path.glob("inprogress_*"))
