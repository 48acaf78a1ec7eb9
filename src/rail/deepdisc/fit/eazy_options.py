"""The options of the EAZY stages, defined once.

:class:`EazyModelOptions` are ``EazyInformer``'s own options (the template grid and the
prior), :class:`EazyFitOptions` ``EazyEstimator``'s (the fit); both share
:class:`EazyInputOptions` (what the band columns hold). The options RAIL itself defines and
the stages use unchanged (``bands``, ``err_bands``, ``filter_list``, ``zmin``, ``zmax``,
``mag_limits``, ``nondetect_val``, ...) stay RAIL's. Importing this module imports nothing
heavy.
"""

from __future__ import annotations

from dataclasses import dataclass

from rail.deepdisc.fit.eazy_data import EAZY_DIR_ENV, FALLBACK_SETS
from rail.deepdisc.magnitudes import NJY_ZEROPOINT
from rail.deepdisc.options import AncilColumnsOptions, Options, option, option_like
from rail.deepdisc.workers import WorkerOptions

#: what the band columns may hold
INPUT_TYPES = ("mag", "flux")


@dataclass(frozen=True)
class EazyInputOptions(Options):
    """What the band columns hold, and the processes to use."""

    input_type: str = option("mag", "what bands/err_bands hold: mag (AB magnitudes and "
                             "errors) or flux (linear fluxes and errors)", choices=INPUT_TYPES)
    flux_zeropoint: float = option(NJY_ZEROPOINT, "AB magnitude of a flux of 1 in the flux "
                                   f"columns ({NJY_ZEROPOINT} for nJy)")
    #: processes (informer: over the templates; estimator: over the redshift grid); by
    #: default the stage's own process
    n_workers: int = option_like(WorkerOptions, "n_workers", 1)
    sys_err: float = option(0.01, "fractional systematic flux error (SYS_ERR)", ge=0)


@dataclass(frozen=True)
class TemplateSetOptions(Options):
    """Which templates EAZY fits with (:mod:`rail.deepdisc.fit.eazy_data`)."""

    templates_file: str = option(
        "auto", "template set: 'auto' (EAZY's fsps QSF 12 v3 where installed, else "
        f"{FALLBACK_SETS[0]} with the sps extra, else {FALLBACK_SETS[1]}), 'fsps', 'fsps+sfhz', "
        "a built-in set (cww, cosmos, oracle, sps) or EAZY .param file(s), comma-separated",
        path=True)
    template_error_file: str = option(
        "auto", "EAZY template error function file: 'auto' (EAZY's TEMPLATE_ERROR.eazy_v1.0 "
        "where installed), '' (none) or a path", path=True)
    eazy_photoz_dir: str = option(
        "", f"an eazy-photoz checkout (the folder holding templates/); '' looks in "
        f"${EAZY_DIR_ENV} and then eazy-py's data folder (eazy.fetch_eazy_photoz())",
        path=True)


@dataclass(frozen=True)
class EazyModelOptions(TemplateSetOptions, EazyInputOptions):
    """``EazyInformer``: templates, template error function, prior and redshift grid step."""

    template_error_amplitude: float = option(0.2, "template error amplitude (TEMP_ERR_A2)",
                                             ge=0)
    prior_file: str = option("", "EAZY apparent-magnitude prior file ('': see "
                             "training_prior)", path=True)
    training_prior: bool = option(True, "without prior_file, build p(z | m) from the "
                                  "training set's redshifts and prior_band")
    prior_band: str = option("mag_i_lsst", "column of the magnitude (or flux) the prior "
                             "p(z | m) is a function of")
    prior_floor: float = option(0.01, "floor of the normalised prior (PRIOR_FLOOR)", ge=0)
    zeropoints: bool = option(
        True, "fit zero-point offsets on the training objects with a redshift (EAZY's "
        "iterative residual correction, at their redshifts)")
    zeropoint_snr_min: float = option(3.0, "smallest S/N of a band measurement used for "
                                      "the zero points", gt=0)
    zeropoint_iterations: int = option(3, "iterations of the zero-point fit", ge=1, le=20)
    zstep: float = option(0.01, "redshift grid step in dz / (1 + z) (Z_STEP)", gt=0)
    add_igm: bool = option(True, "apply eazy's IGM attenuation to the templates")


@dataclass(frozen=True)
class EazyFitOptions(EazyInputOptions, AncilColumnsOptions):
    """``EazyEstimator``: the systematic error, the prior's magnitude column and the input
    columns copied into the output."""

    prior_band: str = option("", "column whose magnitude (or flux) the model's prior uses "
                             "('' = the model's prior_band)")
