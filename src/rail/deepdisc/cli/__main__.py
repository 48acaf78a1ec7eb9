"""``python -m rail.deepdisc.cli``: the ``rail-deepdisc`` command."""

import sys

from rail.deepdisc.cli import main

sys.exit(main())
