"""Every detector type under DDP with two gloo processes, one of which has no boxes: the
loss, DDP's gradient all-reduce and a following collective complete on both ranks (a head that
calls a collective on some ranks only pairs the ranks' collectives up wrongly: gloo's
"collective mismatch", or a hang, which the timeout turns into a failure)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from matrix_setup import DETECTORS

WORKER = Path(__file__).with_name('ddp_worker.py')
TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_ranks(world_size: int = 2) -> list[list[dict]]:
    """Start the worker on every rank; per rank its JSON lines (fails on error or timeout)."""
    env = dict(os.environ, MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()),
               WORLD_SIZE=str(world_size), OMP_NUM_THREADS='1')
    procs = [subprocess.Popen([sys.executable, str(WORKER)], env=dict(env, RANK=str(rank)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in range(world_size)]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=TIMEOUT_S)
            outputs.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            proc.kill()
    for rank, (code, out, err) in enumerate(outputs):
        assert code == 0, f'rank {rank} exited with {code} after:\n{out[-2000:]}\n{err[-2000:]}'
    return [[json.loads(line) for line in out.splitlines() if line.startswith('{')]
            for _, out, _ in outputs]


def test_every_detector_trains_under_ddp_with_an_empty_rank() -> None:
    full, empty = run_ranks()
    assert [r['detector'] for r in full] == [r['detector'] for r in empty] == list(DETECTORS)
    for with_boxes, without in zip(full, empty):
        name = with_boxes['detector']
        for result in (with_boxes, without):
            assert result['finite'] and result['all_params'] and result['same_grads'], result
            assert all(v == v and abs(v) < 1e4 for v in result['losses'].values()), result
        # Rank 1 has no positives: its box terms are exact zeros, its classification loss not.
        box_terms = {k: v for k, v in without['losses'].items() if k != 'loss_cls'}
        assert box_terms and set(box_terms.values()) == {0.0}, (name, without)
        assert without['losses']['loss_cls'] > 0, (name, without)
        assert all(v > 0 for v in with_boxes['losses'].values()), (name, with_boxes)
