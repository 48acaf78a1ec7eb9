"""pz-rail-deepdisc: image-based probabilistic photometric redshifts as a RAIL plugin.

Importing this package is cheap (no torch, galsim, ceci or qp), so the ``rail-deepdisc``
command answers ``--help`` and ``--version`` at once. RAIL finds the package's stages through
the module ``rail.deepdisc_stages``, which RAIL's plugin scan
(``rail.stages.import_and_attach_all()``, used by ``rail.interactive``) imports like every
top-level module of the ``rail`` namespace; :func:`register_stages` does the same on demand.
"""

from rail.deepdisc._version import __version__

#: the modules that define this package's RAIL stages
STAGE_MODULES = (
    "rail.creation.engines.galaxy_scenes",
    "rail.creation.engines.survey_field",
    "rail.estimation.algos.deepdisc",
    "rail.estimation.algos.deepdisc_cv",
    "rail.estimation.algos.eazy",
    "rail.estimation.algos.hybrid",
    "rail.estimation.algos.photometry_network",
    "rail.tools.scene_tools",
    "rail.tools.bpz_tools",
    "rail.tools.report_tools",
    "rail.tools.catalog_tools",
)


def register_stages() -> None:
    """Import the stage modules, which registers their stages with RAIL and ceci."""
    import importlib

    for name in STAGE_MODULES:
        importlib.import_module(name)


__all__ = ["STAGE_MODULES", "__version__", "register_stages"]
