"""``rail-deepdisc simulate``, ``join`` and ``show``: simulated fields, fields joined scene by
scene, and pictures of scenes.

The simulation flags are derived from :class:`~rail.deepdisc.sim.field.FieldSpec` (every
population and rendering option) and :class:`~rail.deepdisc.workers.WorkerOptions`.
"""

from __future__ import annotations

import argparse

from rail.deepdisc.sim.field import FieldSpec
from rail.deepdisc.store.write_guard import WriteGuard
from rail.deepdisc.workers import WorkerOptions


def _print_written(path: str) -> None:
    """One line on a scene store just written: its scenes, objects and bands."""
    from rail.deepdisc.store.scenes import SceneStore

    with SceneStore(path) as store:
        print(f"wrote {path}: {store.n_scenes} scenes, {store.n_objects} objects, "
              f"bands {', '.join(store.bands)}")


def _cmd_simulate(args: argparse.Namespace) -> int:
    from rail.deepdisc.sim.field import simulate_field

    spec = FieldSpec.from_mapping(args)
    writes = {"--output": args.output, "--catalog-output": args.catalog_output}
    with WriteGuard.for_args(args, writes=writes):
        path = simulate_field(spec, args.output, catalog_output=args.catalog_output,
                              n_workers=WorkerOptions.from_mapping(args).count,
                              progress=not args.quiet)
    _print_written(path)
    return 0


def scene_selection(text: str) -> int | slice | None:
    """A ``--scenes`` entry, parsed here only: ``all``, ``N`` (the first N, N >= 1) or
    ``START:STOP`` (0 <= START < STOP; STOP may be left out); no negative index, no empty
    selection."""
    text = text.strip()
    try:
        if text == "all":
            return None
        if ":" in text:
            start, stop = text.split(":")
            first = int(start) if start else 0
            last = int(stop) if stop else None
            if first < 0 or (last is not None and last <= first):
                raise ValueError(text)
            return slice(first, last)
        if int(text) < 1:
            raise ValueError(text)
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--scenes entry {text!r}: give 'all', N >= 1 (the first N) or START:STOP with "
            "0 <= START < STOP (no negative index, no empty selection)") from None


def _cmd_join(args: argparse.Namespace) -> int:
    from rail.deepdisc.store.join import join_stores

    with WriteGuard.for_args(args, writes={"--output": args.output}, skip=("stores",),
                             reads={"STORES": args.stores}):
        path = join_stores(args.stores, args.output, args.scenes, progress=not args.quiet)
    _print_written(path)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from rail.deepdisc.evaluate.display import show_scene

    with WriteGuard.for_args(args, writes={"--output": args.output}, skip=("scenes",),
                             reads={"SCENES": args.scenes}):
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

    join = sub.add_parser("join", parents=[common],
                          help="join scene stores of one survey scene by scene (e.g. a "
                          "pretraining field of template and population-synthesis SEDs)")
    join.add_argument("stores", nargs="+", help="scene stores (hdf5), in the joined order")
    join.add_argument("--scenes", nargs="+", type=scene_selection, default=None,
                      help="scenes taken from each store, one entry per store: 'all' "
                      "(default), N (the first N) or START:STOP")
    join.add_argument("--output", required=True, help="joined scene store to write (hdf5)")
    join.set_defaults(func=_cmd_join)

    show = sub.add_parser("show", parents=[common],
                          help="draw a scene as an RGB PNG with truth boxes")
    show.add_argument("scenes", help="scene store (hdf5)")
    show.add_argument("--scene", type=int, default=0, help="scene index")
    show.add_argument("--no-labels", action="store_true", help="no redshift labels")
    show.add_argument("--output", required=True, help="PNG to write")
    show.set_defaults(func=_cmd_show)
