#!/usr/bin/env bash
# Training on slurm:
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] [PYTHON=...] \
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [ARGS]
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/launch_slurm.sh" train.py "$1" "$2" \
    "$3" --work-dir="$4" "${@:5}"
