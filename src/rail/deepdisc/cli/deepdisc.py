"""``rail-deepdisc train`` and ``estimate``: the DeepDISC network."""

from __future__ import annotations

import argparse
import os

from rail.deepdisc.cli.common import positive_float, positive_int


def _cmd_train(args: argparse.Namespace) -> int:
    from rail.estimation.algos.deepdisc import DeepDiscInformer

    options = {k: v for k, v in vars(args).items() if k in _TRAIN_OPTIONS and v is not None}
    stage = DeepDiscInformer.make_stage(name="deepdisc_train", model=args.model, **options)
    stage.set_data("input", None, path=args.input, do_read=False)
    stage.run()
    stage.finalize()
    print(f"wrote {args.model}")
    return 0

def _cmd_estimate(args: argparse.Namespace) -> int:
    from rail.estimation.algos.deepdisc import DeepDiscEstimator

    options = {k: v for k, v in vars(args).items() if k in _ESTIMATE_OPTIONS and v is not None}
    detections = args.detections or _sibling(args.output, "_detections")
    stage = DeepDiscEstimator.make_stage(name="deepdisc_estimate", model=args.model,
                                         output=args.output, detections=detections, **options)
    stage.set_data("input", None, path=args.input, do_read=False)
    stage.run()
    stage.finalize()
    print(f"wrote {args.output} and {detections}")
    return 0

def _sibling(path: str, suffix: str) -> str:
    root, ext = os.path.splitext(path)
    return f"{root}{suffix}{ext or '.hdf5'}"


_TRAIN_OPTIONS = ("backbone", "num_components", "epochs", "batch_size", "learning_rate",
                  "weight_decay", "freeze_backbone_epochs", "val_fraction", "band_dropout",
                  "redshift_weight", "device", "num_threads", "seed", "init_model",
                  "checkpoint_dir", "augment")
_ESTIMATE_OPTIONS = ("mode", "score_threshold", "nms_threshold", "batch_size", "device",
                     "num_threads", "chunk_size", "deduplicate")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the commands of this module to the ``rail-deepdisc`` parser."""
    tr = sub.add_parser("train", parents=[common], help="train DeepDISC on a scene store")
    tr.add_argument("--input", required=True, help="training scene store (hdf5)")
    tr.add_argument("--model", required=True, help="model file to write (.pt)")
    tr.add_argument("--backbone", help="resnet50_fpn (default), resnet34_fpn, resnet18_fpn "
                    "(CPU preset), swin_t_fpn")
    tr.add_argument("--num-components", dest="num_components", type=positive_int)
    tr.add_argument("--epochs", type=positive_int)
    tr.add_argument("--batch-size", dest="batch_size", type=positive_int)
    tr.add_argument("--learning-rate", dest="learning_rate", type=positive_float)
    tr.add_argument("--weight-decay", dest="weight_decay", type=float)
    tr.add_argument("--freeze-backbone-epochs", dest="freeze_backbone_epochs", type=int)
    tr.add_argument("--val-fraction", dest="val_fraction", type=float)
    tr.add_argument("--band-dropout", dest="band_dropout", type=float)
    tr.add_argument("--redshift-weight", dest="redshift_weight", type=float)
    tr.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    tr.add_argument("--device", help="auto (default), cpu, cuda, mps")
    tr.add_argument("--num-threads", dest="num_threads", type=int)
    tr.add_argument("--seed", type=int)
    tr.add_argument("--init-model", dest="init_model", help="model to start from")
    tr.add_argument("--checkpoint-dir", dest="checkpoint_dir",
                    help="keep per-epoch checkpoints here; resume from them")
    tr.set_defaults(func=_cmd_train)

    es = sub.add_parser("estimate", parents=[common],
                        help="photo-z PDFs for a scene store (qp ensemble)")
    es.add_argument("--input", required=True, help="scene store (hdf5)")
    es.add_argument("--model", required=True, help="model file (.pt)")
    es.add_argument("--output", required=True, help="qp ensemble to write (hdf5)")
    es.add_argument("--detections", help="detections table (default: OUTPUT_detections.hdf5)")
    es.add_argument("--mode", choices=("forced", "detect"), default=None)
    es.add_argument("--score-threshold", dest="score_threshold", type=float)
    es.add_argument("--nms-threshold", dest="nms_threshold", type=float)
    es.add_argument("--batch-size", dest="batch_size", type=positive_int)
    es.add_argument("--chunk-size", dest="chunk_size", type=positive_int)
    es.add_argument("--device")
    es.add_argument("--num-threads", dest="num_threads", type=int)
    es.add_argument("--keep-duplicates", dest="deduplicate", action="store_false", default=None,
                    help="detect mode on a tiled mosaic: keep every tile's detections")
    es.set_defaults(func=_cmd_estimate)
