"""The transfer benchmark's figures: ratios, in-domain change and the gap fine-tuning closes,
per seed and over seeds (``benchmarks/domain_transfer.py``), on hand-made results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scripts import load_script

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "domain_transfer.py"


@pytest.fixture(scope="module")
def transfer():
    return load_script(BENCHMARK, "domain_transfer", register=True)


def _figures(sigma: float, eta: float = 0.1) -> dict:
    return {"sigma_iqr": sigma, "outlier_rate": eta, "pit_ks": 0.05, "bias": 0.0, "n": 100}


def _results() -> dict:
    """Two seeds: seed 1 ratio 1.5 -> 1.25 (half closed), seed 2 ratio 1.2 -> 1.3 (worse)."""
    seeds = {"home": {1: {"home_test": _figures(0.10), "foreign_test": _figures(0.14)},
                      2: {"home_test": _figures(0.10), "foreign_test": _figures(0.16)}},
             "randomised": {1: {"home_test": _figures(0.10), "foreign_test": _figures(0.15)},
                            2: {"home_test": _figures(0.05), "foreign_test": _figures(0.06)}}}
    name = "randomised+300 foreign labels"
    return {
        "deepdisc": {"home": seeds["home"][1], "randomised": seeds["randomised"][1],
                     name: {"foreign_test": _figures(0.125, 0.05)}},
        "seeds": seeds,
        "finetuned_seeds": {name: {1: {"foreign_test": _figures(0.125, 0.05)},
                                   2: {"foreign_test": _figures(0.065, 0.07)}}},
        "bpz": {"home_test": _figures(0.02), "foreign_test": _figures(0.08)},
    }


def test_gap_closed_per_seed_and_over_seeds(transfer):
    results = _results()
    name = "randomised+300 foreign labels"
    gaps = transfer.finetuned_gaps(results)[name]
    np.testing.assert_allclose(gaps["before"], [1.5, 1.2])
    np.testing.assert_allclose(gaps["after"], [1.25, 1.3])
    np.testing.assert_allclose(gaps["closed"], [0.5, -0.5])
    s = transfer.summary(results)
    assert s["ratio_randomised"] == pytest.approx(1.5)  # the first seed's
    assert s[f"gap_closed_{name}"] == pytest.approx(0.5)
    assert s[f"gap_closed_{name}_seed_mean"] == pytest.approx(0.0)
    assert s[f"gap_closed_{name}_seed_sd"] == pytest.approx(np.std([0.5, -0.5], ddof=1))
    # the seeds' mean ratio 1.35 -> 1.275: 0.075 of a 0.35 gap
    assert s[f"gap_closed_{name}_of_mean_gap"] == pytest.approx(0.075 / 0.35)
    assert s["ratio_randomised_seed_mean"] == pytest.approx(1.35)
    assert s["in_domain_change_seed_mean"] == pytest.approx(0.075 / 0.10 - 1.0)
    assert s["ratio_bpz"] == pytest.approx(4.0)


def test_in_domain_change_of_each_figure(transfer):
    results = _results()
    results["seeds"]["randomised"][1]["home_test"] = {**_figures(0.10, eta=0.12),
                                                      "pit_ks": 0.04}
    results["seeds"]["randomised"][2]["home_test"] = {**_figures(0.05, eta=0.10),
                                                      "pit_ks": 0.08}
    results["deepdisc"]["randomised"] = results["seeds"]["randomised"][1]
    s = transfer.summary(results)
    # first seed: eta 0.12 against the home model's 0.10, PIT KS 0.04 against 0.05
    assert s["in_domain_outlier_rate_change"] == pytest.approx(0.2)
    assert s["in_domain_pit_ks_change"] == pytest.approx(-0.2)
    # the seeds' means: eta 0.11 against 0.10, PIT KS 0.06 against 0.05
    assert s["in_domain_outlier_rate_change_seed_mean"] == pytest.approx(0.1)
    assert s["in_domain_pit_ks_change_seed_mean"] == pytest.approx(0.2)
    row = "| randomised | 2 | 0.050 | 0.060 | 1.20 | 0.100 | 0.080 | 0.100 |"
    results["summary"] = s
    assert row in transfer.markdown(results)


def test_bootstrap_intervals_of_in_domain_changes(transfer):
    rng = np.random.default_rng(1)
    results = _results()
    for name, scale in (("home", 0.10), ("randomised", 0.12)):
        for test, figures in results["deepdisc"][name].items():
            delta = rng.normal(0.0, scale, 400)
            results["deepdisc"][name][test] = {**figures, "delta": delta}
    results["deepdisc"]["randomised+300 foreign labels"]["foreign_test"]["delta"] = \
        rng.normal(0.0, 0.1, 400)
    results["bpz"] = {}
    intervals = transfer.summary_intervals(results)
    lo, hi = intervals["in_domain_outlier_rate_change"]
    assert lo < hi and "in_domain_pit_ks_change" not in intervals  # no PIT in a resample


def test_no_gap_left_is_not_a_closed_gap(transfer):
    results = _results()
    results["seeds"]["randomised"][2]["foreign_test"] = _figures(0.045)  # ratio 0.9
    gaps = transfer.finetuned_gaps(results)["randomised+300 foreign labels"]
    assert np.isnan(gaps["closed"][1]) and gaps["closed"][0] == pytest.approx(0.5)
    s = transfer.summary(results)
    assert s["gap_closed_randomised+300 foreign labels_seed_mean"] == pytest.approx(0.5)


def test_markdown_lists_each_finetuned_seed(transfer):
    results = _results()
    results["summary"] = transfer.summary(results)
    text = transfer.markdown(results)
    assert "| randomised+300 foreign labels | 1 | 1.50 | 1.25 | 50% | 0.125 | 0.050 |" in text
    assert "| randomised+300 foreign labels | 2 | 1.20 | 1.30 | -50% | 0.065 | 0.070 |" in text


def test_finetune_seeds_all_needs_several_seeds(transfer, capsys):
    with pytest.raises(SystemExit):
        transfer._args(["--finetune-seeds", "all", "--seeds", "1"])
    assert "--finetune-seeds all needs two or more --seeds" in capsys.readouterr().err
    assert transfer._args(["--finetune-seeds", "all", "--seeds", "1,2"]).finetune_seeds == "all"
