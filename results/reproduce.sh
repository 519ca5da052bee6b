#!/usr/bin/env bash
# Reproduce RESULTS.md: train the eight Flowers17 runs, then evaluate each on the test split.
#   bash results/reproduce.sh train [RUN...]     # all runs, or the named ones; resumable
#   bash results/reproduce.sh eval  [RUN...]
# Runs write to $OUT (default runs/flowers17_64). Every run: 64 px, width 0.5, 2000 steps, bf16
# autocast (what precision auto resolves to on CUDA and on CPUs with AVX-512 bf16 or AMX; pinned
# here so that every machine trains the same recipe).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/flowers17_64}
ROOT=${ROOT:-../shared/datasets/flowers17}
COMMON="--data.root $ROOT --data.size 64 --model.width 0.5 --train.steps 2000 --data.workers 1
        --train.out_dir $OUT --resume auto --train.sample_every 500 --train.ckpt_every 1000
        --train.latest_every 100 --train.precision bf16"

declare -A ARGS=(
  [r1_study_halfplane]="--config seed --masks.train impa=0"
  [r2_study_recipe]="--config seed"
  [r3_study_partial]="--config seed --loss.real_target partial"
  [r4_unet_impa]="--config flowers17 --masks.train impa:1"
  [r5_unet_mixed]="--config flowers17"
  [r6a_huber]="--config flowers17 --loss.mask_loss huber"
  [r6b_out0]="--config flowers17 --loss.mask_weight_out 0"
  [r6c_out1000]="--config flowers17 --loss.mask_weight_out 1000"
)
# Beyond the equal-budget table: r5's recipe for 5x the steps, bf16 (not in ORDER; name it to run it)
ARGS[x1_unet_mixed_10k]="--config flowers17"
# The same recipe on today's 11-layer unet11 (x1 and the eight runs used the architecture before
# the consolidation issue; their checkpoints do not load into today's code)
ARGS[x2_unet11_mixed_10k]="--config flowers17"
# x2's recipe with layer 11 gated (today's unet11), and the same with colour hints as input
ARGS[x4_unet11_gated_10k]="--config flowers17"
ARGS[x5_unet11_hints_10k]="--config flowers17 --hints.enabled true"
LONG="--train.steps 10000 --train.precision bf16 --data.workers 2"
declare -A AFTER=([x1_unet_mixed_10k]="$LONG" [x2_unet11_mixed_10k]="$LONG"
                  [x4_unet11_gated_10k]="$LONG" [x5_unet11_hints_10k]="$LONG")
ORDER="r1_study_halfplane r2_study_recipe r3_study_partial r4_unet_impa r5_unet_mixed r6a_huber r6b_out0 r6c_out1000"
# (a) the impa masks, seen in training: every test image with each of the 10 masks;
# (b) two families no run saw in training: one mask per test image, drawn from (seed 0, index)
declare -A EVALS=([impa]="--eval.masks impa:1 --masks.pairing all"
                  [heldout]="--eval.masks superpixels:1,blobs:1 --masks.pairing random")

# a hint model is scored at each of these hint counts, on the same samples and masks
declare -A EVAL_HINTS=([x5_unet11_hints_10k]="--hints.eval 0,1,2,5,10,20")

mode=${1:?usage: reproduce.sh train|eval [RUN...]}; shift
runs=${*:-$ORDER}
for run in $runs; do
  [[ -n "${ARGS[$run]:-}" ]] || { echo "unknown run $run (known: $ORDER)" >&2; exit 2; }
  if [[ $mode == train ]]; then
    python train.py ${ARGS[$run]} $COMMON ${AFTER[$run]:-} --train.name "$run"
  else
    for ev in impa heldout; do
      python evaluate.py --checkpoint "$OUT/$run/checkpoints/latest.pt" --eval.split test \
        ${EVALS[$ev]} ${EVAL_HINTS[$run]:-} --out "results/flowers17_64/$run/$ev"
    done
  fi
done
