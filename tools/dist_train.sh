#!/usr/bin/env bash
# Multi-GPU training on one machine with torchrun:
#   bash tools/dist_train.sh CONFIG GPUS [tools/train.py options]
# NNODES, NODE_RANK, MASTER_ADDR and PORT set up multi-machine runs.
set -euo pipefail
CONFIG=$1
GPUS=$2
shift 2
cd "$(dirname "$0")/.."
PYTHONPATH=".:${PYTHONPATH:-}" torchrun \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$GPUS" \
    tools/train.py "$CONFIG" --launcher pytorch "$@"
