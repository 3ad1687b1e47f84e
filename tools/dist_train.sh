#!/usr/bin/env bash
# Distributed training with torchrun: bash tools/dist_train.sh CONFIG NPROC [train.py args]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT (or MASTER_PORT; the same on every
# node). The machines need no shared folder: each needs the code, config and data (and the
# checkpoint to test or resume) at the same paths; see docs/train_test.md.
# Works without CUDA too: fcosdet then uses the gloo backend.
set -euo pipefail
if [ "$#" -lt 2 ]; then
    echo "usage: $0 CONFIG NPROC [train.py options]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-${MASTER_PORT:-29500}}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
if [ ! -f "$CONFIG" ]; then
    echo "dist_train.sh: error: config file not found: $CONFIG" >&2
    exit 1
fi
TOOLS_DIR=$(cd "$(dirname "$0")" && pwd)

PYTHONPATH="$TOOLS_DIR/..:${PYTHONPATH:-}" \
python -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" --nproc_per_node="$NPROC" \
    "$TOOLS_DIR/train.py" "$CONFIG" --launcher pytorch "${@:3}"
