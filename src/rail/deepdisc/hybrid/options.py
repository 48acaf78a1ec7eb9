"""The options of the hybrid stages, defined once (nothing heavy is imported)."""

from __future__ import annotations

from dataclasses import dataclass

from rail.deepdisc.errors import OptionError
from rail.deepdisc.options import Options, option

#: the fusion designs (see :mod:`rail.deepdisc.hybrid.fusion`)
DESIGNS = ("product", "gated")
#: the hybrid's input ensembles, in order (the image network's first)
METHOD_INPUTS = ("image", "templates", "photometric")
#: covariates of the gated design, in order (see ``GATE_FEATURES`` there)
DEFAULT_FEATURES = ("log_snr", "blend", "ood_score", "log_chi2")


@dataclass(frozen=True)
class FusionOptions(Options):
    """How the image and template PDFs are fused."""

    fusion_design: str = option("product", "fusion design: 'product' (one exponent per method "
                         "and one for the shared prior) or 'gated' (exponents that depend "
                         "on each object's S/N, blending, out-of-distribution score and "
                         "template fit)", choices=DESIGNS)
    fusion_methods: tuple[str, ...] = option(
        METHOD_INPUTS, "the inputs the fusion uses, the image first (image alone: the "
        "hybrid returns the image PDFs)", choices=METHOD_INPUTS)
    fusion_floor: float = option(1e-3, "fraction of each input PDF's probability spread uniformly "
                          "in ln(1 + z) before the product (no redshift has probability 0)",
                          gt=0, lt=0.5)
    fusion_features: tuple[str, ...] = option(DEFAULT_FEATURES, "covariates of the gated "
                                              "design", choices=DEFAULT_FEATURES)
    fusion_zmax: float = option(0.0, "top of the fusion grid (0: the template ensemble's "
                                "grid)", ge=0)

    def _check(self) -> None:
        methods = self.fusion_methods
        if not methods or methods[0] != "image" or len(set(methods)) != len(methods):
            raise OptionError(f"fusion_methods must start with 'image' and name each input "
                              f"once, got {list(methods)}")


@dataclass(frozen=True)
class PhotometryNetOptions(Options):
    """How the photometry network is trained: on a simulated catalog of the survey (its
    population's true fluxes, the field's own errors), then on the field's labelled
    objects."""

    photnet_galaxies: int = option(100000, "simulated galaxies the photometry network learns "
                                   "from", ge=1000, le=5_000_000)
    photnet_realism: str = option("full", "realism preset of the simulated population "
                                  "('full': with emission lines)", choices=("off", "full"))
    photnet_sed_library: str = option("", "SED library of the simulated population ('': the "
                                      "realism preset's, COSMOS templates)",
                                      metavar="NAME|FILE")
    photnet_sed_distortion: float = option(
        0.0, "rms (mag) of a random smooth distortion of each simulated galaxy's SED "
        "(colours beyond the library's; 0: none)", ge=0, le=1)
    photnet_epochs: int = option(24, "passes over the simulated catalog (new noise each)",
                                 ge=1)
    photnet_batch_size: int = option(1024, "galaxies per step", ge=16)
    photnet_learning_rate: float = option(3e-3, "peak learning rate", gt=0)
    photnet_hidden: int = option(256, "width of the hidden layers", ge=8)
    photnet_layers: int = option(3, "hidden layers", ge=1, le=8)
    photnet_components: int = option(6, "Gaussian components of p(ln(1 + z))", ge=1, le=20)
    photnet_finetune_epochs: int = option(20, "passes over the field's labelled objects "
                                          "(0: none)", ge=0)
    photnet_finetune_learning_rate: float = option(3e-4, "peak learning rate of the "
                                                   "fine-tuning", gt=0)
