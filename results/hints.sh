#!/usr/bin/env bash
# Issue 22 (hints that bind, outdoor photos): the equal-budget A/Bs, the long run, and their
# evaluation beside x7 and the hint baselines (mean, nearest, levin).
#   bash results/hints.sh ab               # three AB_STEPS-step runs from x7's weights: hints.fill none | input | residual
#   bash results/hints.sh ab2              # input again, with the `regions` mask family added (a third of the masks)
#   bash results/hints.sh train VARIANT    # the long run of the chosen variant (resumable)
#   bash results/hints.sh eval RUN...      # RUN: x7 or a run folder name under $OUT; writes results/hints_64/RUN/SET
# Every run starts from the shipped x7 (train.init_from; the inputs hints.fill adds start at zero
# weight, so step 0 is x7) and trains on Flowers17, Flowers102, the ImageNet samples and the
# Intel scenes (train/ less a val share), weights 1:1:1:2, with object-like mask families
# (blobs, superpixels) added to x7's. Resumable: --resume auto.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/datasets}
OUT=${OUT:-runs/hints_64}
AB_STEPS=${AB_STEPS:-1000}
LONG_STEPS=${LONG_STEPS:-16000}
# x7_meanfit, the shipped checkpoint before x8: the start of every run here, and a model scored
X7=${X7:-runs/x7_meanfit_default.pt}
if [[ ! -f $X7 ]]; then mkdir -p "$(dirname "$X7")"; git show 5d15e4b:gan_colorize/checkpoints/default.pt > "$X7"; fi
MIX="flowers17=$SHARED/flowers17:1,flowers102=$SHARED/flowers102:1,folder=$SHARED/imagenet_samples:1,split_folders=$SHARED/intel_scenes:2"
MASKS_REGIONS=impa:1,stripes:1,grid:1,rect:1,brush:1,blobs:1,superpixels:1,regions:3
RECIPE=(--config flowers17 --data.size 64 --model.width 0.5 --hints.enabled true
        --data.flowers102_split train+test --data.mix "$MIX" --train.precision bf16
        --loss.mask_weight_in 100 --loss.adv_weight 0.1
        --masks.train impa:1,stripes:1,grid:1,rect:1,brush:1,blobs:1,superpixels:1
        --train.init_from "$X7" --train.ckpt_every 1000 --train.out_dir "$OUT" --resume auto)
# each test set: its data and masks (the Intel test folder whole, its nearly gray photos too;
# intel_test_colour: less the 60 of them that training would leave out, data.min_ab_range 5); scored at 0, 1, 3 and 10 hints on the same samples
declare -A SETS=(
  [intel_test]="--data.name split_folders --data.root $SHARED/intel_scenes --data.min_ab_range 0 --eval.split test --eval.masks blobs:1,superpixels:1,rect:1 --masks.pairing random"
  [intel_test_colour]="--data.name split_folders --data.root $SHARED/intel_scenes --eval.split test --eval.masks blobs:1,superpixels:1,rect:1 --masks.pairing random"
  [bsds500_human]="--data.name bsds500 --data.root $SHARED/bsds500 --eval.split test --eval.masks segmentation:1 --masks.pairing random"
  [imagenet_test]="--data.name folder --data.root $SHARED/imagenet_samples --eval.split test --eval.masks impa:1 --masks.pairing random"
  [flowers17_impa]="--data.name flowers17 --data.root $SHARED/flowers17 --eval.split test --eval.masks impa:1 --masks.pairing all"
  [flowers17_heldout]="--data.name flowers17 --data.root $SHARED/flowers17 --eval.split test --eval.masks superpixels:1,blobs:1 --masks.pairing random"
)
SET_ORDER=${SET_ORDER:-"intel_test intel_test_colour bsds500_human imagenet_test flowers17_impa flowers17_heldout"}
EVAL_MAX=${EVAL_MAX:-0}   # 0: every sample of each set; the A/Bs use a few hundred
# Flowers17 impa pairs every test image with each of the 10 masks (3400 samples): the first 680
declare -A SET_MAX=([flowers17_impa]=680)

mode=${1:?usage: hints.sh ab|train VARIANT|eval RUN...}; shift
case $mode in
  ab)
    for v in none input residual; do
      python train.py "${RECIPE[@]}" --hints.fill $v --train.steps "$AB_STEPS" --train.name "ab_$v"
    done ;;
  ab2)   # the second round: the first round's winner (input) with object-like masks added
    python train.py "${RECIPE[@]}" --hints.fill input --train.steps "$AB_STEPS" --train.name ab_input_regions \
      --masks.train "$MASKS_REGIONS" ;;
  train)
    v=${1:?variant: none|input|residual}
    python train.py "${RECIPE[@]}" --hints.fill "$v" --train.steps "$LONG_STEPS" --train.name "x8_fill_$v" ;;
  eval)
    for run in "$@"; do
      if [[ $run == x7 ]]; then ckpt=$X7; else ckpt=$OUT/$run/checkpoints/best.pt; fi
      for s in $SET_ORDER; do
        python evaluate.py --checkpoint "$ckpt" ${SETS[$s]} --hints.eval 0,1,3,10 \
          --eval.max_samples "${SET_MAX[$s]:-$EVAL_MAX}" --out "results/hints_64/$run/$s"
      done
    done ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
