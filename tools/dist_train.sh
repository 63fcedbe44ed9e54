#!/usr/bin/env bash
# Distributed training with torchrun: N processes on this machine, one per
# GPU (on a machine without GPUs, N CPU processes over gloo):
#   bash tools/dist_train.sh CONFIG N [tools/train.py options]
# Several machines: run it on each with the same NNODES, MASTER_ADDR (the
# address of node 0) and PORT, and NODE_RANK 0 .. NNODES-1. PYTHON names the
# interpreter (default: python).
set -euo pipefail
CONFIG=$1
NPROC=$2
shift 2
TOOLS=$(dirname "$0")
PYTHONPATH="$TOOLS/..:${PYTHONPATH:-}" "${PYTHON:-python}" \
    -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$TOOLS/train.py" "$CONFIG" --launcher pytorch "$@"
