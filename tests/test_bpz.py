"""pz-rail-bpz, unchanged, on NIRCam photometry of simulated scenes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from rail.deepdisc.evaluate.metrics import point_metrics
from rail.deepdisc.fit.bpz import bpz_stage_configs, check_bpz_input, prepare_bpz_data
from rail.deepdisc.fit.photometry_table import FLAG_EDGE, mag_limits
from rail.deepdisc.spectra.bands import NIRCAM_BANDS
from rail.deepdisc.spectra.filters import read_filter_file, resolve_filter
from rail.deepdisc.spectra.template_sets import oracle_templates
from rail.deepdisc.spectra.templates import cosmos_library, cww_templates
from rail.deepdisc.store.scenes import read_objects

bpz_lite = pytest.importorskip("rail.estimation.algos.bpz_lite",
                               reason="needs the fitters extra (pz-rail-bpz)")

MAGS = [f"mag_{b}" for b in NIRCAM_BANDS]
ERRS = [f"mag_err_{b}" for b in NIRCAM_BANDS]


def _run_bpz(setup, table, rows, tmp_path, name, **overrides):
    inform, estimate = bpz_stage_configs(setup, MAGS, ERRS, mag_limits(table, NIRCAM_BANDS,
                                                                       31.4),
                                         "mag_jwst_f200w", zmax=12.0, **overrides)
    data = {k: np.array(v[rows]) for k, v in table.items()}
    informer = bpz_lite.BPZliteInformer.make_stage(name=f"bpz_inform_{name}",
                                          model=str(tmp_path / f"{name}.pkl"), **inform)
    informer.inform(data)
    est = bpz_lite.BPZliteEstimator.make_stage(name=f"bpz_estimate_{name}",
                                      model=informer.get_handle("model"),
                                      output=str(tmp_path / f"{name}.hdf5"), **estimate)
    return est.estimate({k: v.copy() for k, v in data.items()}).data


def test_filter_curves_for_bpz(tmp_path):
    curve = resolve_filter("jwst_f200w")
    assert 19500 < curve.pivot < 20200
    setup = prepare_bpz_data(tmp_path / "bpz", cww_templates(), ["jwst_f200w", "DC2LSST_i"],
                             make_ab=False)
    back = read_filter_file(tmp_path / "bpz" / "FILTER" / "jwst_f200w.res")
    assert back.pivot == pytest.approx(curve.pivot, rel=1e-4)
    assert setup.filter_list == ["jwst_f200w", "DC2LSST_i"]
    assert setup.nt_array == [1, 2, 5] and len(setup.templates) == 8
    sed = np.loadtxt(tmp_path / "bpz" / "SED" / "El_B2004a.sed")
    assert sed[-1, 0] >= 1e5  # extended redward for NIRCam at low z


def test_any_sed_library_becomes_bpz_templates(tmp_path):
    """BPZ takes the simulator's libraries too: entries sorted by broad type, file-safe
    names, each written on the library's grid."""
    lib = cosmos_library()
    shuffled = lib.take(np.arange(len(lib))[::-1])
    setup = prepare_bpz_data(tmp_path / "bpz", shuffled, ["jwst_f200w"], make_ab=False)
    assert setup.nt_array == [int(np.sum(lib.broad_type == t)) for t in (0, 1, 2)]
    assert setup.templates[0] == "S0_A_0_ebv0p00" and len(setup.templates) == len(lib)
    listed = (tmp_path / "bpz" / "SED" / setup.spectra_file).read_text().split()
    assert listed == [f"{n}.sed" for n in setup.templates]
    sed = np.loadtxt(tmp_path / "bpz" / "SED" / "S0_A_0_ebv0p00.sed")
    assert np.allclose(sed[:, 0], lib.wave, rtol=1e-7)
    assert np.allclose(sed[:, 1], lib.flux[7], rtol=1e-6, atol=0)


def test_bad_bpz_inputs_are_named_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="jwst_f999w"):
        prepare_bpz_data(tmp_path / "a", "cww", ["jwst_f200w", "jwst_f999w"])
    assert not (tmp_path / "a").exists()
    with pytest.raises(ValueError, match="unknown template set"):
        prepare_bpz_data(tmp_path / "b", "nope", ["jwst_f200w"])
    setup = prepare_bpz_data(tmp_path / "c", "cww", ["jwst_f200w"], make_ab=False)
    with pytest.raises(ValueError, match="ref_band"):
        bpz_stage_configs(setup, ["mag_a"], ["err_a"], {"mag_a": 30.0}, "mag_b")
    with pytest.raises(ValueError, match="mag_limits"):
        bpz_stage_configs(setup, ["mag_a"], ["err_a"], {}, "mag_a")
    with pytest.raises(ValueError, match="same length"):
        bpz_stage_configs(setup, ["mag_a", "mag_b"], ["err_a"], {"mag_a": 1, "mag_b": 1},
                          "mag_a")
    _, estimate = bpz_stage_configs(setup, ["mag_a"], ["err_a"], {"mag_a": 30.0}, "mag_a")
    with pytest.raises(ValueError, match=r"lacks columns \['err_a'\]"):
        check_bpz_input({"mag_a": np.ones(3)}, estimate)


@pytest.mark.slow
def test_bpz_with_the_simulators_templates_on_bright_jades_objects(jades_field, jades_kron,
                                                                    tmp_path):
    """The oracle check of filters, units and the z grid (to z = 12).

    To keep the test short, BPZ is given only the library entries of the fitted objects (the
    full 123-entry library is what ``benchmarks/template_fitting.py`` runs).
    """
    obj = read_objects(jades_field)
    rows = np.flatnonzero((obj["snr_jwst_f200w"] > 50) & ((jades_kron["flags"] & FLAG_EDGE) == 0))
    assert rows.size >= 40
    tset = oracle_templates(entries=obj["sed_index"][rows])
    setup = prepare_bpz_data(tmp_path / "bpz", tset, NIRCAM_BANDS, madau=True, n_workers=2)
    ens = _run_bpz(setup, jades_kron, rows, tmp_path, "oracle")
    assert ens.npdf == rows.size
    zmode = np.squeeze(ens.ancil["zmode"])
    m = point_metrics(zmode, obj["redshift"][rows])
    assert m["sigma_iqr"] < 0.05, m
    assert abs(m["bias"]) < 0.02, m
    assert zmode.max() <= 12.0 and np.all(np.isfinite(ens.pdf(np.linspace(0, 12, 50))))


def test_bpz_writes_nothing_into_installed_packages(jades_kron, tmp_path):
    import desc_bpz
    import rail.estimation.algos.bpz_lite as bpz_module
    from rail.utils.path_utils import RAILDIR

    roots = [os.path.dirname(desc_bpz.__file__), os.path.join(RAILDIR, "rail"),
             os.path.dirname(bpz_module.__file__)]

    def listing() -> dict[str, float]:
        out = {}
        for root in roots:
            for d, _, files in os.walk(root):
                if "__pycache__" in d:
                    continue
                for f in files:
                    p = os.path.join(d, f)
                    out[p] = os.stat(p).st_mtime_ns
        return out

    before = listing()
    setup = prepare_bpz_data(tmp_path / "bpz", "cww", NIRCAM_BANDS, madau=True)
    ens = _run_bpz(setup, jades_kron, np.arange(20), tmp_path, "cww_check")
    assert ens.npdf == 20
    assert listing() == before
    assert len(os.listdir(tmp_path / "bpz" / "AB")) == 8 * len(NIRCAM_BANDS)
