#!/usr/bin/env bash
# Testing on slurm:
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] [PYTHON=...] \
#   bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [ARGS]
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/launch_slurm.sh" test.py "$1" "$2" \
    "$3" "$4" "${@:5}"
