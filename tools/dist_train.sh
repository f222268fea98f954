#!/usr/bin/env bash
# Distributed training with torchrun: bash tools/dist_train.sh CONFIG GPUS [ARGS]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT (default 29500).
# PYTHON: the interpreter to run (default: python3 on PATH).
# On a machine without CUDA, GPUS processes run on the CPU (gloo backend).
set -euo pipefail
CONFIG=$1
GPUS=$2
exec bash "$(dirname "${BASH_SOURCE[0]}")/launch_torchrun.sh" train.py "$GPUS" \
    "$CONFIG" "${@:3}"
