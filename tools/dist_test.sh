#!/usr/bin/env bash
# Distributed testing with torchrun: bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT (or MASTER_PORT; the same on every
# node). The machines need no shared folder: each needs the code, config and data (and the
# checkpoint to test or resume) at the same paths; see docs/train_test.md.
set -euo pipefail
if [ "$#" -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT NPROC [test.py options]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-${MASTER_PORT:-29500}}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
if [ ! -f "$CONFIG" ]; then
    echo "dist_test.sh: error: config file not found: $CONFIG" >&2
    exit 1
fi
if [[ "$CHECKPOINT" != *://* && ! -f "$CHECKPOINT" ]]; then
    echo "dist_test.sh: error: checkpoint file not found: $CHECKPOINT" >&2
    exit 1
fi
TOOLS_DIR=$(cd "$(dirname "$0")" && pwd)

PYTHONPATH="$TOOLS_DIR/..:${PYTHONPATH:-}" \
python -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" --nproc_per_node="$NPROC" \
    "$TOOLS_DIR/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
