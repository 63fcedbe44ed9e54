#!/usr/bin/env bash
# Distributed evaluation with torchrun: N processes on this machine, one per
# GPU (on a machine without GPUs, N CPU processes over gloo):
#   bash tools/dist_test.sh CONFIG CHECKPOINT N [tools/test.py options]
# NNODES, NODE_RANK, MASTER_ADDR, PORT and PYTHON as for dist_train.sh.
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
TOOLS=$(dirname "$0")
export PYTHONPATH="$TOOLS/..:${PYTHONPATH:-}"
# A checkpoint that is cut off or of another model: one line, before the
# processes start.
"${PYTHON:-python}" "$TOOLS/test.py" "$CONFIG" "$CHECKPOINT" --check-only "$@"
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$TOOLS/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
