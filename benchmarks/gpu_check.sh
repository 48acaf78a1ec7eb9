#!/usr/bin/env bash
# The GPU check: one prepared run on a lent device, within 8 minutes. From the repository
# root of a copy of the working tree on the device machine:
#     bash benchmarks/gpu_check.sh
# Installs the package into a fresh venv, then measures with benchmarks/throughput.py:
# training scenes/s of resnet18_fpn and resnet50_fpn (128x128 x 9 bands, batch 16, bf16),
# forced and detect objects/s of resnet50_fpn on 512x512 tiles, peak GPU memory. The
# figures go to $OUT/gpu_*.json when $OUT is set (record them in docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
if [ ! -x .gpu-venv/bin/python ]; then
  python3 -m venv .gpu-venv
  .gpu-venv/bin/pip install -q -e . 2>&1 | tail -n 3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
out="${OUT:-.}"
run() { timeout 150 .gpu-venv/bin/python benchmarks/throughput.py --device cuda "$@"; }
run --backbone resnet18_fpn --batch-size 16 --steps 30 --bf16 --no-infer \
    --output "$out/gpu_train_resnet18.json"
run --backbone resnet50_fpn --batch-size 16 --steps 30 --bf16 --no-infer \
    --output "$out/gpu_train_resnet50.json"
run --backbone resnet50_fpn --scenes 32 --size 512 --objects-per-scene 160 \
    --infer-batch-size 16 --no-train --output "$out/gpu_infer_resnet50_512.json"
echo "gpu_check finished in $(( $(date +%s) - start )) s"
