#!/usr/bin/env bash
# Issue 24: the benchmark's leaderboard (RESULTS.md, "The benchmark"). Every method enters the
# same way: the exported cases in, its outputs scored by `python -m gan_colorize.benchmark score`.
#   bash results/benchmark.sh [SET...]   # SET: bsds500 | intel_scenes | intel_colour (default: all), full resolution
#                                        # intel_colour: the Intel test folder less its 60 nearly gray photos
#   bash results/benchmark.sh check64    # BSDS500 at evaluate.py's 64 px: the benchmark's x8 row
#                                        # beside evaluate.py's (results/hints_64/x8_fill_input)
# Rows: the three hint fills without learning (mean, nearest, levin), the shipped model x8
# (gan_colorize/checkpoints/default.pt) and x7 (the one before), each at 0, 1, 3 and 10 hints;
# gray and oracle are in every report. Cases and outputs go to $OUT (large, not committed), the
# reports to results/benchmark/<SET>/<method>/. Resumable: a step whose output is there is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/datasets}
OUT=${OUT:-runs/benchmark}
REPORTS=${REPORTS:-results/benchmark}
X7=${X7:-runs/x7_meanfit_default.pt}
if [[ ! -f $X7 ]]; then mkdir -p "$(dirname "$X7")"; git show 5d15e4b:gan_colorize/checkpoints/default.pt > "$X7"; fi
declare -A ROOT=([bsds500]=$SHARED/bsds500 [intel_scenes]=$SHARED/intel_scenes [intel_colour]=$SHARED/intel_scenes)
# each set: the benchmark's named set, and keys on top of it
declare -A SET=([bsds500]="--set bsds500" [intel_scenes]="--set intel_scenes"
                [intel_colour]="--set intel_scenes --data.min_ab_range 5")
declare -A CKPT=([x8]=gan_colorize/checkpoints/default.pt [x7]=$X7)
HINTS=(0 1 3 10)
# one thread each, niced: the machine is shared
run() { OMP_NUM_THREADS=1 nice -n 10 python -m "$@"; }

# the cases of SET at SIZE (0: full resolution) in DIR
export_cases() {
  local set=$1 size=$2 dir=$3
  [[ -f $dir/manifest.json ]] && return
  rm -rf "$dir"
  # shellcheck disable=SC2086
  run gan_colorize.benchmark export ${SET[$set]} --data.root "${ROOT[$set]}" --size "$size" \
    --hints "$(IFS=,; echo "${HINTS[*]}")" --out "$dir"
}

# the outputs of METHOD (a fill or a model) on the cases in DIR, into DIR/../METHOD
outputs() {
  local method=$1 cases=$2 dest
  dest=$(dirname "$cases")/$method
  [[ -f $dest/.done ]] && return
  rm -rf "$dest"
  if [[ -n ${CKPT[$method]:-} ]]; then
    for n in "${HINTS[@]}"; do
      run gan_colorize.colorize --checkpoint "${CKPT[$method]}" --precision fp32 --composite none \
        --mask "$cases/masks" --hints "$cases/hints/$n" --out "$dest/$n" "$cases/gray"
    done
  else
    run gan_colorize.benchmark fill --cases "$cases" --method "$method" --out "$dest"
  fi
  touch "$dest/.done"
}

score() {
  local method=$1 cases=$2 report=$3
  [[ -f $report/metrics.json ]] && return
  run gan_colorize.benchmark score --cases "$cases" --outputs "$(dirname "$cases")/$method" \
    --out "$report" --name "$method"
}

if [[ ${1:-} == check64 ]]; then
  cases=$OUT/bsds500_64/cases
  export_cases bsds500 64 "$cases"
  outputs x8 "$cases"
  score x8 "$cases" "$REPORTS/bsds500_64/x8"
  exit 0
fi
SETS=("$@")
[[ ${#SETS[@]} -eq 0 ]] && SETS=(bsds500 intel_scenes intel_colour)
for set in "${SETS[@]}"; do
  cases=$OUT/$set/cases
  export_cases "$set" 0 "$cases"
  for method in mean nearest levin x8 x7; do
    outputs "$method" "$cases"
    score "$method" "$cases" "$REPORTS/$set/$method"
  done
done
python results/benchmark_tables.py --root "$REPORTS"
