"""Band data is explicit: the bands a survey file defines travel with the survey, the scene
stores simulated from it and the photometry measured on those; the process remembers none
of them (:mod:`rail.deepdisc.spectra.bands`)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import rail.deepdisc.spectra as spectra_package
from rail.deepdisc.errors import OptionError
from rail.deepdisc.sim.surveys import get_survey, reference_band
from rail.deepdisc.spectra import bands as bands_module
from rail.deepdisc.spectra.bands import (
    BandFilter,
    band_filter,
    check_filters,
    effective_wavelength,
    filters_attr,
    parse_filters_attr,
    validate_bands,
)
from rail.deepdisc.spectra.filters import resolve_filter, resolve_filters
from rail.deepdisc.spectra.photometer import Photometer
from rail.deepdisc.store.scenes import SceneStore, SceneWriter

SURVEY = """\
name: {name}
reference: a test survey whose mycam_r band is a curve file of its own
pixel_scale: 0.26
depth_aperture_arcsec: 1.0
detection_band: mycam_r
population: {{mag_limit: 23.0, zmax: 3.0}}
bands:
  decam_g: {{filter: decam_g, depth: 24.8, psf: {{kind: moffat, fwhm: 1.1, beta: 3.5}}}}
  decam_z: {{filter: decam_z, depth: 23.8, psf: {{kind: moffat, fwhm: 0.95, beta: 3.5}}}}
  mycam_r: {{filter: curves/{curve}.dat, depth: 24.5, psf: {{kind: moffat, fwhm: 1.0,
            beta: 3.5}}}}
"""


def _survey_file(folder: Path, name: str, curve_of: str) -> Path:
    """A survey file whose band ``mycam_r`` is astro-sedpy's ``curve_of`` as a text file."""
    from sedpy.observate import Filter

    curve = Filter(curve_of)
    (folder / "curves").mkdir(exist_ok=True)
    np.savetxt(folder / "curves" / f"{curve_of}.dat",
               np.column_stack([curve.wavelength, curve.transmission]))
    path = folder / f"{name}.yml"
    path.write_text(SURVEY.format(name=name, curve=curve_of))
    return path


def _one_line_error_naming(band: str, call, *args, **kwargs) -> None:
    with pytest.raises(OptionError, match=band) as err:
        call(*args, **kwargs)
    assert "\n" not in str(err.value)


def test_a_survey_file_or_store_leaves_no_band_behind(tmp_path):
    survey = get_survey(str(_survey_file(tmp_path, "mycam", "decam_r")))
    assert survey.detection_band == "mycam_r"
    assert survey.filters["mycam_r"].source.endswith("decam_r.dat")
    store = tmp_path / "mycam.hdf5"
    with SceneWriter(store, survey.bands, 16, 16, pixel_scale_arcsec=0.26, zeropoint_ab=31.4,
                     survey=survey.name,
                     attrs={"filters": filters_attr(survey.bands, survey.filters),
                            "detection_band": survey.detection_band}):
        pass
    with SceneStore(store) as st:
        assert st.filters == survey.filters
        assert st.detection_band == "mycam_r"
        assert validate_bands(st.bands, filters=st.filters) == list(survey.bands)
        bands, name, detection = st.bands, st.info.survey, st.detection_band
    # nothing was remembered: without its filters the band is unknown, everywhere
    assert band_filter("mycam_r") is None
    _one_line_error_naming("mycam_r", validate_bands, ["decam_g", "mycam_r"], "bands")
    _one_line_error_naming("mycam_r", effective_wavelength, ["mycam_r"])
    _one_line_error_naming("mycam_r", resolve_filter, "mycam_r")
    _one_line_error_naming("mycam_r", resolve_filters, ["decam_g", "mycam_r"],
                           what="EAZY filters")
    from rail.deepdisc.sim.stars import blackbody_library

    _one_line_error_naming("mycam_r", Photometer, blackbody_library(), ["mycam_r"])
    # the detection band comes from its holder, not from a survey seen before
    assert bands[len(bands) // 2] == "decam_z"
    assert reference_band(bands, name) == "decam_z"
    assert reference_band(bands, name, detection) == "mycam_r"
    # built-in bands and astro-sedpy names still need nothing
    assert band_filter("lsst_g") == BandFilter(sedpy_name="lsst_baseline_g")
    assert band_filter("decam_r") == BandFilter(sedpy_name="decam_r")


def test_two_surveys_may_give_one_band_name_different_curves(tmp_path):
    from sedpy.observate import Filter

    from rail.deepdisc.sim.stars import blackbody_library

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = get_survey(str(_survey_file(tmp_path / "a", "cam_a", "decam_r")))
    b = get_survey(str(_survey_file(tmp_path / "b", "cam_b", "decam_i")))
    assert a.filters["mycam_r"] != b.filters["mycam_r"]
    lib = blackbody_library()
    entries, z = np.arange(len(lib)), np.zeros(len(lib))
    fluxes = {}
    for survey in (a, b, a):  # a again: nothing cached under the name alone
        fluxes[survey.name] = Photometer(lib, ["mycam_r"], igm=False,
                                         filters=survey.filters).maggies(entries, z)[:, 0]
        assert fluxes[survey.name].shape == (len(lib),)
    for survey, sedpy_name in ((a, "decam_r"), (b, "decam_i"), (a, "decam_r")):
        own = Photometer(lib, [sedpy_name], igm=False).maggies(entries, z)[:, 0]
        np.testing.assert_allclose(fluxes[survey.name], own, rtol=1e-6)
        assert effective_wavelength(["mycam_r"], survey.filters)[0] == pytest.approx(
            Filter(sedpy_name).wave_effective, rel=1e-6)
        assert resolve_filter("mycam_r", filters=survey.filters).pivot == pytest.approx(
            Filter(sedpy_name).wave_pivot, rel=1e-3)
    ratio = fluxes["cam_a"] / fluxes["cam_b"]
    assert np.ptp(ratio) > 0.1  # blackbodies of different temperatures: other colours
    # each store's attribute gives back its own curve
    for survey in (a, b):
        text = filters_attr(survey.bands, survey.filters)
        assert parse_filters_attr(text, "store") == survey.filters


def test_a_band_may_not_redefine_a_known_name():
    _one_line_error_naming("lsst_g", check_filters,
                           {"lsst_g": BandFilter(sedpy_name="decam_g")}, "survey.yml")
    _one_line_error_naming("decam_r", parse_filters_attr, json.dumps(
        {"decam_r": {"source": "x.dat", "wave": [5000.0, 6000.0, 7000.0],
                     "transmission": [0.0, 1.0, 0.0]}}), "scene store s.hdf5")
    same = {"decam_r": BandFilter(sedpy_name="decam_r")}
    assert check_filters(same, "survey.yml") == same


def _module_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


_MUTATORS = {"update", "setdefault", "append", "extend", "add", "insert", "pop", "popitem",
             "clear", "remove", "discard"}


def _mutations(function: ast.AST, shared: set[str]) -> list[str]:
    """Statements of a function that change a module-level name's object (or rebind it)."""
    local = {n.id for n in ast.walk(function) if isinstance(n, ast.Name)
             and isinstance(n.ctx, ast.Store)}
    local |= {a.arg for a in ast.walk(function) if isinstance(a, ast.arg)}
    module = shared - local
    found = []
    for node in ast.walk(function):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            found.append(f"line {node.lineno}: {type(node).__name__.lower()} {node.names}")
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            if isinstance(t, (ast.Subscript, ast.Attribute)) and \
                    isinstance(t.value, ast.Name) and t.value.id in module:
                found.append(f"line {node.lineno}: assignment into {t.value.id}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in _MUTATORS and isinstance(node.func.value, ast.Name) and \
                node.func.value.id in module:
            found.append(f"line {node.lineno}: {node.func.value.id}.{node.func.attr}()")
    return found


def test_spectra_keeps_no_state_that_functions_change():
    """No band registry, and no function in ``spectra/`` changes module-level objects."""
    assert not hasattr(bands_module, "_REGISTERED")
    assert not hasattr(bands_module, "_DETECTION_BANDS")
    assert not any(hasattr(bands_module, n) for n in (
        "register_filters", "register_filters_attr", "register_detection_band",
        "registered_detection_bands"))
    files = sorted(Path(spectra_package.__file__).parent.glob("*.py"))
    assert any(f.name == "bands.py" for f in files)
    problems = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        shared = _module_level_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                problems += [f"{path.name} {p}" for p in _mutations(node, shared)]
    assert problems == []


def test_the_check_finds_a_registry():
    """The walk above fails on the registry it replaced (so it can fail)."""
    tree = ast.parse("_R: dict = {}\n"
                     "def register(band, f):\n    _R[band] = f\n"
                     "def more(m):\n    _R.update(m)\n"
                     "def flag():\n    global _X\n    _X = 1\n")
    shared = _module_level_names(tree)
    found = [p for node in tree.body if isinstance(node, ast.FunctionDef)
             for p in _mutations(node, shared)]
    assert len(found) == 3, found


def _run(*args: str, cwd: Path) -> None:
    res = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]


def test_a_curve_band_goes_through_photometry_eazy_and_bpz_in_fresh_processes(tmp_path):
    """Simulated from a survey file whose band is a curve file, measured by ``rail-deepdisc
    photometry`` in one process, fitted by EAZY's stages and prepared for BPZ (as ceci runs
    them) in others: the curve travels in the store and the photometry table, nothing else
    carries it."""
    pytest.importorskip("eazy", reason="needs the eazy or fitters extra (eazy-py)")
    import qp
    import yaml

    from rail.deepdisc.fit.eazy_model import EazyModel
    from rail.deepdisc.sim.field import FieldSpec, simulate_field

    survey = _survey_file(tmp_path, "mycam", "decam_r")
    store = simulate_field(FieldSpec(survey=str(survey), n_scenes=3, scene_size=64, seed=4),
                           tmp_path / "mycam.hdf5", n_workers=1, progress=False)
    survey.unlink()  # the survey file and its curve are gone: only the store knows the curve
    (tmp_path / "curves" / "decam_r.dat").unlink()
    phot = tmp_path / "phot.hdf5"
    _run("-m", "rail.deepdisc.cli", "photometry", str(store), "--output", str(phot), "-q",
         cwd=tmp_path)
    with h5py.File(phot, "r") as f:
        carried = parse_filters_attr(f.attrs["filters"], "photometry")
    bands = ["decam_g", "mycam_r", "decam_z"]
    assert set(carried) == set(bands)
    assert carried["mycam_r"].source.endswith("decam_r.dat")
    columns = {"bands": [f"flux_{b}" for b in bands],
               "err_bands": [f"flux_err_{b}" for b in bands],
               "input_type": "flux", "hdf5_groupname": ""}
    config = tmp_path / "eazy.yml"
    config.write_text(yaml.safe_dump({"global": {
        **columns, "filter_list": bands, "templates_file": "cww", "zmax": 3.0,
        "training_prior": False, "zeropoints": False}}))
    model = tmp_path / "model.hdf5"
    _run("-m", "ceci", "rail.estimation.algos.eazy.EazyInformer", f"--input={phot}",
         f"--model={model}", f"--config={config}", "--name=eazy_inform", cwd=tmp_path)
    meta = EazyModel.load(str(model)).meta["filters"]
    assert [m["name"] for m in meta] == bands
    assert meta[1]["source"].startswith(str(tmp_path / "curves" / "decam_r.dat"))
    from sedpy.observate import Filter

    assert meta[1]["pivot"] == pytest.approx(Filter("decam_r").wave_pivot, rel=2e-3)
    config.write_text(yaml.safe_dump({"global": columns}))
    out = tmp_path / "pz.hdf5"
    _run("-m", "ceci", "rail.estimation.algos.eazy.EazyEstimator", f"--input={phot}",
         f"--model={model}", f"--output={out}", f"--config={config}", "--name=eazy_fit",
         cwd=tmp_path)
    ens = qp.read(str(out))
    with SceneStore(store) as st:
        assert ens.npdf == st.n_objects > 0
    assert np.isfinite(np.squeeze(ens.ancil["zmode"])).mean() > 0.9
    # BPZ's data directory, built by its stage in another process, gets the same curve
    config.write_text(yaml.safe_dump({"global": {
        "data_path": str(tmp_path / "bpz"), "templates": "cww", "filters": bands,
        "bands": [f"mag_{b}" for b in bands], "err_bands": [f"mag_err_{b}" for b in bands],
        "ref_band": "mag_mycam_r", "n_workers": 1}}))
    passed = tmp_path / "bpz_input.hdf5"
    _run("-m", "ceci", "rail.tools.bpz_tools.BPZDataPreparer", f"--input={phot}",
         f"--output={passed}", f"--config={config}", "--name=bpz_prepare", cwd=tmp_path)
    from rail.deepdisc.spectra.filters import read_filter_file

    assert read_filter_file(tmp_path / "bpz" / "FILTER" / "mycam_r.res").pivot == \
        pytest.approx(Filter("decam_r").wave_pivot, rel=2e-3)
    with h5py.File(passed, "r") as f:  # and passes the curves on with the table
        assert parse_filters_attr(f.attrs["filters"], "bpz input") == carried


def test_a_store_without_filters_takes_the_curves_of_its_psf_survey(tmp_path):
    """A store tiled from mosaics carries no filters; photometry with the survey measured
    from them (``psf_survey``) knows the survey's curve bands and writes them into the
    table's attributes."""
    from rail.deepdisc.errors import SceneStoreError
    from rail.deepdisc.fit.photometry import measure_store
    from rail.deepdisc.fit.photometry_options import PhotometryConfig
    from rail.deepdisc.fit.photometry_setup import photometry_table_attrs
    from rail.deepdisc.sim.field import FieldSpec, simulate_field

    survey = _survey_file(tmp_path, "mycam", "decam_r")
    store = simulate_field(FieldSpec(survey=str(survey), n_scenes=1, scene_size=48, seed=2),
                           tmp_path / "mycam.hdf5", n_workers=1, progress=False)
    with h5py.File(store, "r+") as f:
        del f.attrs["filters"]
    with pytest.raises(SceneStoreError, match="mycam_r"):
        measure_store(str(store), PhotometryConfig())
    cfg = PhotometryConfig(psf_survey=str(survey))
    table, _ = measure_store(str(store), cfg)
    assert np.isfinite(table["flux_mycam_r"]).all()
    with SceneStore(store) as st:
        assert st.filters == {}
        attrs = photometry_table_attrs(st, cfg)
    assert parse_filters_attr(attrs["filters"], "table") == get_survey(str(survey)).filters
