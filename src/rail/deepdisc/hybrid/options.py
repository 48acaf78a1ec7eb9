"""The options of the hybrid stages, defined once (nothing heavy is imported)."""

from __future__ import annotations

from dataclasses import dataclass

from rail.deepdisc.errors import OptionError
from rail.deepdisc.options import Options, option

#: the fusion designs (see :mod:`rail.deepdisc.hybrid.fusion`)
DESIGNS = ("product", "gated")
#: covariates of the gated design, in order (see ``GATE_FEATURES`` there)
DEFAULT_FEATURES = ("log_snr", "blend", "ood_score", "log_chi2")


@dataclass(frozen=True)
class FusionOptions(Options):
    """How the image and template PDFs are fused."""

    design: str = option("product", "fusion design: 'product' (one exponent per method "
                         "and one for the shared prior) or 'gated' (exponents that depend "
                         "on each object's S/N, blending, out-of-distribution score and "
                         "template fit)", choices=DESIGNS)
    use_templates: bool = option(True, "use the template input (False: the hybrid returns "
                                 "the image PDFs)")
    floor: float = option(1e-3, "fraction of each input PDF's probability spread uniformly "
                          "in ln(1 + z) before the product (no redshift has probability 0)",
                          gt=0, lt=0.5)
    features: tuple[str, ...] = option(DEFAULT_FEATURES, "covariates of the gated design",
                                       choices=None)
    zmax: float = option(0.0, "top of the fusion grid (0: the template ensemble's grid)",
                         ge=0)

    def _check(self) -> None:
        unknown = [f for f in self.features if f not in DEFAULT_FEATURES]
        if unknown:
            raise OptionError(f"features {unknown} unknown; they are {list(DEFAULT_FEATURES)}")
