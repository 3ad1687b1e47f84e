"""One rank of the two-process DDP check (run by test_ddp_empty_rank.py, not by pytest).

Every detector type, slimmed, takes one DDP training step on gloo; rank 1's images have no
boxes. After the backward pass (DDP's gradient all-reduce) the ranks all-gather their
gradients and losses: a collective that only completes if both ranks called the same ones
before. Prints one JSON line per detector: the losses of this rank, whether the gradients are
finite and equal on both ranks.
"""
import json
import logging
import os
from datetime import timedelta

import torch
import torch.distributed as dist
from matrix_setup import DETECTORS, build_slim_model, tiny_batch
from mmengine.logging import MMLogger
from torch.nn.parallel import DistributedDataParallel

from fcosdet.utils import register_all_modules


def step(name: str, config: str, rank: int) -> dict:
    """One DDP step of ``config`` on this rank; the rank's losses and gradient checks."""
    model = build_slim_model(config, name)  # same seed: same weights on both ranks
    model.train()
    data = tiny_batch(model, with_boxes=rank == 0)
    ddp = DistributedDataParallel(model)
    losses = ddp(data['inputs'], data['data_samples'], mode='loss')
    sum(losses.values()).backward()
    grads = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])
    gathered = [torch.empty_like(grads) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, grads)
    return dict(detector=name, rank=rank, losses={k: float(v.detach()) for k, v in losses.items()},
                finite=bool(torch.isfinite(grads).all()),
                all_params=all(p.grad is not None for p in model.parameters()
                               if p.requires_grad),
                same_grads=all(torch.equal(g, grads) for g in gathered))


def main() -> None:
    torch.set_num_threads(1)
    register_all_modules()
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # no init_weights report
    dist.init_process_group('gloo', timeout=timedelta(seconds=60))
    rank = dist.get_rank()
    for name in os.environ.get('DETECTORS', ','.join(DETECTORS)).split(','):
        print(json.dumps(step(name, DETECTORS[name], rank)), flush=True)
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
