"""Registers pz-rail-deepdisc's stages with RAIL.

RAIL's plugin scan (``rail.stages.import_and_attach_all()``, ``rail.interactive``) imports
every top-level module of the ``rail`` namespace; importing this one imports the modules that
define the package's stages (:data:`rail.deepdisc.STAGE_MODULES`), so they are found, while
``import rail.deepdisc`` itself stays cheap.
"""

from rail.deepdisc import register_stages

register_stages()
