"""Each option's name, default and help exist once (issue 26): an option name that several
option classes offer is one definition (made with ``option_like``) unless it means a
different thing in each, and those different meanings are listed here with the reason."""

from __future__ import annotations

import collections
import dataclasses
import importlib
import inspect
import pkgutil

import rail.deepdisc
from rail.deepdisc.options import _KEY, Options

#: names that mean different things in different classes (reason each)
DIFFERENT_MEANINGS = {
    "bands": "band names of a store vs magnitude columns of a table",
    "batch_size": "training batch vs inference batch (different memory, different default)",
    "chunk_size": "objects per network chunk vs objects per photometry chunk",
    "filters": "BPZ's filter list vs a measured survey's band -> filter mapping",
    "images": "per-band FITS mosaics vs a DeepDISC HDF5 image file",
    "mag_limit": "a population's limit vs a measured survey's limit ('': from its depth)",
    "method": "photometry method vs the photo-z method a catalog names",
    "overwrite": "a HATS catalog folder vs an example-field folder",
    "pixel_scale": "a rendered survey's vs cutouts without a WCS",
    "prior_band": "the informer's column vs the estimator's ('': the model's)",
    "redshift_kind": "a mosaic catalog's redshifts vs an imported DeepDISC file's",
    "seed": "each run's own random stream",
    "survey": "a preset to simulate vs the name written into a store or cutouts' depths",
    "zmax": "the estimate grid's top vs a population's highest redshift",
    "zmin": "the estimate grid's bottom vs a population's lowest redshift",
}

ENTRY_MODULES = ("rail.pipelines.deepdisc.comparison", "rail.deepdisc.field_recipe",
                 "rail.estimation.algos.eazy", "rail.tools.scene_tools",
                 "rail.tools.catalog_tools")


def _option_classes() -> set[type]:
    for module in pkgutil.walk_packages(rail.deepdisc.__path__, "rail.deepdisc."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    for name in ENTRY_MODULES:
        importlib.import_module(name)
    found, todo = set(), [Options]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def test_an_option_offered_by_several_classes_is_defined_once():
    defined = collections.defaultdict(list)
    for cls in _option_classes():
        own = inspect.get_annotations(cls)
        for f in dataclasses.fields(cls):
            if _KEY in f.metadata and f.name in own:
                defined[f.name].append((cls.__name__, f.metadata[_KEY], f.default))
    assert len(defined) > 150  # the walk found the package's options
    twice = {name: uses for name, uses in defined.items()
             if len({spec.help for _, spec, _ in uses}) > 1 and name not in DIFFERENT_MEANINGS}
    assert twice == {}, "defined twice with other help texts (use option_like): " + ", ".join(
        f"{name} in {[c for c, _, _ in uses]}" for name, uses in twice.items())
    # the listed exceptions are still real (no stale entries)
    stale = [n for n in DIFFERENT_MEANINGS
             if len({spec.help for _, spec, _ in defined.get(n, [])}) < 2]
    assert stale == []


def test_worker_and_thread_counts_have_one_meaning_of_zero():
    from rail.deepdisc.fit.bpz import BPZDataOptions
    from rail.deepdisc.fit.eazy_options import EazyInputOptions
    from rail.deepdisc.workers import WorkerOptions, usable_cores, worker_count

    own = WorkerOptions.option_specs()["n_workers"][0]
    for cls in (BPZDataOptions, EazyInputOptions):
        assert cls.option_specs()["n_workers"][0] == own
    assert worker_count(0) == usable_cores() and worker_count(3) == 3
    assert "0: all usable cores" in own.help
