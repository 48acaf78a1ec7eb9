"""The field recipe's settings and inputs (the recipe is :mod:`rail.pipelines.deepdisc.field`).

:class:`FieldSettings` holds how the recipe pre-trains, fine-tunes, validates and writes;
:func:`load_field_inputs` reads a field-inputs YAML (the catalog, and the tiler's options:
mosaics, error maps, segmentation map, catalog columns, spectroscopic catalog; relative
paths are relative to the file). :func:`rail.pipelines.deepdisc.field.run_field` checks
every input, writes the pipeline YAML into the output directory, runs it with ceci
(resumable: finished stages are skipped) and returns the paths of the catalog and the
report.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rail.deepdisc.errors import InputError
from rail.deepdisc.fit.eazy_options import TemplateSetOptions
from rail.deepdisc.folds import FoldOptions
from rail.deepdisc.hybrid.options import FusionOptions, PhotometryNetOptions
from rail.deepdisc.net.config import ComputeOptions, TrainConfig
from rail.deepdisc.options import Options, option, option_like, path_items
from rail.deepdisc.sim.randomise import REALISM_LEVELS


@dataclass(frozen=True, kw_only=True)
class FieldSettings(Options):
    """How the field recipe pre-trains, fine-tunes, validates and writes (the options of
    ``rail-deepdisc field``; the mosaics and catalogs are the tiler's options)."""

    survey: str = option("", "survey of the simulated pre-training field: '' measures it "
                         "from the mosaics (see the survey options), else a preset name or "
                         "survey file whose bands are the mosaics'")
    pretrained_model: str = option("", "a model to fine-tune instead of pre-training one "
                                   "('' pre-trains on a simulated field)", path=True)
    pretrain_scenes: int = option(
        480, "scenes of the simulated pre-training field (480: the run stays within 45 "
        "minutes on a 2-core CPU; 240 and 960 measured in docs/field_recipe.md)", ge=4)
    pretrain_realism: str = option(
        "full", "realism preset of the simulated pre-training field: 'full' (emission "
        "lines, clumps, stars, PSF and depth jitter, masks: closer to real data; its gain "
        "in transfer is within training noise, see docs/domain_transfer.md) or 'off'",
        choices=REALISM_LEVELS)
    pretrain_sed_library: str = option(
        "", "SED library of the simulated pre-training field ('': the realism preset's, "
        "COSMOS templates); e.g. 'cosmos+EAZY/templates/fsps_full/tweak_fsps_QSF_12_v3.param'"
        " mixes EAZY's FSPS templates in (measured: smaller loss on SEDs of another "
        "library on average, but worse on COSMOS-like ones; docs/domain_transfer.md)",
        metavar="NAME|FILE")
    pretrain_epochs: int = option(8, "pre-training epochs", ge=1)
    finetune_epochs: int = option(3, "fine-tuning epochs (final model and every fold)", ge=1)
    finetune_learning_rate: float = option(3.0e-4, "fine-tuning peak learning rate", gt=0)
    folds: int = option_like(FoldOptions, "folds")  # of the fine-tuning and the fitters
    backbone: str = option_like(TrainConfig, "backbone", "resnet18_fpn")
    train_tile_size: int = option(128, "side of the training tiles (pixels)", ge=32)
    train_overlap: int = option(16, "overlap of the training tiles (pixels)", ge=0)
    num_threads: int = option_like(ComputeOptions, "num_threads")
    seed: int = option(0, "random seed of the simulation, the training and the folds", ge=0)
    title: str = option("Photo-z validation of the field", "title of the report")
    template_set: TemplateSetOptions = field(default_factory=TemplateSetOptions)
    photometry_net: PhotometryNetOptions = field(default_factory=PhotometryNetOptions)
    fusion: FusionOptions = field(default_factory=FusionOptions)
    truth_catalog: str = option(
        "", "a table of the catalog objects' true redshifts (columns id and redshift, "
        "optionally snr_<band>): simulated fields only; the report then also evaluates every "
        "method on the objects without spectra", path=True)


def spectra_needed(folds: int) -> int:
    """The fewest spectroscopic redshifts the recipe's ``folds``-fold cross-validation can
    train on (each fold fine-tunes on (folds - 1) / folds of them, less the validation
    scenes, and training needs ``MIN_TRAINING_LABELS``)."""
    from rail.deepdisc.net.train import MIN_TRAINING_LABELS

    return math.ceil(MIN_TRAINING_LABELS / (0.8 * (folds - 1) / folds))


def load_field_inputs(path: str | os.PathLike) -> dict[str, Any]:
    """The options of a field-inputs YAML, relative paths made relative to the file.

    Raises
    ------
    InputError
        If the file is not a YAML mapping.
    """
    import yaml

    try:
        with open(path, encoding="utf-8") as fin:
            data = yaml.safe_load(fin)
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not a YAML file ({err})") from None
    if not isinstance(data, Mapping):
        raise InputError(f"{path}: expected a mapping of options (images, catalog, ...)")
    allowed = field_input_keys()
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(unknown)}; the keys allowed "
                         f"are {', '.join(sorted(allowed))}")
    base = os.path.dirname(os.path.abspath(path))
    return _map_paths(dict(data), lambda p: _resolve(base, p))


def _field_options() -> dict[str, Any]:
    """Every option of ``rail-deepdisc field`` (the tiler's, the recipe's and the measured
    survey's) with its spec: name -> (spec, kind, default)."""
    from rail.deepdisc.sim.survey_from_mosaics import MosaicSurveyOptions
    from rail.deepdisc.store.mosaic import TilerConfig

    specs = {k: v for k, v in TilerConfig.option_specs().items()
             if k not in ("survey", "require_redshift")}
    return {**specs, **FieldSettings.option_specs(), **MosaicSurveyOptions.option_specs()}


def field_input_keys() -> frozenset[str]:
    """The keys a field-inputs YAML may hold: the catalog and the options of
    ``rail-deepdisc field``."""
    return frozenset({"catalog", *_field_options()})


def _map_paths(options: dict[str, Any], change: Any) -> dict[str, Any]:
    """``options`` with ``change`` applied to every file they name: the catalog and the
    values of the options marked as paths (a mapping's values, each of several
    comma-separated paths)."""
    paths = ["catalog", *(name for name, (spec, _, _) in _field_options().items() if spec.path)]
    for key in paths:
        value = options.get(key)
        if not value or not isinstance(value, (str, Mapping)):
            continue
        files = {where: change(p) for where, p in path_items(key, value).items()}
        if isinstance(value, Mapping):
            options[key] = {b: files[f"{key}[{b}]"] for b in value}
        else:
            options[key] = ",".join(files.values())
    return options


def _resolve(base: str, spec: str) -> str:
    """A path of a field-inputs file, relative to the file's folder; a bare name that is
    not a file there (a template set: ``auto``, ``fsps``, ``cww``) is kept as given."""
    if not spec or os.path.isabs(spec):
        return spec
    beside = os.path.join(base, spec)
    if os.sep not in spec and "." not in spec and not os.path.exists(beside):
        return spec
    return beside


def relative_paths(options: Mapping[str, Any], start: str = os.curdir) -> dict[str, Any]:
    """The options with their paths relative to ``start`` (for a pipeline file that is run
    from that directory, e.g. the committed example)."""
    return _map_paths(dict(options),
                      lambda p: os.path.relpath(p, start) if os.path.isabs(p) else p)
