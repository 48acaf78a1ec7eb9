"""The ``rail-deepdisc`` command.

Each group of commands lives in its own module (``simulate``, ``survey``, ``deepdisc``,
``photometry``, ``mosaic``, ``cutouts``, ``demo``) with a ``register`` function that adds its
sub-commands; option flags are derived from the library's option dataclasses
(:mod:`rail.deepdisc.options`). Building the parser imports nothing heavy, so ``--help`` and
``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from rail.deepdisc.cli import (
    catalog,
    cutouts,
    deepdisc,
    demo,
    field,
    mosaic,
    photometry,
    simulate,
    survey,
)
from rail.deepdisc.errors import DeepDiscError, one_line

_GROUPS = (simulate, survey, demo, deepdisc, photometry, mosaic, cutouts, catalog, field)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``rail-deepdisc``."""
    from rail.deepdisc._version import __version__

    parser = argparse.ArgumentParser(
        prog="rail-deepdisc",
        description="Image-based photometric redshifts (DeepDISC) for RAIL.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or logs")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in _GROUPS:
        group.register(sub, common)
    return parser


def quiet_rail_stage_logs() -> None:
    """Keep RAIL's per-stage bookkeeping ("Inserting handle into data store", logged with
    structlog at info level whenever a pipeline is built) out of the command's output:
    warnings and errors still show; each stage's own log file keeps everything."""
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rail-deepdisc``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    quiet_rail_stage_logs()
    from rail.deepdisc.store.write_guard import interruptible

    try:
        with interruptible():  # SIGTERM stops the run as SIGINT does, cleaning up
            return args.func(args)
    except (DeepDiscError, OSError) as err:
        # a user's mistake: one line; anything else is a bug and keeps its traceback
        print(f"rail-deepdisc {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        print(f"rail-deepdisc {args.command}: interrupted ({signal.Signals(signum).name}); "
              "outputs not complete were not written", file=sys.stderr)
        return 128 + signum
