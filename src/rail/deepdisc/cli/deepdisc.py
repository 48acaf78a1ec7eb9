"""``rail-deepdisc train`` and ``estimate``: the DeepDISC network.

The option flags are derived from :class:`~rail.deepdisc.net.config.TrainConfig` and
:class:`~rail.deepdisc.net.config.EstimateConfig`; the commands run the RAIL stages, so a
command and a pipeline do the same thing with the same checks.
"""

from __future__ import annotations

import argparse
import os

from rail.deepdisc.net.config import EstimateConfig, TrainConfig
from rail.deepdisc.store.atomic import check_distinct_outputs, check_output_path


def _cmd_train(args: argparse.Namespace) -> int:
    from rail.estimation.algos.deepdisc import DeepDiscInformer

    cfg = TrainConfig.from_mapping(args)
    check_output_path(args.model, "--model", inputs=[args.input, cfg.init_model])
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
    check_distinct_outputs({"--output": args.output, "--detections": detections})
    for flag, path in (("--output", args.output), ("--detections", detections)):
        check_output_path(path, flag, inputs=[args.input, args.model])
    stage = DeepDiscEstimator.make_stage(name="deepdisc_estimate", model=args.model,
                                         output=args.output, detections=detections,
                                         **cfg.given(vars(args)))
    stage.set_data("input", None, path=args.input, do_read=False)
    stage.run()
    stage.finalize()
    print(f"wrote {args.output} and {detections}")
    return 0


def _sibling(path: str, suffix: str) -> str:
    root, ext = os.path.splitext(path)
    return f"{root}{suffix}{ext or '.hdf5'}"


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``train`` and ``estimate`` to the ``rail-deepdisc`` parser."""
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
