"""pz-rail-deepdisc: image-based probabilistic photometric redshifts as a RAIL plugin.

Importing the package imports its RAIL stage modules, so
``rail.stages.import_and_attach_all()`` finds every stage.
"""

from rail.creation.engines import galaxy_scenes  # noqa: F401  (registers the stages)
from rail.deepdisc._version import __version__
from rail.estimation.algos import (
    deepdisc,  # noqa: F401
    eazy,  # noqa: F401  (eazy-py itself is imported lazily)
)
from rail.tools import scene_tools  # noqa: F401

__all__ = ["__version__"]
