"""Benchmark DeepDISC speed: training scenes/s, inference objects/s (forced and detect), memory.

Usage::

    python benchmarks/throughput.py [--scenes-file FILE] [--model MODEL] [--backbone resnet18_fpn]
                                    [--device auto|cpu|cuda] [--threads N] [--batch-size 4]
                                    [--scenes 64] [--size 128] [--objects-per-scene 10]
                                    [--bf16] [--no-train] [--no-infer] [--output FILE.json]

Without ``--scenes-file`` a JADES-like field of ``--scenes`` scenes of ``--size`` pixels is
simulated first (seed 1). ``--bf16`` trains in bf16 autocast (CUDA), as training does there.
``benchmarks/gpu_check.sh`` runs it on a lent GPU.
``--model`` times inference with a trained model (detection speed depends on how many
detections there are; an untrained network makes many random ones).
Training speed is timed over full optimiser steps (forward, backward, update) after two
warm-up steps; inference over the whole field in each mode. Prints the device it ran on.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import numpy as np
import torch
from common import add_network_flags

from rail.deepdisc.net.architectures import architecture
from rail.deepdisc.net.data import SceneTrainingData, augment_scene, noise_scales, to_torch
from rail.deepdisc.net.device import resolve_device, set_threads
from rail.deepdisc.net.network import DeepDiscNet
from rail.deepdisc.net.predict import predict_detect, predict_forced
from rail.deepdisc.sim.field import FieldSpec, simulate_field
from rail.deepdisc.store.scenes import SceneStore


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes-file", default=None)
    add_network_flags(parser, workers=False)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--infer-batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--model", default=None,
                        help="trained model for the inference timings (an untrained network "
                             "makes many more, random, detections)")
    parser.add_argument("--scenes", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--objects-per-scene", type=float, default=10.0)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast training (CUDA)")
    parser.add_argument("--no-train", action="store_true", help="inference timings only")
    parser.add_argument("--no-infer", action="store_true", help="training timings only")
    parser.add_argument("--output", default=None, help="write the figures as JSON")
    args = parser.parse_args()

    threads = set_threads(args.num_threads)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.scenes_file
        if path is None:
            path = os.path.join(tmp, "bench.hdf5")
            spec = FieldSpec(survey="jades", n_scenes=args.scenes, scene_size=args.size,
                             seed=1, objects_per_scene=args.objects_per_scene)
            simulate_field(spec, path, progress=False)
        with SceneStore(path) as store:
            n_scenes, n_obj = store.n_scenes, store.n_objects
            scales = noise_scales(store, range(min(n_scenes, 50)))
            chunk = store.read_chunk(0, n_scenes)
            shape = chunk.images.shape[1:]
        torch.manual_seed(0)
        net = DeepDiscNet(architecture(args.backbone), shape[0]).to(device)
        net.normalizer.set_scale(scales)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        data = SceneTrainingData(path, range(n_scenes))
        rng = np.random.default_rng(0)
        net.train()
        times = []
        autocast = args.bf16 and device.type == "cuda"
        for step in range(0 if args.no_train else args.steps + 2):
            idx = [(step * args.batch_size + j) % n_scenes for j in range(args.batch_size)]
            batch = [augment_scene(*data.load(i), rng) for i in idx]
            images, targets = to_torch(batch, device)
            _sync(device)
            t0 = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                loss = sum(v.float() for v in net(images, targets).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            _sync(device)
            if step >= 2:
                times.append(time.perf_counter() - t0)
        data.close()
        train_rate = args.batch_size / np.median(times) if times else float("nan")
        if device.type == "cuda":
            train_peak = torch.cuda.max_memory_allocated(device) / 2**20
            torch.cuda.reset_peak_memory_stats(device)

        if args.model:
            from rail.deepdisc.net.model_file import build_from_state, read_model_file

            net = build_from_state(read_model_file(args.model), device)
        net.eval()
        t_forced = t_detect = float("nan")
        det = {"score": []}
        if not args.no_infer:
            predict_forced(net, chunk, args.infer_batch_size, device)  # warm-up
            _sync(device)
            t0 = time.perf_counter()
            predict_forced(net, chunk, args.infer_batch_size, device)
            _sync(device)
            t_forced = time.perf_counter() - t0
            t0 = time.perf_counter()
            det = predict_detect(net, chunk, args.infer_batch_size, device)
            _sync(device)
            t_detect = time.perf_counter() - t0

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {threads} threads"
    print(f"device     : {device.type} ({name}); backbone {args.backbone}; "
          f"scenes {n_scenes} x {shape}")
    print(f"training   : {train_rate:8.2f} scenes/s (batch {args.batch_size}, "
          f"median of {len(times)} steps)")
    print(f"forced     : {n_obj / t_forced:8.1f} objects/s ({n_obj} objects, "
          f"{n_scenes / t_forced:.1f} scenes/s)")
    print(f"detect     : {n_obj / t_detect:8.1f} objects/s ({len(det['score'])} detections, "
          f"{n_scenes / t_detect:.1f} scenes/s)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    line = f"peak memory: {peak:.0f} MiB resident"
    figures = {"device": name, "backbone": args.backbone, "scene_shape": list(shape),
               "n_scenes": n_scenes, "n_objects": n_obj, "bf16": autocast,
               "train_batch": args.batch_size, "train_scenes_per_s": train_rate,
               "forced_objects_per_s": n_obj / t_forced, "detect_objects_per_s":
               n_obj / t_detect, "n_detections": len(det["score"]), "peak_rss_mib": peak}
    if device.type == "cuda":
        infer_peak = torch.cuda.max_memory_allocated(device) / 2**20
        line += f", GPU {train_peak:.0f} MiB training, {infer_peak:.0f} MiB inference"
        figures.update(gpu_train_peak_mib=train_peak, gpu_infer_peak_mib=infer_peak)
    print(line)
    if args.output:
        import json

        with open(args.output, "w", encoding="utf-8") as fout:
            json.dump(figures, fout, indent=2)


if __name__ == "__main__":
    main()
