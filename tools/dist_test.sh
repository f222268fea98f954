#!/usr/bin/env bash
# Distributed testing with torchrun:
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [ARGS]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT (default 29500).
# PYTHON: the interpreter to run (default: python3 on PATH).
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
exec bash "$(dirname "${BASH_SOURCE[0]}")/launch_torchrun.sh" test.py "$GPUS" \
    "$CONFIG" "$CHECKPOINT" "${@:4}"
