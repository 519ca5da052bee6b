#!/usr/bin/env bash
# Every benchmark behind the README's "Performance" section, on whatever this machine has
# (CUDA when present, else the CPU), JSON into bench/results/<device>/. Run it on a quiet machine.
#   bash bench/run_all.sh            # ROOT=../shared/datasets/flowers17 by default
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=$(python -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
OUT=bench/results/$DEV
mkdir -p "$OUT"
ROOT=${ROOT:-../shared/datasets/flowers17}
if [[ $DEV == cuda ]]; then
  python bench/train_step.py --archs unet11,seed --sizes 64,128,256 --precision fp32,bf16 --json "$OUT/train_step.json"
  python bench/train_step.py --archs unet11 --sizes 256 --batch 64 --precision bf16 --json "$OUT/train_step_mfu.json"
  python bench/inference.py --size 256 --batch 64 --json "$OUT/inference.json"
  SIZE=256; BATCH=64
else
  python bench/train_step.py --archs unet11,seed --sizes 64,128,256 --precision fp32,bf16 --json "$OUT/train_step.json"
  python bench/inference.py --size 256 --backend torch,onnx --json "$OUT/inference.json"
  SIZE=64; BATCH=16
fi
# cache build (first run) and reuse, loader alone, Lab on the device, the straightforward pipeline
python bench/pipeline.py --root "$ROOT" --size $SIZE --batch $BATCH --precision fp32 --json "$OUT/pipeline.json"
# end to end vs pure compute vs the straightforward pipeline, both precisions
for p in bf16 fp32; do
  python bench/end_to_end.py --root "$ROOT" --size $SIZE --batch $BATCH --width 0.5 --precision $p \
    --repeats 2 --json "$OUT/end_to_end_$p.json"
done
# peak RSS of CPU training at 256 px, batch 16 (and the 256 px cache on disk)
if [[ $DEV == cpu ]]; then
  python bench/end_to_end.py --root "$ROOT" --size 256 --batch 16 --modes ours --steps 3 --warmup 1 \
    --repeats 1 --json "$OUT/end_to_end_256_rss.json"
fi
