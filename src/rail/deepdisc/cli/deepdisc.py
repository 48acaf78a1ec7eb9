"""``rail-deepdisc train``, ``estimate`` and ``calibrate``: the DeepDISC network.

The option flags are derived from :class:`~rail.deepdisc.net.config.TrainConfig` and
:class:`~rail.deepdisc.net.config.EstimateConfig`; ``train`` and ``estimate`` run the RAIL
stages, so a command and a pipeline do the same thing with the same checks. ``calibrate``
refits a model's PDF widths and mean shift on a labelled scene store
(:mod:`rail.deepdisc.net.recalibrate`).
"""

from __future__ import annotations

import argparse
import os

from rail.deepdisc.cli.simulate import scene_selection
from rail.deepdisc.net.config import ComputeOptions, EstimateConfig, TrainConfig
from rail.deepdisc.store.write_guard import WriteGuard


def _cmd_train(args: argparse.Namespace) -> int:
    from rail.deepdisc.net.train import checkpoint_file
    from rail.estimation.algos.deepdisc import DeepDiscInformer

    cfg = TrainConfig.from_mapping(args)
    checkpoint = checkpoint_file(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    with WriteGuard.for_args(args, writes={"--model": args.model,
                                           "--checkpoint-dir": checkpoint}):
        stage = DeepDiscInformer.make_stage(name="deepdisc_train", model=args.model,
                                            **cfg.given(vars(args)))
        stage.set_data("input", None, path=args.input, do_read=False)
        stage.run()
        stage.finalize()
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 writes the model
        print(f"wrote {args.model}")
    return 0


def _cmd_estimate(args: argparse.Namespace) -> int:
    from rail.estimation.algos.deepdisc import DeepDiscEstimator

    cfg = EstimateConfig.from_mapping(args)
    detections = args.detections or _sibling(args.output, "_detections")
    with WriteGuard.for_args(args, writes={"--output": args.output,
                                           "--detections": detections}):
        stage = DeepDiscEstimator.make_stage(name="deepdisc_estimate", model=args.model,
                                             output=args.output, detections=detections,
                                             **cfg.given(vars(args)))
        stage.set_data("input", None, path=args.input, do_read=False)
        stage.run()
        stage.finalize()
    print(f"wrote {args.output} and {detections}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from rail.deepdisc.net.recalibrate import recalibrate_model

    compute = ComputeOptions.from_mapping(args)
    with WriteGuard.for_args(args, writes={"--output": args.output}):
        fit = recalibrate_model(args.model, args.input, args.output, scenes=args.scenes,
                                fit_shift=not args.widths_only, batch_size=args.batch_size,
                                device=compute.device, num_threads=compute.num_threads,
                                progress=not args.quiet)
    print(f"wrote {args.output}: PDF widths x {fit['width_scale']:.3f}, means shifted by "
          f"{fit['z_shift']:+.4f} in ln(1+z); NLL {fit['nll_before']:.3f} -> "
          f"{fit['nll_after']:.3f} on {fit['n_objects']} objects")
    return 0


def _sibling(path: str, suffix: str) -> str:
    root, ext = os.path.splitext(path)
    return f"{root}{suffix}{ext or '.hdf5'}"


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``train``, ``estimate`` and ``calibrate`` to the ``rail-deepdisc`` parser."""
    tr = sub.add_parser("train", parents=[common], help="train DeepDISC on a scene store")
    tr.add_argument("--input", required=True, help="training scene store (hdf5)")
    tr.add_argument("--model", required=True, help="model file to write (.pt)")
    TrainConfig.add_arguments(tr)
    tr.set_defaults(func=_cmd_train)

    es = sub.add_parser("estimate", parents=[common],
                        help="photo-z PDFs for a scene store (qp ensemble)")
    es.add_argument("--input", required=True, help="scene store (hdf5)")
    es.add_argument("--model", required=True, help="model file (.pt)")
    es.add_argument("--output", required=True, help="qp ensemble to write (hdf5)")
    es.add_argument("--detections", help="detections table (default: OUTPUT_detections.hdf5)")
    EstimateConfig.add_arguments(es)
    es.set_defaults(func=_cmd_estimate)

    cal = sub.add_parser("calibrate", parents=[common],
                         help="refit a model's PDF widths and mean shift on the labelled "
                         "objects of a scene store (e.g. an unrandomised simulation of your "
                         "survey after a randomised pretraining)")
    cal.add_argument("--model", required=True, help="model file to recalibrate (.pt)")
    cal.add_argument("--input", required=True, help="scene store with redshifts (hdf5)")
    cal.add_argument("--output", required=True, help="recalibrated model file to write (.pt)")
    cal.add_argument("--scenes", type=scene_selection, default=None,
                     help="scenes of the store used: 'all' (default), N (the first N) or "
                     "START:STOP")
    cal.add_argument("--widths-only", action="store_true",
                     help="fit the width factor only, no mean shift")
    EstimateConfig.add_argument(cal, "batch_size")  # network passes, as in estimate
    ComputeOptions.add_arguments(cal)
    cal.set_defaults(func=_cmd_calibrate)
