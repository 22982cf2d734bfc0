#!/bin/bash
# One short GPU check for issue 18 (speed): FFHQ-256 baseline and MS-PE training throughput, fp32
# against bf16 + channels-last + torch.compile, to compare with NVlabs' published figure for
# StyleGAN2 at 256x256 on one A100 (about 80 images/s; the goal here is >= 120 on one H100/H200),
# then one NCCL torchrun smoke run. Data: the synthetic digits at 256x256 (benchmarks/train_step.py
# substitutes them), so no data set is needed. About 5-8 minutes, mostly compilation.
#
#   bash benchmarks/gpu.sh            # BATCH=32 STEPS=20 by default
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
B=${BATCH:-32}
S=${STEPS:-20}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
FAST=(--set train.precision=bf16 --set train.channels_last=true --set train.compile=true)
for preset in ffhq256-baseline ffhq256-mspe; do
  python benchmarks/train_step.py --device cuda --presets "$preset" --batch "$B" --steps "$S" --warmup 5
  python benchmarks/train_step.py --device cuda --presets "$preset" --batch "$B" --steps "$S" --warmup 10 "${FAST[@]}"
done
echo "reference: NVlabs StyleGAN2 256x256 on one A100: ~80 img/s; goal: >= 120 img/s"
# NCCL path: one rank through torchrun, a few steps of a digits preset on the GPU, one checkpoint
out=$(mktemp -d)
torchrun --standalone --nproc_per_node=1 -m posgen train --preset digits-mspe --device cuda \
  --set train.kimg=0.16 --set train.precision=bf16 --out "$out/run"
python -m posgen info "$out/run" | python -c "import json, sys; print(json.load(sys.stdin)['progress'])"
