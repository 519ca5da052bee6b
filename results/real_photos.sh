#!/usr/bin/env bash
# Reproduce RESULTS.md's "Real photos" section (issue 15): the real-photo hint model x6, trained
# on a mixture of Flowers17, Flowers102 (official train + test ids) and the ImageNet samples, and
# its comparison with the Flowers17-only hint model x5 on five test sets.
#   bash results/real_photos.sh train          # x6, then x7 (x6's best.pt fine-tuned); resumable
#   bash results/real_photos.sh eval [RUN...]  # x5_unet11_hints_10k x6_real_hints x7_meanfit by default
# CKPT_x5 / CKPT_x6 / CKPT_x7 pick the checkpoints (x6, x7: best.pt, chosen by validation while
# training).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/datasets}
OUT=${OUT:-runs/real_64}
MIX="flowers17=$SHARED/flowers17:1,flowers102=$SHARED/flowers102:2,folder=$SHARED/imagenet_samples:1"

declare -A CKPT=([x5_unet11_hints_10k]=${CKPT_x5:-runs/flowers17_64/x5_unet11_hints_10k/checkpoints/latest.pt}
                 [x6_real_hints]=${CKPT_x6:-$OUT/x6_real_hints/checkpoints/best.pt}
                 [x7_meanfit]=${CKPT_x7:-$OUT/x7_meanfit/checkpoints/best.pt})
# each test set: its data and masks; every one is scored at 0, 1 and 10 hints on the same samples
declare -A SETS=(
  [flowers17_impa]="--data.name flowers17 --data.root $SHARED/flowers17 --eval.split test --eval.masks impa:1 --masks.pairing all"
  [flowers17_heldout]="--data.name flowers17 --data.root $SHARED/flowers17 --eval.split test --eval.masks superpixels:1,blobs:1 --masks.pairing random"
  [flowers102_valid]="--data.name flowers102 --data.root $SHARED/flowers102 --data.flowers102_split train+test --eval.split val --eval.masks impa:1 --masks.pairing random"
  [imagenet_test]="--data.name folder --data.root $SHARED/imagenet_samples --eval.split test --eval.masks impa:1 --masks.pairing random"
  [bsds500_human]="--data.name bsds500 --data.root $SHARED/bsds500 --eval.split test --eval.masks segmentation:1 --masks.pairing random"
)
SET_ORDER="flowers17_impa flowers17_heldout flowers102_valid imagenet_test bsds500_human"

mode=${1:?usage: real_photos.sh train|eval [RUN...]}; shift
if [[ $mode == train ]]; then
  # 64 px, width 0.5, hints, bf16 (pinned, as in reproduce.sh), 27000 steps: 2.7x x1's budget
  python train.py --config flowers17 --data.size 64 --model.width 0.5 --hints.enabled true \
    --data.flowers102_split train+test --data.mix "$MIX" --train.precision bf16 \
    --train.steps 27000 --train.ckpt_every 1000 --train.out_dir "$OUT" --train.name x6_real_hints \
    --resume auto
  # x7: x6's best.pt (step 18000) for 5000 more steps with an in-mask L2 term (weight 100) and
  # the adversarial weight at 0.1, i.e. fitted towards the conditional mean colour. The run starts
  # from a copy of that checkpoint, so --resume auto continues it (schedule: 23000 steps, linear
  # decay from 11500, so the learning rate falls from 0.43x to 0 over the 5000 steps).
  if [[ ! -e "$OUT/x7_meanfit/checkpoints/latest.pt" ]]; then
    mkdir -p "$OUT/x7_meanfit/checkpoints"
    cp "$OUT/x6_real_hints/checkpoints/best.pt" "$OUT/x7_meanfit/checkpoints/latest.pt"
  fi
  python train.py --config flowers17 --data.size 64 --model.width 0.5 --hints.enabled true \
    --data.flowers102_split train+test --data.mix "$MIX" --train.precision bf16 \
    --train.steps 23000 --train.ckpt_every 1000 --loss.mask_weight_in 100 --loss.adv_weight 0.1 \
    --train.out_dir "$OUT" --train.name x7_meanfit --resume auto
  for run in x6_real_hints x7_meanfit; do   # the validation rows, for real_tables.py
    mkdir -p "results/real_64/$run"
    grep '"val/score"' "$OUT/$run/metrics.jsonl" > "results/real_64/$run/validation.jsonl"
  done
  exit
fi
for run in ${*:-x5_unet11_hints_10k x6_real_hints x7_meanfit}; do
  [[ -n "${CKPT[$run]:-}" ]] || { echo "unknown run $run (known: ${!CKPT[*]})" >&2; exit 2; }
  for s in $SET_ORDER; do
    python evaluate.py --checkpoint "${CKPT[$run]}" ${SETS[$s]} \
      --hints.eval 0,1,10 --out "results/real_64/$run/$s"
  done
done
