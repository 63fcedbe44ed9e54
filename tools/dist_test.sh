#!/usr/bin/env bash
# Multi-GPU evaluation on one machine with torchrun:
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [tools/test.py options]
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
cd "$(dirname "$0")/.."
PYTHONPATH=".:${PYTHONPATH:-}" torchrun \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$GPUS" \
    tools/test.py "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
