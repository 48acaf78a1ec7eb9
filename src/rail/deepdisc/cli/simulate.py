"""``rail-deepdisc simulate`` and ``show``: simulated fields and pictures of scenes.

The simulation flags are derived from :class:`~rail.deepdisc.sim.field.FieldSpec` (every
population and rendering option) and :class:`~rail.deepdisc.workers.WorkerOptions`.
"""

from __future__ import annotations

import argparse

from rail.deepdisc.sim.field import FieldSpec
from rail.deepdisc.workers import WorkerOptions


def _cmd_simulate(args: argparse.Namespace) -> int:
    from rail.deepdisc.sim.field import simulate_field
    from rail.deepdisc.store.scenes import SceneStore

    spec = FieldSpec.from_mapping(args)
    path = simulate_field(spec, args.output, catalog_output=args.catalog_output,
                          n_workers=WorkerOptions.from_mapping(args).count,
                          progress=not args.quiet)
    with SceneStore(path) as store:
        print(f"wrote {path}: {store.n_scenes} scenes, {store.n_objects} objects, "
              f"bands {', '.join(store.bands)}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from rail.deepdisc.evaluate.display import show_scene

    out = show_scene(args.scenes, args.scene, args.output, labels=not args.no_labels)
    print(f"wrote {out}")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``simulate`` and ``show`` to the ``rail-deepdisc`` parser."""
    sim = sub.add_parser("simulate", parents=[common],
                         help="simulate a field (population + rendering)")
    FieldSpec.add_arguments(sim)
    WorkerOptions.add_arguments(sim)
    sim.add_argument("--catalog-output", default=None,
                     help="also write the population catalog (hdf5) here")
    sim.add_argument("--output", required=True, help="scene store to write (hdf5)")
    sim.set_defaults(func=_cmd_simulate)

    show = sub.add_parser("show", parents=[common],
                          help="draw a scene as an RGB PNG with truth boxes")
    show.add_argument("scenes", help="scene store (hdf5)")
    show.add_argument("--scene", type=int, default=0, help="scene index")
    show.add_argument("--no-labels", action="store_true", help="no redshift labels")
    show.add_argument("--output", required=True, help="PNG to write")
    show.set_defaults(func=_cmd_show)
