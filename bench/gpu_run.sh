#!/usr/bin/env bash
# The GPU run (python3 bench/gpu_run.py --help says what each part does and writes to $OUT):
#   bash bench/gpu_run.sh part1|part2 [--dry-run] [OPTIONS] [-- TRAIN.PY OVERRIDES]
# On the GPU machine, through the device tool's run with carry [".gpu_carry"] (made here first
# by `python bench/gpu_prepare.py`) and timeout_s 600; here, OUT=/tmp/gpu_out ... --dry-run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
exec python3 bench/gpu_run.py "$@"
